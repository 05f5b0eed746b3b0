"""GRM variants and ensembles through the real command line on a tiny model: ``train`` then ``eval``
for each of grm_sft, grm_dpo, grm_dpo_noref and a 2-member ensemble, and ``export`` to a stock
classifier that scores like the GRM."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO
from tests.e2e.test_cli import rewardlab
from tests.fp32 import forward_terms, fp32_tol

TINY = REPO / "configs" / "tiny_bt.yaml"


def train(tiny_llama, pair_files, out, *overrides):
    done = rewardlab("train", TINY, f"model.path={tiny_llama}", f"data.train={pair_files[0]}",
                     f"data.eval={pair_files[1]}", f"output_dir={out}", *overrides)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param(["variant.name=grm_sft"], id="grm_sft"),
        pytest.param(["variant.name=grm_dpo", "variant.alpha=0.05", "variant.beta=0.2"], id="grm_dpo"),
        pytest.param(["variant.name=grm_dpo_noref", "model.lora_r=4", "model.merge_lora=false"],
                     id="grm_dpo_noref-lora"),
        pytest.param(["variant.name=grm_sft", "variant.nll=true", "train.ensemble=2",
                      "train.ensemble_reduction=min"], id="ensemble"),
    ],
)
def test_train_then_eval(tiny_llama, pair_files, tmp_path, overrides):
    out = tmp_path / "run"
    done = train(tiny_llama, pair_files, out, *overrides)
    assert "held-out accuracy" in done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    model = metrics["final_model"]
    res = tmp_path / "eval.json"
    done = rewardlab("eval", "--model", model, "--data", pair_files[1], "--out", res)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(res.read_text())
    assert summary["n"] == 32 and summary["accuracy"] > 0.8
    assert summary["accuracy"] == pytest.approx(metrics["eval"]["accuracy"], abs=1e-9)


def test_export_writes_a_stock_classifier_with_the_same_scores(tiny_llama, pair_files, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification

    from rewardlab import load_scorer

    train(tiny_llama, pair_files, tmp_path / "run", "variant.name=grm_dpo", "train.max_steps=4", "data.eval=")
    final, out = tmp_path / "run" / "final", tmp_path / "exported"
    done = rewardlab("export", "--model", final, "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert str(out) in done.stdout
    seqs = [[2, 10, 11, 12, 3], [2, 13, 14, 3]]
    stock = AutoModelForSequenceClassification.from_pretrained(out).eval()
    with torch.no_grad():
        got = torch.cat([stock(input_ids=torch.tensor([s])).logits[:, 0] for s in seqs])
    expected = load_scorer(str(final)).score_ids(seqs)  # stock against rewardlab: fp32 orders (tests/fp32.py)
    torch.testing.assert_close(got, expected, **fp32_tol(forward_terms(stock.config, 64), expected))


def test_export_refuses_a_model_that_is_not_a_grm(tmp_path):
    done = rewardlab("export", "--model", tmp_path, "--out", tmp_path / "x")
    assert done.returncode == 2 and "not a GRM checkpoint" in done.stderr
    assert "Traceback" not in done.stderr
