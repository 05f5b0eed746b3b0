"""``rewardlab audit`` and ``rewardlab serve`` as a user runs them, on a tiny reward model."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from tests.e2e.test_cli import CLI, rewardlab
from tests.rm_helpers import make_tiny_rm


@pytest.fixture(scope="module")
def rm_dir(tiny_llama, tmp_path_factory):
    return make_tiny_rm(tiny_llama, tmp_path_factory.mktemp("cli-rm"))


def test_audit_writes_the_report_and_prints_verdicts(rm_dir, tmp_path):
    suite = tmp_path / "suite.jsonl"
    suite.write_text(json.dumps({"suite": "mine", "prompt": "hi", "a": "hello", "b": "no", "expected": "a"}) + "\n")
    convs = tmp_path / "convs.jsonl"
    convs.write_text(json.dumps({"prompt": "hi", "response": "hello ! how are you ?"}) + "\n")
    done = rewardlab("audit", "--model", rm_dir, "--suite", suite, "--data", convs, "--out", tmp_path / "a.html",
                     "--json", tmp_path / "a.json")
    assert done.returncode == 0, done.stderr
    assert "sycophancy:" in done.stdout and "mine:" in done.stdout and "order: not applicable" in done.stdout
    result = json.loads((tmp_path / "a.json").read_text())
    assert len(result["probes"]) == 7 and len(result["traces"]) == 1
    assert result["traces"][0]["kind"] == "prefix_reward"
    assert "<table>" in (tmp_path / "a.html").read_text()


@pytest.mark.parametrize("args,needle", [
    (["--probes", "lenght"], "did you mean 'length'"),
    (["--suite", "/nonexistent.jsonl"], "no such file"),
])
def test_audit_mistakes_end_in_one_line(rm_dir, args, needle, tmp_path):
    done = rewardlab("audit", "--model", rm_dir, "--out", tmp_path / "a.html", *args)
    assert done.returncode == 2 and needle in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_serve_mistakes_end_in_one_line(rm_dir):
    done = rewardlab("serve", "--model", rm_dir, "--max-batch", "0")
    assert done.returncode == 2 and "--max-batch" in done.stderr and "Traceback" not in done.stderr


def test_serve_answers_then_stops_cleanly_on_sigterm(rm_dir):
    pytest.importorskip("fastapi")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "REWARDLAB_API_KEY": "k"}
    proc = subprocess.Popen([*CLI, "serve", "--model", str(rm_dir), "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        auth = {"Authorization": "Bearer k"}
        for _ in range(300):
            try:
                with urllib.request.urlopen(urllib.request.Request(url + "/health", headers=auth), timeout=1) as r:
                    health = json.load(r)  # with the key /health names the model, else only the status
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("server did not come up: " + (proc.poll() is not None and proc.stdout.read() or ""))
        assert health["status"] == "ok" and health["model"] == str(rm_dir)
        req = urllib.request.Request(url + "/get_reward", data=json.dumps({"query": ["<|im_start|>user\nhi<|im_end|>\n"
                                     "<|im_start|>assistant\nhello<|im_end|>\n"], "labels": [None]}).encode(),
                                     headers={"Authorization": "Bearer k", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert len(json.load(r)["rewards"]) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    # uvicorn finishes in-flight work, shuts the app down, then exits by the signal it caught.
    assert proc.returncode in (0, -signal.SIGTERM), out
    assert "Application shutdown complete" in out
