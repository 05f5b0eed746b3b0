"""GRM on a tiny llama, in-process: α = 0 is Bradley-Terry exactly, log-probabilities respect packed
segment boundaries, the reference cache is the initial model's, checkpoints reload for training,
export to a stock classifier, and LoRA adapters round-trip with both heads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close
from transformers import AutoTokenizer, TrainingArguments

from rewardlab.config import load_recipe
from rewardlab.data import load_pairs
from rewardlab.data.encode import ChatEncoder
from rewardlab.models.batching import pad
from rewardlab.models.export import export_reward_model
from rewardlab.models.grm import (
    GRMForward,
    build_grm_model,
    grm_forward,
    load_grm_model,
    pair_response_logps,
    response_mask_for,
)
from rewardlab.models.packing import pack
from rewardlab.models.scalar import HeadConfig, RewardForward, build_reward_model, save_reward_model
from rewardlab.models.scorer import ScalarScorer
from rewardlab.train.data import PairCollator, tokenize_pairs
from rewardlab.train.grm import add_reference_logps
from rewardlab.train.run import train_reward_model
from rewardlab.train.trainer import RewardTrainer
from rewardlab.variants import make_variant
from tests.conftest import REPO
from tests.fp32 import forward_terms, fp32_tol

TINY = REPO / "configs" / "tiny_bt.yaml"
GRM_VARIANTS = ["grm_sft", "grm_dpo", "grm_dpo_noref"]
LONGEST = 64
"""No sequence in these tests is longer (the tiny recipe's max_length)."""


# The comparisons below are one fp32 computation against another order of it (packed, padded, forked,
# one sequence at a time through the stock forward, cached, reloaded, merged, exported): what fp32
# promises for values of ``ref``'s magnitude from the model's shape (tests/fp32.py).
def reward_tol(model, ref: torch.Tensor) -> dict:
    return fp32_tol(forward_terms(model.config, LONGEST), ref)


def logp_tol(model, ref: torch.Tensor) -> dict:
    """Summed response log-probabilities: the reward's path plus the LM head and the log-softmax."""
    return fp32_tol(forward_terms(model.config, LONGEST, vocab=True), ref)


def recipe(model: Path, pair_files, out: Path, *overrides: str):
    train_file, eval_file = pair_files
    return load_recipe(TINY, [f"model.path={model}", f"data.train={train_file}", f"data.eval={eval_file}",
                              f"output_dir={out}", *overrides])


@pytest.fixture(scope="module")
def tok(tiny_llama):
    return AutoTokenizer.from_pretrained(tiny_llama)


@pytest.fixture(scope="module")
def dataset(tiny_llama, tok, pair_files):
    pairs, _ = load_pairs(pair_files[0])
    return tokenize_pairs(pairs[:8], ChatEncoder(tok, max_length=64))


def _trainer(module, variant, tmp_path) -> RewardTrainer:
    from functools import partial

    from rewardlab.kinds import KINDS

    args = TrainingArguments(output_dir=str(tmp_path / "t"), use_cpu=True, report_to="none")
    return RewardTrainer(model=module, args=args, variant=variant, loss=partial(KINDS.get(variant.kind).loss, variant))


@pytest.mark.parametrize("name", GRM_VARIANTS)
def test_alpha_zero_is_bradley_terry_loss_and_gradients(tiny_llama, tok, dataset, tmp_path, name):
    torch.manual_seed(0)
    bt_model = build_reward_model(str(tiny_llama), tok)
    grm = build_grm_model(str(tiny_llama), tok)
    grm.score.weight.data.copy_(bt_model.score.weight.data)
    rows = [dataset[i] for i in range(len(dataset))]
    bt_batch = PairCollator("pack", 0)(rows)
    grm_batch = PairCollator("pack", 0, response_mask="both", with_reference=False)(rows)
    grm_batch["ref_logps"] = torch.zeros(2 * len(rows))  # present, as for grm_dpo; α = 0 ignores it

    bt_loss = _trainer(RewardForward(bt_model), make_variant("bt"), tmp_path).compute_loss(
        RewardForward(bt_model), bt_batch)
    variant = make_variant(name, {"alpha": 0.0})
    grm_loss = _trainer(GRMForward(grm), variant, tmp_path).compute_loss(GRMForward(grm), grm_batch)
    bt_loss.backward()
    grm_loss.backward()

    # Exact by construction: the same backbone weights, batch and operations in the same order; α = 0
    # adds exact zeros to the loss and to every gradient.
    assert torch.equal(bt_loss, grm_loss)
    bt_params = dict(bt_model.named_parameters())
    compared = 0
    for k, p in grm.named_parameters():
        if k.startswith(("model.", "score.")):
            assert torch.equal(p.grad, bt_params[k].grad), k
            compared += 1
    assert compared == len(bt_params)
    # With α > 0 the regulariser moves the backbone: the test above would notice a leak.
    grm.zero_grad()
    _trainer(GRMForward(grm), make_variant(name, {"alpha": 0.5}), tmp_path).compute_loss(
        GRMForward(grm), grm_batch).backward()
    assert not torch.equal(grm.model.norm.weight.grad, bt_model.model.norm.weight.grad)


def _direct_logps(model, seqs, prompt_lens) -> torch.Tensor:
    """Each sequence alone through the stock causal-LM forward: Σ log p(x_t | x_<t) over t ≥ max(p, 1)."""
    out = []
    for s, p in zip(seqs, prompt_lens, strict=True):
        ids = torch.tensor([s])
        with torch.no_grad():
            logp = model(input_ids=ids).logits[0].log_softmax(-1)
        out.append(sum((logp[t - 1, s[t]] for t in range(max(p, 1), len(s))), torch.tensor(0.0)))
    return torch.stack(out)


def test_packed_and_padded_logps_agree_and_stay_within_each_sequence(tiny_llama, tok):
    grm = build_grm_model(str(tiny_llama), tok).eval()
    # The second sequence has no prompt: its first token must not be scored from the first's last one.
    seqs = [[2, 10, 11, 12, 3], [2, 13, 14, 3], [2, 15, 16, 17, 18, 19, 3], [5]]
    prompts = [2, 0, 3, 0]
    lens = [len(s) for s in seqs]
    with torch.no_grad():
        r_pack, lp_pack, n_pack = grm_forward(grm, pack(seqs), response_mask_for(lens, prompts, True))
        r_pad, lp_pad, n_pad = grm_forward(grm, pad(seqs, 0), response_mask_for(lens, prompts, False))
        left = pad(seqs, 0, side="left")
        mask_left = torch.stack([m.roll(int(w - n)) for m, n, w in zip(
            response_mask_for(lens, prompts, False), lens, [max(lens)] * 4, strict=True)])
        r_left, lp_left, _ = grm_forward(grm, left, mask_left)
    expected = _direct_logps(grm, seqs, prompts)
    assert_close(lp_pack, expected, **logp_tol(grm, expected))
    assert_close(lp_pad, expected, **logp_tol(grm, expected))
    assert_close(lp_left, expected, **logp_tol(grm, expected))
    assert n_pack.tolist() == n_pad.tolist() == [3.0, 3.0, 4.0, 0.0]
    assert_close(r_pack, r_pad, **reward_tol(grm, r_pad))
    assert_close(r_left, r_pad, **reward_tol(grm, r_pad))
    assert_close(r_pad, ScalarScorer(grm, tok).score_ids(seqs), **reward_tol(grm, r_pad))


def test_forked_pairs_match_separate_sequences_and_responses_do_not_see_each_other(tiny_llama, tok, monkeypatch):
    import rewardlab.models.grm as grm_module

    grm = build_grm_model(str(tiny_llama), tok).eval()
    unforked = []
    plain = grm_module.response_logps
    monkeypatch.setattr(grm_module, "response_logps", lambda m, seqs, *a: unforked.append(len(seqs)) or plain(m, seqs, *a))
    # Pairs 0 and 2 share their prompt (forked); pair 1's prompts differ and pair 3 has no prompt.
    chosen = [[2, 10, 11, 12, 3], [2, 20, 21, 3], [2, 15, 16, 17, 18, 19, 3], [5, 6]]
    rejected = [[2, 10, 11, 30, 31, 32, 3], [2, 22, 23, 3], [2, 15, 16, 17, 40], [7]]
    pc, pr = [3, 2, 4, 0], [3, 3, 4, 0]
    c, r = pair_response_logps(grm, chosen, rejected, pc, pr, batch_tokens=16)  # several batches
    assert unforked == [4]  # pairs 1 and 3 ran as two sequences each, 0 and 2 forked
    assert_close(c, _direct_logps(grm, chosen, pc), **logp_tol(grm, c))
    assert_close(r, _direct_logps(grm, rejected, pr), **logp_tol(grm, r))
    # Changing a chosen response moves nothing on the rejected side of any pair.
    changed = [s[:p] + [t + 1 if t < 60 else t for t in s[p:]] for s, p in zip(chosen, pc, strict=True)]
    c2, r2 = pair_response_logps(grm, changed, rejected, pc, pr)
    assert_close(r2, r, **logp_tol(grm, r))
    assert not torch.allclose(c2, c)


def test_reference_cache_equals_a_fresh_reference_forward(tiny_llama, tok, dataset):
    grm = build_grm_model(str(tiny_llama), tok)
    ds = add_reference_logps(dataset, grm, batch_tokens=64)  # several length-grouped batches
    for side in ("chosen", "rejected"):
        fresh = _direct_logps(grm, ds[f"{side}_ids"], ds[f"{side}_prompt_len"])
        assert_close(torch.tensor(ds[f"ref_{side}_logps"]), fresh, **logp_tol(grm, fresh))


def test_reference_pass_bypasses_only_adapters_still_at_init(tiny_llama, tok, dataset):
    import contextlib

    from peft import LoraConfig, get_peft_model

    from rewardlab.train.grm import _without_identity_adapters

    grm = get_peft_model(build_grm_model(str(tiny_llama), tok), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    assert not isinstance(_without_identity_adapters(grm), contextlib.nullcontext)  # lora_B = 0: bypassed
    with torch.no_grad():
        next(p for n, p in grm.named_parameters() if "lora_B" in n).fill_(0.5)
    assert isinstance(_without_identity_adapters(grm), contextlib.nullcontext)  # a trained adapter stays on
    ds = add_reference_logps(dataset.select(range(4)), grm)
    with_adapter, _ = pair_response_logps(grm, ds["chosen_ids"], ds["rejected_ids"], ds["chosen_prompt_len"],
                                          ds["rejected_prompt_len"])
    with grm.disable_adapter():
        without, _ = pair_response_logps(grm, ds["chosen_ids"], ds["rejected_ids"], ds["chosen_prompt_len"],
                                         ds["rejected_prompt_len"])
    assert_close(torch.tensor(ds["ref_chosen_logps"]), with_adapter, **logp_tol(grm, with_adapter))
    assert not torch.allclose(with_adapter, without)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_training_uses_the_initial_model_as_reference(tiny_llama, tok, pair_files, tmp_path, monkeypatch, lora):
    import rewardlab.train.single as run

    seen = {}

    class Recording(RewardTrainer):
        def __init__(self, *a, **kw):
            seen["train"] = kw["train_dataset"]
            super().__init__(*a, **kw)

    monkeypatch.setattr(run, "RewardTrainer", Recording)
    extra = ["model.lora_r=4"] if lora else []
    train_reward_model(recipe(tiny_llama, pair_files, tmp_path / "run", "variant.name=grm_dpo",
                              "train.max_steps=2", *extra))
    ds = seen["train"]
    initial = build_grm_model(str(tiny_llama), tok)
    fresh = _direct_logps(initial, ds["chosen_ids"][:6], ds["chosen_prompt_len"][:6])
    assert_close(torch.tensor(ds["ref_chosen_logps"][:6]), fresh, **logp_tol(initial, fresh))


@pytest.mark.parametrize("name", GRM_VARIANTS)
def test_variant_learns_the_synthetic_preference(tiny_llama, pair_files, tmp_path, name):
    m = train_reward_model(recipe(tiny_llama, pair_files, tmp_path / "run", f"variant.name={name}"))
    assert m["eval"]["accuracy"] > 0.8, m["eval"]
    curve = [e["loss"] for e in m["log_history"] if "loss" in e]
    assert sum(curve[-6:]) / 6 < sum(curve[:6]) / 6 - 0.05, curve
    cfg = json.loads((tmp_path / "run" / "final" / "config.json").read_text())
    assert cfg["rewardlab"]["kind"] == "grm" and cfg["architectures"] == ["LlamaForCausalLM"]


def test_checkpoint_reloads_both_heads_for_further_training(tiny_llama, tok, pair_files, tmp_path):
    train_reward_model(recipe(tiny_llama, pair_files, tmp_path / "a", "variant.name=grm_sft",
                              "model.head=mlp", "model.mlp_hidden=[16,8]", "train.max_steps=4"))
    final = tmp_path / "a" / "final"
    again = build_grm_model(str(final), tok)  # what model.path=final builds
    saved = load_grm_model(final)
    assert again.config.rewardlab["head"] == {"type": "mlp", "hidden_sizes": [16, 8], "pooling": "last"}
    for (k, a), (k2, b) in zip(again.state_dict().items(), saved.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b), k
    base = build_grm_model(str(tiny_llama), tok)
    assert not torch.equal(again.lm_head.weight, base.lm_head.weight)  # the trained LM head, not the base's
    m = train_reward_model(recipe(final, pair_files, tmp_path / "b", "variant.name=grm_dpo", "train.max_steps=2"))
    assert m["train"]["steps"] == 2 and torch.isfinite(torch.tensor(m["train"]["loss"]))
    # The first step starts from the saved model: its reward gap is the saved one's, not a fresh head's.
    seqs = [[2, 10, 11, 12, 3], [2, 13, 14, 3]]
    expected = ScalarScorer(saved, tok).score_ids(seqs)
    assert_close(ScalarScorer(again, tok).score_ids(seqs), expected, **reward_tol(saved, expected))


def test_export_is_a_plain_classifier_with_the_same_scores(tiny_llama, tok, pair_files, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from rewardlab import load_scorer

    train_reward_model(recipe(tiny_llama, pair_files, tmp_path / "run", "variant.name=grm_sft",
                              "train.max_steps=4", "data.eval="))
    final = tmp_path / "run" / "final"
    out = export_reward_model(final, tmp_path / "exported")
    seqs = [[2, 10, 11, 12, 3], [2, 13, 14, 3], [2, 15, 16, 17, 18, 19, 3]]
    expected = load_scorer(str(final)).score_ids(seqs)
    exported = load_scorer(str(out))
    assert_close(exported.score_ids(seqs), expected, **reward_tol(exported.model, expected))
    cfg = json.loads((out / "config.json").read_text())
    assert "kind" not in cfg["rewardlab"] and cfg["architectures"] == ["LlamaForSequenceClassification"]
    stock = AutoModelForSequenceClassification.from_pretrained(out).eval()  # no rewardlab code, right padding
    batch = pad(seqs, stock.config.pad_token_id)
    with torch.no_grad():
        scores = stock(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, 0]
    assert_close(scores, expected, **reward_tol(stock, expected))


def test_export_refuses_an_mlp_head_in_one_line(tiny_llama, tok, tmp_path):
    """Stock transformers has no MLP head: export says so instead of writing what it would misread."""
    from rewardlab.models.export import ExportError

    model = build_grm_model(str(tiny_llama), tok, HeadConfig(type="mlp", hidden_sizes=[16]))
    final = save_reward_model(model, tok, tmp_path / "grm-mlp")
    with pytest.raises(ExportError, match="an MLP reward head has no stock transformers form") as err:
        export_reward_model(final, tmp_path / "exported")
    assert "\n" not in str(err.value) and not (tmp_path / "exported").exists()


def test_lora_adapter_keeps_both_heads_and_merges(tiny_llama, tok, pair_files, tmp_path):
    from rewardlab.kinds import kind_of
    from rewardlab.train.single import build_model

    r = recipe(tiny_llama, pair_files, tmp_path / "x", "variant.name=grm_dpo", "model.lora_r=4")
    torch.manual_seed(1)
    model = build_model(r, str(tiny_llama), tok, kind_of(r.variant.name))
    with torch.no_grad():  # a trained-looking adapter and head
        for k, p in model.named_parameters():
            if "lora_B" in k or "score" in k:
                p.add_(0.3 * torch.randn_like(p))
    seqs = [[2, 10, 11, 12, 3], [2, 13, 14, 3]]
    mask = response_mask_for([5, 4], [2, 1], True)

    def outputs(m):
        with torch.no_grad():
            return grm_forward(m.eval(), pack(seqs), mask)

    before = outputs(model)
    adapter = save_reward_model(model, tok, tmp_path / "adapter", merge=False, base_model=str(tiny_llama))
    meta = json.loads((adapter / "rewardlab_adapter.json").read_text())
    assert meta["kind"] == "grm" and (adapter / "adapter_model.safetensors").exists()
    tols = [reward_tol(model, before[0]), logp_tol(model, before[1]), {"atol": 0, "rtol": 0}]  # counts: exact
    reloaded = load_grm_model(adapter)
    for a, b, tol in zip(outputs(reloaded), before, tols, strict=True):
        assert_close(a, b, **tol)
    merged = save_reward_model(reloaded, tok, tmp_path / "merged", merge=True)
    assert not (merged / "adapter_config.json").exists()
    for a, b, tol in zip(outputs(load_grm_model(merged)), before, tols, strict=True):
        assert_close(a, b, **tol)
    assert_close(ScalarScorer.load(adapter).score_ids(seqs), before[0], **tols[0])
