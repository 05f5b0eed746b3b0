"""Every variant trains on the synthetic pairs with a tiny model, in-process, through the recipe API.

The synthetic pairs carry a clean signal (chosen answers use kind/helpful words, rejected ones rude/
harmful words), so every variant reaches held-out accuracy near 1.0 in 3 epochs (24 steps) at lr 3e-3.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig

from rewardlab.config import load_recipe
from rewardlab.data import DataError
from rewardlab.train.run import train_reward_model
from tests.conftest import REPO, make_tiny_bert, synthetic_pairs, write_jsonl
from tests.fp32 import adam_atol, forward_terms, grad_terms, trained_loss_atol

TINY = REPO / "configs" / "tiny_bt.yaml"
METRICS_KEYS = {
    "output_dir",
    "final_model",
    "variant",
    "processes",
    "resumed_from",
    "train_seconds",
    "train",
    "log_history",
    "data",
    "truncation",
    "recipe",
    "eval",
}
EVAL_KEYS = {"accuracy", "accuracy_ties_as_loss", "n", "ties", "ci95", "prompts", "per_subset", "length"}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and spinning OpenMP threads on a busy 2-core machine
    make a 1-second run take 20."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def train(model: Path, pair_files: tuple[Path, Path], out: Path, *overrides: str) -> dict:
    train_file, eval_file = pair_files
    recipe = load_recipe(
        TINY,
        [
            f"model.path={model}",
            f"data.train={train_file}",
            f"data.eval={eval_file}",
            f"output_dir={out}",
            *overrides,
        ],
    )
    return train_reward_model(recipe)


def losses(metrics: dict) -> list[float]:
    return [e["loss"] for e in metrics["log_history"] if "loss" in e]


@pytest.fixture(scope="module")
def word_bert(tmp_path_factory) -> Path:
    """``make_tiny_bert`` with its vocabulary really loaded: transformers 5's ``BertTokenizerFast``
    ignores ``vocab_file=`` (every word becomes [UNK]); ``vocab=`` takes the file."""
    from transformers import BertTokenizerFast

    d = make_tiny_bert(tmp_path_factory.mktemp("word-bert"))
    BertTokenizerFast(vocab=str(d / "vocab.txt")).save_pretrained(d)
    return d


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param([], id="bt"),
        pytest.param(["variant.name=bt_margin"], id="bt_margin"),
        pytest.param(
            ["variant.name=bt_label_smoothing", "variant.label_smoothing=0.1"], id="bt_label_smoothing"
        ),
        pytest.param(["variant.name=bt_frozen", "train.lr=3e-2"], id="bt_frozen"),
        pytest.param(["model.lora_r=4"], id="lora"),
        pytest.param(["model.head=mlp", "model.mlp_hidden=[16]"], id="mlp_head"),
    ],
)
def test_variant_learns_the_synthetic_preference(tiny_llama, pair_files, tmp_path, overrides):
    m = train(tiny_llama, pair_files, tmp_path / "run", *overrides)

    assert m["eval"]["accuracy"] > 0.8, m["eval"]
    assert set(m) == METRICS_KEYS
    assert set(m["eval"]) == EVAL_KEYS and m["eval"]["n"] == 32
    assert m["train"]["pairs"] == 64 and m["train"]["steps"] == 24 and m["resumed_from"] is None
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(saved) == METRICS_KEYS and saved["eval"] == m["eval"]
    final = tmp_path / "run" / "final"
    assert (final / "config.json").exists() and (final / "model.safetensors").exists()
    assert (final / "tokenizer.json").exists()
    assert json.loads((tmp_path / "run" / "eval.json").read_text())["accuracy"] == m["eval"]["accuracy"]
    curve = losses(m)
    assert len(curve) == 24  # logging_steps=1
    assert sum(curve[-6:]) / 6 < sum(curve[:6]) / 6 - 0.05, curve


def test_encoder_trains_on_padded_batches(word_bert, pair_files, tmp_path):
    m = train(word_bert, pair_files, tmp_path / "run")
    assert m["truncation"]["identical_after_truncation"] == 0  # the words are in the vocabulary
    assert m["eval"]["accuracy"] > 0.8, m["eval"]
    curve = losses(m)
    assert sum(curve[-6:]) / 6 < sum(curve[:6]) / 6, curve


def test_margin_variant_refuses_data_without_margins(tiny_llama, tmp_path):
    rows = [{k: v for k, v in r.items() if k != "margin"} for r in synthetic_pairs(8)]
    no_margin = write_jsonl(tmp_path / "no_margin.jsonl", rows)
    with pytest.raises(
        DataError, match=r"no_margin\.jsonl: field 'margin': variant 'bt_margin' needs a margin"
    ):
        train(tiny_llama, (no_margin, no_margin), tmp_path / "run", "variant.name=bt_margin")


def test_frozen_backbone_keeps_the_base_weights_and_trains_the_head(tiny_llama, pair_files, tmp_path):
    from transformers import AutoTokenizer, set_seed

    from rewardlab.models.scalar import build_reward_model

    m = train(tiny_llama, pair_files, tmp_path / "run", "variant.name=bt_frozen", "train.lr=3e-2")
    final = load_file(tmp_path / "run" / "final" / "model.safetensors")
    base = load_file(tiny_llama / "model.safetensors")
    backbone = [k for k in final if k.startswith("model.")]
    assert backbone and set(backbone) <= set(base)
    for k in backbone:
        assert torch.equal(final[k], base[k]), k
    # The head as training found it: same seed, same construction as train_reward_model.
    set_seed(0)
    initial = build_reward_model(str(tiny_llama), AutoTokenizer.from_pretrained(tiny_llama)).score.weight
    assert not torch.allclose(final["score.weight"], initial.detach(), atol=1e-3)
    assert m["eval"]["accuracy"] > 0.8


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param([], id="full"),
        pytest.param(["model.lora_r=4"], id="lora"),
        pytest.param(["variant.name=bt_frozen"], id="frozen"),
    ],
)
def test_gathered_weights_path_saves_the_same_model(tiny_llama, pair_files, tmp_path, monkeypatch, overrides):
    """Under FSDP / ZeRO-3 the final model is rebuilt from a gathered state dict; here (one process,
    nothing sharded) that path must give exactly what saving the trained model gives."""
    import rewardlab.train.single as single

    short = ["train.max_steps=3", "data.eval=", *overrides]
    train(tiny_llama, pair_files, tmp_path / "direct", *short)
    monkeypatch.setattr(single, "shards_weights", lambda trainer: True)
    train(tiny_llama, pair_files, tmp_path / "gathered", *short)
    a = load_file(tmp_path / "direct" / "final" / "model.safetensors")
    b = load_file(tmp_path / "gathered" / "final" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:  # exact by construction: the same training in the same process, saved two ways
        assert torch.equal(a[k], b[k]), k


def test_every_metrics_key_is_documented():
    from rewardlab.train import report

    doc = report.__doc__  # what train_reward_model's docstring points to
    assert all(f"``{k}``" in doc for k in METRICS_KEYS | EVAL_KEYS), [k for k in METRICS_KEYS if k not in doc]


def test_tokens_seen_counts_the_tokens_of_the_batches_trained_on(tiny_llama, word_bert, pair_files, tmp_path,
                                                                   monkeypatch):
    """``train.tokens_seen`` is what the steps consumed, not the dataset's sum: twice the sum for two
    epochs, the sum of the batches run for a partial epoch, and real tokens only for padded batches."""
    from rewardlab.train.trainer import RewardTrainer

    two = train(tiny_llama, pair_files, tmp_path / "two", "train.epochs=2", "data.eval=")
    assert two["train"]["steps"] == 16
    assert two["train"]["tokens_seen"] == 2 * two["train"]["tokens"]
    assert two["train"]["tokens_per_s"] > 0

    seen: list[int] = []
    step = RewardTrainer.training_step

    def recording(self, model, inputs, *args, **kwargs):
        row = int(inputs["input_ids"].numel())  # packed: one row, no padding
        assert row < int(inputs["num_tokens"])  # forked: each shared prompt runs once
        seen.append(int(inputs["num_tokens"]))  # ... but both sides count, as separate sequences
        return step(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(RewardTrainer, "training_step", recording)
    part = train(tiny_llama, pair_files, tmp_path / "part", "train.max_steps=3", "data.eval=")
    assert len(seen) == 3 and part["train"]["tokens_seen"] == sum(seen) < part["train"]["tokens"]
    monkeypatch.undo()

    padded = train(word_bert, pair_files, tmp_path / "padded", "train.epochs=1", "data.eval=")
    assert padded["train"]["tokens_seen"] == padded["train"]["tokens"]  # padding is not counted


@pytest.mark.parametrize("overrides", [pytest.param([], id="full"), pytest.param(["model.lora_r=4"], id="lora")])
def test_train_layers_changes_only_the_top_blocks(tiny_llama, pair_files, tmp_path, overrides):
    """model.train_layers=1 on a 2-block model: block 0 and the embeddings keep the base weights."""
    train(tiny_llama, pair_files, tmp_path / "run", "model.train_layers=1", "train.max_steps=4", *overrides)
    final = load_file(tmp_path / "run" / "final" / "model.safetensors")
    base = load_file(tiny_llama / "model.safetensors")
    lower = [k for k in final if k.startswith(("model.embed_tokens", "model.layers.0."))]
    upper = [k for k in final if k.startswith("model.layers.1.") and k.endswith("proj.weight")]
    assert lower and upper
    for k in lower:
        assert torch.equal(final[k], base[k]), k
    assert any(not torch.equal(final[k], base[k]) for k in upper)


def test_forked_prompts_train_like_separate_sequences(tiny_llama, pair_files, tmp_path):
    forked = train(tiny_llama, pair_files, tmp_path / "forked", "train.max_steps=6", "train.logging_steps=1")
    apart = train(tiny_llama, pair_files, tmp_path / "apart", "train.max_steps=6", "train.logging_steps=1",
                  "train.fork_prompts=false")
    # The same training in two fp32 orders: per-step and Adam-carried fp32 tolerances (tests/fp32.py), for
    # the tiny llama's shape and batches of at most batch_size pairs of max_length tokens.
    config, t = AutoConfig.from_pretrained(tiny_llama), load_recipe(TINY).data
    batch = forked["recipe"]["train"]["batch_size"]
    terms = grad_terms(config, t.max_length, 2 * batch * t.max_length)
    assert len(losses(forked)) == 6
    for step, (f, s) in enumerate(zip(losses(forked), losses(apart), strict=True), start=1):
        assert abs(f - s) <= trained_loss_atol(step, forward_terms(config, t.max_length), s), step
    assert forked["train"]["tokens_seen"] == apart["train"]["tokens_seen"]
    assert forked["eval"]["accuracy"] == apart["eval"]["accuracy"]
    a = load_file(tmp_path / "forked" / "final" / "model.safetensors")
    b = load_file(tmp_path / "apart" / "final" / "model.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=adam_atol(6, forked["recipe"]["train"]["lr"], terms),
                                   rtol=0.0, msg=name)


@pytest.mark.parametrize("overrides", [pytest.param([], id="full"),
                                       pytest.param(["model.lora_r=4", "model.merge_lora=false"], id="adapter")])
def test_the_checkpoint_keeps_its_truncation_and_scores_with_it(tiny_llama, pair_files, tmp_path, overrides):
    """data.max_length and data.min_prompt_tokens travel with the checkpoint; the final evaluation and a
    later load truncate prompts as training did."""
    from rewardlab.models.scorer import ScalarScorer

    m = train(tiny_llama, pair_files, tmp_path / "run", "data.max_length=48", "data.min_prompt_tokens=5",
              "train.max_steps=1", *overrides)
    scorer = ScalarScorer.load(m["final_model"], max_length=48)
    assert scorer.encoder.min_prompt_tokens == 5
    assert ScalarScorer.load(m["final_model"], min_prompt_tokens=9).encoder.min_prompt_tokens == 9  # asked: kept
    from rewardlab.models.scalar import encoding_of

    assert encoding_of(scorer.model) == {"max_length": 48, "min_prompt_tokens": 5}
