"""A run with ``dtype: auto`` says what it chose: metrics.json, eval provenance and the scorer name the
dtype that was used (with the measurement behind it), never ``auto``. The measurement is replaced by
fixed rates so both answers are exercised on any machine."""

from __future__ import annotations

import json

import pytest
import torch

from rewardlab import precision
from rewardlab.cli.main import main
from rewardlab.config import load_recipe
from rewardlab.models.scorer import ScalarScorer
from rewardlab.train.run import train_reward_model
from tests.conftest import REPO


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize(("rates", "expected"), [((20.0, 40.0), "float32"), ((120.0, 40.0), "bfloat16")])
def test_a_run_with_dtype_auto_names_the_dtype_it_used(monkeypatch, tmp_path, tiny_llama, pair_files, rates,
                                                       expected):
    monkeypatch.setenv("REWARDLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(precision, "_CHOICES", {})
    monkeypatch.setattr(precision, "measure_matmuls", lambda device="cpu", **_: rates)
    train_file, eval_file = pair_files
    recipe = load_recipe(REPO / "configs" / "tiny_bt.yaml", [
        f"model.path={tiny_llama}", f"data.train={train_file}", f"data.eval={eval_file}",
        f"output_dir={tmp_path / 'run'}", "train.max_steps=2", "train.dtype=auto"])

    metrics = train_reward_model(recipe)

    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["train"]["dtype"] == metrics["train"]["dtype"] == expected
    auto = written["train"]["dtype_auto"]
    assert (auto["dtype"], auto["bfloat16_gflops"], auto["float32_gflops"]) == (expected, *rates)
    assert written["recipe"]["train"]["dtype"] == "auto"  # the recipe as given; train.dtype says what it became

    out = tmp_path / "eval.json"
    assert main(["eval", "--model", str(tmp_path / "run" / "final"), "--data", str(eval_file), "--dtype", "auto",
                 "--device", "cpu", "--out", str(out)]) == 0
    prov = json.loads(out.read_text())["provenance"]
    assert prov["dtype"] == expected and prov["dtypes"] == {"model": expected}
    assert ScalarScorer.load(tmp_path / "run" / "final", dtype="auto", device="cpu").dtype == precision.DTYPES[expected]


def test_a_named_dtype_records_no_measurement(tmp_path, tiny_llama, pair_files):
    train_file, _ = pair_files
    recipe = load_recipe(REPO / "configs" / "tiny_bt.yaml", [
        f"model.path={tiny_llama}", f"data.train={train_file}", "data.eval=", f"output_dir={tmp_path / 'run'}",
        "train.max_steps=1", "train.dtype=float32"])
    metrics = train_reward_model(recipe)
    assert metrics["train"]["dtype"] == "float32" and metrics["train"]["dtype_auto"] is None
