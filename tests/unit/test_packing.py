"""Padding-free batches: layout, the ``packed()`` context, and exact agreement with unpadded scoring."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from rewardlab.models.batching import pad
from rewardlab.models.packing import _CU_SEQLENS, VARLEN, pack, packed, supports_packing
from rewardlab.models.scalar import (
    PackedBatch,
    backbone_of,
    reward_forward,
)
from tests.fp32 import forward_terms, fp32_atol
from tests.unit.conftest import LENGTHS, alone, tol


def test_pack_concatenates_with_restarting_positions():
    b = pack([[5, 6, 7], [8], [9, 10]])
    assert b.input_ids.tolist() == [[5, 6, 7, 8, 9, 10]]
    assert b.position_ids.tolist() == [[0, 1, 2, 0, 0, 1]]
    assert b.cu_seqlens.tolist() == [0, 3, 4, 6]
    assert b.last_index.tolist() == [2, 3, 5]
    assert b.num_sequences == 3


def test_pack_refuses_an_empty_batch_and_empty_sequences():
    with pytest.raises(ValueError, match="empty list"):
        pack([])
    with pytest.raises(ValueError, match="sequence 1 is empty"):
        pack([[1, 2], [], [3]])


def test_pad_right_and_left():
    r = pad([[5, 6, 7], [8]], pad_id=0)
    assert r.input_ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert r.attention_mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    left = pad([[5, 6, 7], [8]], pad_id=0, side="left")
    assert left.input_ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert left.attention_mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_pad_refuses_what_would_be_read_at_a_pad_token():
    with pytest.raises(ValueError, match="empty list"):
        pad([], pad_id=0)
    with pytest.raises(ValueError, match="sequence 0 is empty"):
        pad([[], [1]], pad_id=0)
    with pytest.raises(ValueError, match="side must be 'right' or 'left'"):
        pad([[1]], pad_id=0, side="middle")


def test_packed_cannot_be_nested_and_always_resets():
    cu = torch.tensor([0, 2, 5])
    with packed(cu):
        assert _CU_SEQLENS.get() == [0, 2, 5]
        with pytest.raises(RuntimeError, match="cannot be nested"), packed(torch.tensor([0, 1])):
            pass
        assert _CU_SEQLENS.get() == [0, 2, 5]  # the refused inner context left the outer one intact
    assert _CU_SEQLENS.get() is None
    with pytest.raises(KeyError), packed(cu):
        raise KeyError("boom")
    assert _CU_SEQLENS.get() is None  # an exception inside does not leak the boundaries


def test_tiny_llama_takes_the_varlen_attention(rm):
    assert supports_packing(rm)
    assert rm.config._attn_implementation == VARLEN


def test_packed_batch_equals_each_sequence_scored_alone(rm, seqs):
    with torch.no_grad():
        ref = torch.stack([alone(rm, s) for s in seqs])
        got = reward_forward(rm, pack(seqs))
    assert got.dtype == torch.float32 and got.shape == (len(seqs),)
    assert ref.max() - ref.min() > 0.1  # rewards differ, so agreement below is not trivial
    assert_close(got, ref, **tol(rm, ref))


@pytest.mark.parametrize("side", ["right", "left"])
def test_padded_batch_equals_each_sequence_scored_alone(rm, seqs, side):
    with torch.no_grad():
        ref = torch.stack([alone(rm, s) for s in seqs])
        got = reward_forward(rm, pad(seqs, pad_id=rm.config.pad_token_id, side=side))
    assert_close(got, ref, **tol(rm, ref))


@pytest.mark.parametrize("impl", [VARLEN, "sdpa", "eager"])
def test_changing_one_packed_sequence_moves_no_other_score(rm, seqs, impl):
    edited = [list(s) for s in seqs]
    edited[2] = [t + 1 for t in edited[2]]  # the third of six: three sequences follow it in the row
    rm.set_attn_implementation(impl)
    try:
        with torch.no_grad():
            before = reward_forward(rm, pack(seqs))
            after = reward_forward(rm, pack(edited))
    finally:
        rm.set_attn_implementation(VARLEN)
    assert abs(after[2] - before[2]) > 1e-3  # the edit is visible where it should be ...
    others = [i for i in range(len(seqs)) if i != 2]
    assert_close(after[others], before[others], **tol(rm, before))  # ... and nowhere else


def packed_hidden(model, batch: PackedBatch, use_cache: bool) -> torch.Tensor:
    with packed(batch.cu_seqlens):
        out = backbone_of(model)(
            input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=use_cache
        )
    return out.last_hidden_state[0, batch.last_index]


def test_varlen_attention_isolates_even_when_a_cache_is_created(rm, seqs):
    edited = [seqs[0], [t + 1 for t in seqs[1]], seqs[2]]
    with torch.no_grad():
        before = packed_hidden(rm, pack(seqs[:3]), use_cache=True)
        after = packed_hidden(rm, pack(edited), use_cache=True)
    assert_close(after[2], before[2], **tol(rm, before[2]))


def test_stock_attention_leaks_across_packed_sequences_when_a_cache_is_created(rm, seqs):
    """The transformers 5.x trap the forwards avoid with ``use_cache=False``; this shows the isolation
    test above would catch it (skipped once transformers no longer has the trap)."""
    edited = [seqs[0], [t + 1 for t in seqs[1]], seqs[2]]
    rm.set_attn_implementation("sdpa")
    try:
        with torch.no_grad():
            shift = (packed_hidden(rm, pack(edited), True) - packed_hidden(rm, pack(seqs[:3]), True))[2]
            before = packed_hidden(rm, pack(seqs[:3]), False)
            safe = (packed_hidden(rm, pack(edited), False) - before)[2]
    finally:
        rm.set_attn_implementation(VARLEN)
    noise = fp32_atol(forward_terms(rm.config, max(LENGTHS)), before[2])  # tests/fp32.py
    assert safe.abs().max() <= noise
    if shift.abs().max() <= noise:
        pytest.skip("this transformers version keeps packed sequences apart even with a KV cache")
    assert shift.abs().max() > noise  # more than fp32 noise could explain: a leak


def test_fork_pairs_splits_at_the_common_prefix_and_keeps_a_token_on_each_side():
    from rewardlab.models.packing import fork_pairs

    fb = fork_pairs([[1, 2, 3, 4], [5, 6, 7], [8, 9]], [[1, 2, 9], [5, 6, 7, 8], [8, 9]])
    # pair 0 shares [1, 2]; pair 1: chosen is a prefix of rejected, so the fork keeps one chosen token;
    # pair 2: identical sides still keep one token each.
    assert fb.forks == [(0, 2, 2, 1), (5, 2, 1, 2), (10, 1, 1, 1)]
    assert fb.input_ids.tolist() == [[1, 2, 3, 4, 9, 5, 6, 7, 7, 8, 8, 9, 9]]
    assert fb.position_ids.tolist() == [[0, 1, 2, 3, 2, 0, 1, 2, 2, 3, 0, 1, 1]]
    assert fb.last_index.tolist() == [3, 7, 11, 4, 9, 12]  # chosen ends, then rejected ends
    apart = fork_pairs([[1, 2]], [[3, 2, 5]])  # nothing shared: two plain sequences in a row
    assert apart.forks == [(0, 0, 2, 3)] and apart.position_ids.tolist() == [[0, 1, 0, 1, 2]]
