"""The page at / in a real headless Chromium (driven over the DevTools protocol): paste a prompt and a
response, press Score, see the reward and one heatmap span per response token."""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from tests.fp32 import forward_terms, fp32_atol

pytest.importorskip("fastapi")
websocket = pytest.importorskip("websocket", reason="websocket-client (dev extra) drives Chromium")

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                             shutil.which("google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (Debian: apt-get install chromium)")


class DevTools:
    """The few Chrome DevTools protocol calls the test needs, over one websocket."""

    def __init__(self, ws_url: str) -> None:
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.ids = itertools.count(1)

    def call(self, method: str, **params):
        i = next(self.ids)
        self.ws.send(json.dumps({"id": i, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == i:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def js(self, expr: str):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, expr: str, timeout: float = 20.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            v = self.js(expr)
            if v:
                return v
            time.sleep(0.1)
        raise TimeoutError(f"waited {timeout}s for {expr}")


@pytest.fixture(scope="module")
def server_url(tiny_llama, tmp_path_factory):
    import uvicorn

    from rewardlab.models.scorer import ScalarScorer
    from rewardlab.serve.app import create_app
    from tests.rm_helpers import make_tiny_rm

    scorer = ScalarScorer.load(make_tiny_rm(tiny_llama, tmp_path_factory.mktemp("browser-rm")))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(scorer), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", scorer
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    proc = subprocess.Popen(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
         f"--user-data-dir={profile}", "--remote-debugging-port=0", "--window-size=1000,900", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        end = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()) and time.monotonic() < end:
            time.sleep(0.1)
        if not port_file.exists():
            pytest.fail("Chromium did not open its DevTools port within 30 s")
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            page = next(t for t in json.load(r) if t["type"] == "page")
        tools = DevTools(page["webSocketDebuggerUrl"])
        yield tools
        tools.ws.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_page_scores_and_draws_the_heatmap(server_url, browser, tmp_path):
    url, scorer = server_url
    browser.call("Page.enable")
    browser.call("Page.navigate", url=url + "/")
    browser.wait_for("document.readyState === 'complete' && document.getElementById('go') !== null")
    browser.wait_for("document.getElementById('model').textContent.includes('ScalarScorer')")
    prompt, response = "what is the capital of france ?", "paris is the capital . it is very good"
    browser.js(f"document.getElementById('prompt').value = {json.dumps(prompt)};"
               f"document.getElementById('response').value = {json.dumps(response)};"
               "document.getElementById('go').click(); true")
    shown = browser.wait_for("(() => { const t = document.getElementById('reward').textContent;"
                             " return t.startsWith('reward ') ? t : (document.getElementById('error').textContent"
                             " ? 'ERROR ' + document.getElementById('error').textContent : null); })()")
    assert shown.startswith("reward "), shown
    expected = scorer.score([[{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]])
    # The page rounds to 4 decimals; the trace it shows is the score in another fp32 order (tests/fp32.py).
    atol = 0.5e-4 + fp32_atol(forward_terms(scorer.model.config, 64), expected)
    assert float(shown.split()[1]) == pytest.approx(expected.item(), abs=atol)
    spans = browser.js("Array.from(document.querySelectorAll('#heatmap span')).map(s => [s.textContent, "
                       "s.style.background, s.title])")
    n_tokens = len(scorer.encode([[{"role": "user", "content": prompt},
                                   {"role": "assistant", "content": response}]])[0])
    assert 0 < len(spans) < n_tokens  # one span per response token
    assert "paris" in "".join(s[0] for s in spans)
    assert all(s[1].startswith("rgba(") and s[2].startswith("change ") for s in spans)
    shot = browser.call("Page.captureScreenshot", format="png")
    (tmp_path / "page.png").write_bytes(base64.b64decode(shot["data"]))


def test_page_shows_a_clear_error(server_url, browser):
    url, _ = server_url
    browser.call("Page.navigate", url=url + "/")
    browser.wait_for("document.readyState === 'complete' && document.getElementById('go') !== null")
    browser.js("document.getElementById('prompt').value = 'hi'; document.getElementById('response').value = '';"
               "document.getElementById('go').click(); true")
    err = browser.wait_for("document.getElementById('error').textContent")
    assert "empty" in err
