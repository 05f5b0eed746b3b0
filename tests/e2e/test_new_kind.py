"""A kind is one file: ``tests/kinds/hinge.py`` adds a reward-model kind (its own head, its own loss) from
outside the package, and the public commands train, save, load, evaluate, trace and serve it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.e2e.test_cli import TINY, rewardlab

KIND_FILE = Path(__file__).resolve().parents[1] / "kinds" / "hinge.py"


@pytest.fixture
def plugin(monkeypatch):
    monkeypatch.setenv("REWARDLAB_PLUGINS", str(KIND_FILE))


def test_a_kind_defined_in_one_file_trains_evaluates_traces_and_serves(plugin, tiny_llama, pair_files, tmp_path):
    train_file, eval_file = pair_files
    out = tmp_path / "run"
    done = rewardlab("train", TINY, f"model.path={tiny_llama}", f"data.train={train_file}",
                     f"data.eval={eval_file}", "variant.name=hinge", "variant.margin=0.5", f"output_dir={out}")
    assert done.returncode == 0, done.stderr[-3000:]
    final = out / "final"
    config = json.loads((final / "config.json").read_text())
    assert config["rewardlab"]["kind"] == "hinge"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["variant"] == "hinge" and metrics["eval"]["accuracy"] > 0.8  # the synthetic signal is learnt

    evaluated = rewardlab("eval", "--model", final, "--data", eval_file, "--out", tmp_path / "eval.json")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert json.loads((tmp_path / "eval.json").read_text())["accuracy"] == metrics["eval"]["accuracy"]

    convs = tmp_path / "convs.jsonl"
    convs.write_text(json.dumps({"prompt": "how are you ?", "response": "good kind helpful"}) + "\n")
    audited = rewardlab("audit", "--model", final, "--data", convs, "--probes", "length",
                        "--out", tmp_path / "a.html", "--json", tmp_path / "a.json")
    assert audited.returncode == 0, audited.stderr[-3000:]
    trace = json.loads((tmp_path / "a.json").read_text())["traces"][0]
    assert trace["kind"] == "prefix_reward" and len(trace["values"]) > 1

    exported = rewardlab("export", "--model", final, "--out", tmp_path / "stock")  # no stock form: one line
    assert exported.returncode == 2 and "kind 'hinge' has no stock transformers form" in exported.stderr

    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from rewardlab import load_scorer
    from rewardlab.serve.app import create_app

    scorer = load_scorer(str(final))
    assert type(scorer.model.score).__name__ == "TanhHead"  # its own head, read back from the checkpoint
    with TestClient(create_app(scorer)) as client:
        scored = client.post("/score", json={"conversations": [[{"role": "user", "content": "how are you ?"},
                                                                 {"role": "assistant", "content": "good kind"}]]})
        assert scored.status_code == 200, scored.text
        traced = client.post("/trace", json={"prompt": "how are you ?", "response": "good kind"})
        assert traced.status_code == 200, traced.text
    assert abs(traced.json()["reward"] - scored.json()["rewards"][0]) < 1e-4


def test_a_missing_plugin_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("REWARDLAB_PLUGINS", str(tmp_path / "nope.py"))
    done = rewardlab("variants")
    assert done.returncode == 2 and "REWARDLAB_PLUGINS" in done.stderr and "nope.py: no such file" in done.stderr
    assert "Traceback" not in done.stderr


def test_without_the_plugin_the_kind_is_unknown(tiny_llama, pair_files, tmp_path):
    assert "REWARDLAB_PLUGINS" not in os.environ
    done = rewardlab("train", TINY, f"model.path={tiny_llama}", f"data.train={pair_files[0]}", "variant.name=hinge",
                     f"output_dir={tmp_path / 'run'}")
    assert done.returncode == 2 and "unknown variant 'hinge'" in done.stderr
