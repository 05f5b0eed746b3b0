"""The page at ``/``: paste a prompt and a response, see the reward and the per-token heatmap.

One static document with inline CSS and script; it calls the server's own /health, /trace and /score,
sending the API key typed into it (without the key, /health only says the server is up).
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rewardlab</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:900px;margin:2em auto;padding:0 1em;color:#222}
textarea{width:100%;font:inherit;padding:.4em;box-sizing:border-box}label{display:block;margin:.8em 0 .2em;font-weight:600}
button{margin-top:1em;padding:.5em 1.4em;font:inherit;cursor:pointer}#reward{font-size:1.3em;margin-top:1em}
#heatmap{white-space:pre-wrap;font-family:ui-monospace,Menlo,Consolas,monospace;line-height:1.8;margin-top:.6em;
border:1px solid #ddd;border-radius:6px;padding:.6em;min-height:1em}#error{color:#b3261e;margin-top:1em}
.meta{color:#666;font-size:.85em}
</style></head><body>
<h1>rewardlab</h1>
<p class="meta" id="model">model: …</p>
<label for="prompt">Prompt</label><textarea id="prompt" rows="4"></textarea>
<label for="response">Response</label><textarea id="response" rows="6"></textarea>
<label for="apikey">API key (only if the server needs one)</label><input id="apikey" type="password" style="width:100%">
<button id="go">Score</button>
<div id="reward"></div><div id="heatmap"></div><div id="error"></div>
<p class="meta">Green tokens raised the reward, red ones lowered it; hover a token for its numbers.</p>
<script>
"use strict";
let health = null;
const $ = (id) => document.getElementById(id);
function headers() {
  const h = {"Content-Type": "application/json"};
  const k = $("apikey").value.trim();
  if (k) h["Authorization"] = "Bearer " + k;
  return h;
}
function colour(x, scale) {
  const a = scale > 0 ? Math.min(Math.abs(x) / scale, 1) * 0.75 : 0;
  return (x >= 0 ? "rgba(22,163,74," : "rgba(220,38,38,") + a.toFixed(3) + ")";
}
async function post(path, body) {
  const r = await fetch(path, {method: "POST", headers: headers(), body: JSON.stringify(body)});
  const data = await r.json().catch(() => ({error: "HTTP " + r.status}));
  if (!r.ok) throw new Error(data.error || ("HTTP " + r.status));
  return data;
}
async function loadHealth() {
  try {
    const h = await (await fetch("/health", {headers: headers()})).json();
    if (h.model !== undefined) { health = h; $("model").textContent = "model: " + h.model + (h.dtype ? " (" + h.dtype + ")" : ""); }
  } catch (e) { /* the page still works without it */ }
}
async function run() {
  $("error").textContent = ""; $("heatmap").textContent = ""; $("reward").textContent = "scoring…";
  const body = {prompt: $("prompt").value, response: $("response").value};
  if (!health) await loadHealth();
  try {
    if (health && !health.can_score) throw new Error("this model is a pairwise judge: it has no scalar reward");
    if (!health || health.can_trace) {
      const t = await post("/trace", body);
      $("reward").textContent = "reward " + t.reward.toFixed(4);
      const scale = Math.max(0, ...t.contributions.map(Math.abs));
      t.tokens.forEach((tok, i) => {
        const s = document.createElement("span");
        s.className = "tok"; s.textContent = tok;
        s.style.background = colour(t.contributions[i], scale);
        s.title = "change " + t.contributions[i].toFixed(4) + "; value " + t.values[i].toFixed(4);
        $("heatmap").appendChild(s);
      });
    } else {
      const s = await post("/score", {prompts: [body.prompt], responses: [body.response]});
      $("reward").textContent = "reward " + s.rewards[0].toFixed(4) + " (no per-token trace for this model)";
    }
  } catch (e) { $("reward").textContent = ""; $("error").textContent = String(e.message || e); }
}
$("go").addEventListener("click", run);
loadHealth();
</script></body></html>
"""
