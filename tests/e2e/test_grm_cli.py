"""GRM variants and ensembles through the real command line on a tiny model: ``train`` then ``eval``
for each of grm_sft, grm_dpo, grm_dpo_noref and a 2-member ensemble, and ``export`` to a stock
classifier that scores like the GRM or the LoRA adapter (an MLP head is refused, saying why)."""

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


def test_export_refuses_a_directory_that_is_not_a_reward_model(tmp_path):
    done = rewardlab("export", "--model", tmp_path, "--out", tmp_path / "x")
    assert done.returncode == 2 and "not a rewardlab reward model" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_trained_lora_adapter_is_portable_and_exports_to_a_stock_classifier(tiny_llama, pair_files, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification

    from rewardlab import load_scorer

    train(tiny_llama, pair_files, tmp_path / "run", "variant.name=bt", "model.lora_r=4", "model.merge_lora=false",
          "train.max_steps=2", "data.eval=")
    adapter, out = tmp_path / "run" / "final", tmp_path / "exported"
    for name in ("rewardlab_adapter.json", "adapter_config.json"):  # no path of the training machine
        assert str(tiny_llama) not in (adapter / name).read_text() and str(tmp_path) not in (adapter / name).read_text()
    done = rewardlab("export", "--model", adapter, "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    seqs = [[2, 10, 11, 12, 3], [2, 13, 14, 3]]
    stock = AutoModelForSequenceClassification.from_pretrained(out).eval()
    with torch.no_grad():
        got = torch.cat([stock(input_ids=torch.tensor([s])).logits[:, 0] for s in seqs])
    # Merged weights round once more in fp32 than adapter + base: a relative 1e-4, not the last bit.
    torch.testing.assert_close(got, load_scorer(str(adapter)).score_ids(seqs), rtol=1e-4, atol=1e-4)


def test_export_of_an_mlp_head_is_one_line_saying_why(tiny_llama, tmp_path):
    from transformers import AutoTokenizer

    from rewardlab.models.scalar import HeadConfig, build_reward_model, save_reward_model

    tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    mlp = save_reward_model(build_reward_model(str(tiny_llama), tok, HeadConfig(type="mlp", hidden_sizes=[8])),
                            tok, tmp_path / "mlp")
    done = rewardlab("export", "--model", mlp, "--out", tmp_path / "x")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and "an MLP reward head has no stock transformers form" in done.stderr
