"""One self-contained HTML audit report: inline CSS, pictures as base64 PNG, no script, no network.

Sections: probe table (rate, 95% interval, verdict) with its chart; per-token heatmaps, one per
traced conversation (green raised the reward, red lowered it; hover a token for its numbers); and
any evaluation or best-of-n plots passed in (PNG files, or folders holding them).
"""

from __future__ import annotations

import base64
import html
import io
import time
from collections.abc import Sequence
from pathlib import Path

from rewardlab.audit.probes import ProbeResult
from rewardlab.audit.trace import TokenTrace

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;width:100%;font-size:.9em}td,th{border:1px solid #ddd;padding:.35em .5em;text-align:left}
th{background:#f4f4f4}.ok{color:#17663a}.biased,.wrong{color:#b3261e;font-weight:600}.inconclusive{color:#8a6d00}
.skipped{color:#888}.trace{border:1px solid #ddd;border-radius:6px;padding:.6em .8em;margin:1em 0}
.prompt{color:#666;white-space:pre-wrap;font-size:.85em;margin-bottom:.5em}
.tokens{white-space:pre-wrap;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em;line-height:1.7}
.tok{border-radius:2px}.meta{color:#555;font-size:.85em}img{max-width:100%}
"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def token_colour(x: float, scale: float) -> str:
    """Background for a contribution ``x``: green when it raised the reward, red when it lowered it."""
    a = 0.0 if scale <= 0 else min(abs(x) / scale, 1.0) * 0.75
    rgb = "22,163,74" if x >= 0 else "220,38,38"
    return f"rgba({rgb},{a:.3f})"


def heatmap_html(trace: TokenTrace) -> str:
    """The response's tokens as spans coloured by their contribution (``title`` holds the numbers)."""
    contrib = trace.contributions.tolist()
    values = trace.values.tolist()
    scale = max((abs(c) for c in contrib), default=0.0)
    tokens = trace.tokens or [f"[{i}]" for i in trace.ids[trace.prompt_len:]]
    label = "reward after this token" if trace.kind == "prefix_reward" else "token reward"
    spans = [
        f'<span class="tok" style="background:{token_colour(c, scale)}" '
        f'title="change {c:+.4f}; {label} {v:.4f}">{html.escape(t)}</span>'
        for t, c, v in zip(tokens, contrib, values, strict=True)
    ]
    return f'<div class="tokens">{"".join(spans)}</div>'


def _probe_chart(results: Sequence[ProbeResult]) -> str | None:
    rows = [r for r in results if r.rate is not None]
    if not rows:
        return None
    from rewardlab.plotting import pyplot

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1))
    y = list(range(len(rows)))
    rates = [r.rate for r in rows]
    err = [[r.rate - r.ci95[0] for r in rows], [r.ci95[1] - r.rate for r in rows]]
    colours = ["#17663a" if r.status == "ok" else "#b3261e" if r.status in ("biased", "wrong") else "#c9a400"
               for r in rows]
    ax.barh(y, rates, xerr=err, color=colours, alpha=0.8, capsize=3)
    ax.axvline(0.5, color="#444", lw=1, ls="--")
    ax.set_yticks(y, [r.name for r in rows])
    ax.set_xlim(0, 1)
    ax.set_xlabel("preference rate for the probed variant (a), 95% interval")
    ax.invert_yaxis()
    data = _png(fig)
    plt.close(fig)
    return data


def _probe_table(results: Sequence[ProbeResult]) -> str:
    head = "<tr><th>probe</th><th>what differs</th><th>expected</th><th>n</th><th>rate</th><th>95% CI</th>" \
           "<th>mean P(a≻b)</th><th>verdict</th></tr>"
    rows = []
    for r in results:
        rate = "–" if r.rate is None else f"{r.rate:.3f}"
        ci = "–" if r.ci95 is None else f"[{r.ci95[0]:.3f}, {r.ci95[1]:.3f}]"
        mp = "–" if r.mean_prob is None else f"{r.mean_prob:.3f}"
        rows.append(f"<tr><td>{html.escape(r.name)}</td><td>{html.escape(r.description)}</td>"
                    f"<td>{r.expected}</td><td>{r.n}</td><td>{rate}</td><td>{ci}</td><td>{mp}</td>"
                    f'<td class="{r.status}">{html.escape(r.verdict)}</td></tr>')
    return f"<table>{head}{''.join(rows)}</table>"


def find_images(paths: Sequence[str | Path]) -> list[Path]:
    """PNG files among ``paths`` (folders are searched recursively), in a stable order."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(p.rglob("*.png"))
        elif p.suffix.lower() == ".png" and p.exists():
            out.append(p)
        elif not p.exists():
            raise FileNotFoundError(f"--include {p}: no such file or folder")
    return out


def write_report(out: str | Path, title: str, probes: Sequence[ProbeResult] = (),
                 traces: Sequence[tuple[str, TokenTrace]] = (), images: Sequence[str | Path] = (),
                 meta: dict | None = None) -> Path:
    """Write the report. ``traces`` pairs a prompt text with its trace; ``images`` are PNG files or folders."""
    parts = [f"<h1>{html.escape(title)}</h1>",
             f'<p class="meta">written {time.strftime("%Y-%m-%d %H:%M")}'
             + "".join(f" · {html.escape(str(k))}: {html.escape(str(v))}" for k, v in (meta or {}).items())
             + "</p>"]
    if probes:
        parts.append("<h2>Probes</h2>")
        parts.append("<p class='meta'>Each probe holds pairs that differ in one property only; the rate is the "
                     "share of pairs where the model prefers the probed variant (ties count half).</p>")
        parts.append(_probe_table(probes))
        chart = _probe_chart(probes)
        if chart:
            parts.append(f'<p><img alt="probe preference rates" src="data:image/png;base64,{chart}"></p>')
    if traces:
        parts.append("<h2>Per-token reward</h2>")
        parts.append("<p class='meta'>Green tokens raised the reward, red ones lowered it (colour scaled per "
                     "response); hover a token for its numbers.</p>")
        for prompt, t in traces:
            parts.append(f'<div class="trace"><div class="prompt">{html.escape(prompt)}</div>{heatmap_html(t)}'
                         f'<div class="meta">reward {t.reward:.4f} · {len(t.values)} response tokens · '
                         f"{t.kind.replace('_', ' ')}</div></div>")
    imgs = find_images(images)
    if imgs:
        parts.append("<h2>Evaluation and best-of-n plots</h2>")
        for p in imgs:
            data = base64.b64encode(p.read_bytes()).decode()
            parts.append(f'<figure><img alt="{html.escape(p.name)}" src="data:image/png;base64,{data}">'
                         f"<figcaption class='meta'>{html.escape(p.name)}</figcaption></figure>")
    doc = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
           f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doc, encoding="utf-8")
    return out
