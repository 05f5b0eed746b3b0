"""The batching module: one layout decision, one forward for every layout, one inference loop, and the
flex-attention engine (the GPU's) giving the numbers of the per-sequence SDPA engine (the CPU's)."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from rewardlab.models import batching, packing
from rewardlab.models.batching import (
    choose_layout,
    forward_batches,
    hidden_states,
    make_batch,
    pad,
)
from rewardlab.models.packing import ENGINE_ENV, fork_pairs, packed_attention_engine
from rewardlab.models.scalar import backbone_of, build_reward_model, head_of, reward_forward
from rewardlab.train.data import PairCollator
from tests.fp32 import fp32_tol, grad_terms
from tests.unit.conftest import LENGTHS, alone, tol


def test_one_layout_decision_for_a_device_a_model_and_a_wish(rm, tiny_bert, monkeypatch):
    from transformers import AutoModel

    assert choose_layout(rm, "cpu") == "pack"
    assert choose_layout(rm, "cpu", fork=True) == "fork"
    assert choose_layout(rm, "cpu", packing=False, fork=True) == "pad"
    assert choose_layout(rm, "cuda", packing=True) == "pack"  # asked for explicitly: wherever the model can
    monkeypatch.setattr(packing, "flex_available", lambda: False)
    assert choose_layout(rm, "cuda") == "pad"  # a GPU without flex attention: per-sequence SDPA does not pay
    assert choose_layout(rm, "cpu") == "pack"
    monkeypatch.undo()
    encoder = AutoModel.from_pretrained(tiny_bert)
    assert choose_layout(encoder, "cpu", packing=True, fork=True) == "pad"  # encoders only pad
    with pytest.raises(ValueError, match="packing must be True, False or 'auto'"):
        choose_layout(rm, "cpu", packing="sometimes")


def test_the_attention_engine_follows_the_device_and_the_override(monkeypatch):
    monkeypatch.delenv(ENGINE_ENV, raising=False)
    assert packed_attention_engine("cpu") == "sdpa"
    assert packed_attention_engine("cuda") == ("flex" if packing.flex_available() else None)
    monkeypatch.setenv(ENGINE_ENV, "flex")
    if packing.flex_available():
        assert packed_attention_engine("cpu") == "flex"
    monkeypatch.setenv(ENGINE_ENV, "fast")
    with pytest.raises(ValueError, match=f"{ENGINE_ENV}='fast': choose one of sdpa, flex"):
        packed_attention_engine("cpu")


def test_hidden_states_read_the_same_in_every_layout(rm, seqs):
    backbone = backbone_of(rm)
    with torch.no_grad():
        layouts = {"pack": hidden_states(backbone, make_batch(seqs, "pack")),
                   "right": hidden_states(backbone, pad(seqs, 0)),
                   "left": hidden_states(backbone, pad(seqs, 0, side="left"))}
        ref_rows = [hidden_states(backbone, make_batch([s], "pack")).flat for s in seqs]
    ref_last = torch.stack([r[-1] for r in ref_rows])
    ref_mean = torch.stack([r.mean(0) for r in ref_rows])
    for name, h in layouts.items():
        assert h.num_sequences == len(seqs), name
        assert_close(h.at_last(), ref_last, **tol(rm, ref_last), msg=name)
        assert_close(h.mean(), ref_mean, **tol(rm, ref_mean), msg=name)
        for got, ref in zip(h.rows(), ref_rows, strict=True):
            assert_close(got, ref, **tol(rm, ref), msg=name)
    firsts = torch.stack([h.flat[h.starts] for h in layouts.values()])
    assert_close(firsts, torch.stack([r[0] for r in ref_rows]).expand_as(firsts), **tol(rm, ref_last))


def test_forked_hidden_states_have_no_per_sequence_mean(rm, seqs):
    prompt = seqs[4][:10]
    batch = fork_pairs([prompt + [5, 6]], [prompt + [7, 8, 9]])
    with torch.no_grad():
        h = hidden_states(backbone_of(rm), batch)
    assert h.num_sequences == 2
    with pytest.raises(ValueError, match="forked pairs share their prompt"):
        h.mean()


def test_forward_batches_returns_outputs_in_input_order(rm, seqs):
    want = torch.stack([alone(rm, s) for s in seqs]).detach()
    for layout in ("pack", "pad"):
        with torch.no_grad():  # a small batch_tokens: several batches, longest first
            got = forward_batches(seqs, lambda b, _: reward_forward(rm, b), "cpu", layout=layout, batch_tokens=40)
        assert_close(torch.stack(got), want, **tol(rm, want), msg=layout)
    with torch.no_grad():  # items that are not sequences: a build function and their own lengths
        got = forward_batches(list(range(len(seqs))), lambda b, _: reward_forward(rm, b), "cpu",
                              lengths=LENGTHS, build=lambda group: make_batch([seqs[i] for i in group], "pack"))
    assert_close(torch.stack(got), want, **tol(rm, want))


def test_make_batch_and_the_collator_refuse_what_they_cannot_lay_out():
    with pytest.raises(ValueError, match="both sides of each pair: 3 sequences is odd"):
        make_batch([[1, 2], [1, 3], [4]], "fork")
    with pytest.raises(ValueError, match="layout must be one of"):
        make_batch([[1, 2]], "jagged")
    with pytest.raises(ValueError, match="forked pairs share their prompt positions"):
        PairCollator("fork", 0, response_mask="chosen")
    rows = [{"chosen_ids": [1, 2, 3, 4], "rejected_ids": [1, 2, 5], "margin": 0.0}]
    out = PairCollator("fork", 0)(rows)
    assert out["forks"].tolist() == [[0, 2, 2, 1]] and int(out["num_tokens"]) == 7


@pytest.mark.skipif(not packing.flex_available(), reason="this torch has no flex attention with enable_gqa")
def test_flex_engine_gives_the_per_sequence_numbers(rm, seqs, monkeypatch):
    """The GPU's engine, run on the CPU (compiled; flex attention has no backward on a CPU, so the
    gradients are checked on a GPU below): packed and forked rows."""
    want = torch.stack([alone(rm, s) for s in seqs]).detach()
    prompt = seqs[4][:20]
    first, second = [prompt + [5, 6, 7]], [prompt + [8, 9]]
    fork_want = torch.stack([alone(rm, first[0]), alone(rm, second[0])]).detach()
    monkeypatch.setenv(ENGINE_ENV, "flex")
    assert batching.packing_pays("cpu")
    with torch.no_grad():
        got = reward_forward(rm, make_batch(seqs, "pack"))
        forked = reward_forward(rm, fork_pairs(first, second))
    assert_close(got, want, **tol(rm, want))
    assert_close(forked, fork_want, **tol(rm, fork_want))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_packed_rows_on_a_gpu_give_the_rewards_and_gradients_of_separate_sequences(tiny_llama, seqs):
    """On a GPU packed rows attend through flex attention (where this torch has it); rewards and the
    head's gradient match each sequence run alone, padded, on the same device."""
    from transformers import AutoTokenizer

    device = torch.device("cuda", torch.cuda.current_device())
    model = build_reward_model(str(tiny_llama), AutoTokenizer.from_pretrained(tiny_llama)).to(device).train()
    assert choose_layout(model, device) == ("pack" if packing.flex_available() else "pad")
    alone_loss = sum(alone(model, s).pow(2) for s in seqs)
    alone_loss.backward()
    want_grad = head_of(model).weight.grad.clone()
    want = torch.stack([alone(model, s) for s in seqs]).detach()
    model.zero_grad()
    got = reward_forward(model, make_batch(seqs, "pack").to(device))
    got.pow(2).sum().backward()
    assert_close(got.detach(), want, **tol(model, want))
    terms = grad_terms(model.config, max(LENGTHS), sum(LENGTHS))
    assert_close(head_of(model).weight.grad, want_grad, **fp32_tol(terms, want_grad))


def test_a_flex_failure_falls_back_to_per_sequence_attention(rm, seqs, monkeypatch, caplog):
    want = torch.stack([alone(rm, s) for s in seqs]).detach()
    monkeypatch.setenv(ENGINE_ENV, "flex")
    monkeypatch.setattr(packing, "flex_available", lambda: True)
    monkeypatch.setattr(packing, "_FLEX_FAILED", [])

    def broken(*args, **kwargs):
        raise RuntimeError("no kernel for this device")

    monkeypatch.setattr(packing, "_flex_attention", broken)
    with torch.no_grad(), caplog.at_level("WARNING", logger="rewardlab"):
        got = reward_forward(rm, make_batch(seqs, "pack"))
    assert_close(got, want, **tol(rm, want))
    assert packing._FLEX_FAILED and "flex attention failed (RuntimeError: no kernel" in caplog.text
    assert caplog.text.count("flex attention failed") == 1  # said once, not once per layer
