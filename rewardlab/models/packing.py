"""Padding-free ("varlen") batches for decoder-only models on any device, the CPU included.

Sequences of a batch are concatenated into one row of shape ``(1, total_tokens)`` with positions that
restart at 0 for each sequence. Linear layers, which dominate the cost, then see no padding at all.
Attention must not cross sequence boundaries: we register an attention function, ``rewardlab_varlen``,
that runs scaled-dot-product attention per sequence (``cu_seqlens`` boundaries; grouped-query models
through SDPA's ``enable_gqa``, torch >= 2.5), and a mask function that builds no dense mask at all (a
dense block-diagonal mask is slower than plain padding on CPU).

Outside a :func:`packed` context the same attention function falls back to plain SDPA with the
model's usual mask, so one model object serves packed and padded batches.

A trap this module guards against: transformers skips its own packed-sequence mask whenever a KV
cache exists, silently letting packed sequences attend to each other. Packed forwards here always
run with ``use_cache=False``, and :func:`packed` refuses to nest.

Pairs that share a prompt can also be packed *forked* (:func:`pack_forked`, :func:`packed_forks`):
each segment is ``prompt + response_a + response_b``, response b continues the prompt's positions and
sees the prompt but not response a, so the prompt runs once for both responses. Same numbers as two
separate sequences, fewer tokens; it serves inference passes (the GRM reference cache).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface, sdpa_mask

VARLEN = "rewardlab_varlen"

# Boundaries of the packed batch in flight on this thread/task: a Python list of ints, (n + 1,).
_CU_SEQLENS: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("rewardlab_cu_seqlens", default=None)
# Forked segments in flight: (start, prompt, a, b) per segment of the packed row.
_FORKS: contextvars.ContextVar[list[tuple[int, int, int, int]] | None] = contextvars.ContextVar(
    "rewardlab_forks", default=None)


@dataclass
class PackedBatch:
    """``n`` sequences packed into one row.

    input_ids: ``(1, T)``; position_ids: ``(1, T)``, restarting at 0 per sequence;
    cu_seqlens: ``(n + 1,)`` int64 cumulative lengths, ``cu_seqlens[0] == 0``, ``cu_seqlens[-1] == T``.
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    cu_seqlens: torch.Tensor

    @property
    def last_index(self) -> torch.Tensor:
        """Index of each sequence's last token in the packed row, ``(n,)``."""
        return self.cu_seqlens[1:] - 1

    @property
    def num_sequences(self) -> int:
        return self.cu_seqlens.numel() - 1

    def to(self, device: torch.device | str) -> PackedBatch:
        return PackedBatch(self.input_ids.to(device), self.position_ids.to(device), self.cu_seqlens.to(device))


def pack(sequences: Sequence[Sequence[int]]) -> PackedBatch:
    """Concatenate token id lists into a :class:`PackedBatch`. Every sequence must be non-empty."""
    if not sequences:
        raise ValueError("cannot pack an empty list of sequences")
    lengths = [len(s) for s in sequences]
    if min(lengths) == 0:
        raise ValueError(f"sequence {lengths.index(0)} is empty; every sequence needs at least one token")
    ids = torch.tensor([t for s in sequences for t in s], dtype=torch.long).unsqueeze(0)
    pos = torch.cat([torch.arange(n) for n in lengths]).unsqueeze(0)
    cu = torch.zeros(len(lengths) + 1, dtype=torch.long)
    cu[1:] = torch.tensor(lengths).cumsum(0)
    return PackedBatch(ids, pos, cu)


@contextlib.contextmanager
def packed(cu_seqlens: torch.Tensor) -> Iterator[None]:
    """Within this context, attention of ``rewardlab_varlen`` models respects ``cu_seqlens`` boundaries."""
    if _CU_SEQLENS.get() is not None:
        raise RuntimeError("packed() contexts cannot be nested")
    token = _CU_SEQLENS.set([int(x) for x in cu_seqlens.tolist()])
    try:
        yield
    finally:
        _CU_SEQLENS.reset(token)


@dataclass
class ForkedBatch:
    """Pairs packed as ``prompt + a + b`` segments in one row (see :func:`pack_forked`).

    input_ids / position_ids: ``(1, T)``; forks: ``(start, prompt, a, b)`` per segment.
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    forks: list[tuple[int, int, int, int]]

    def to(self, device: torch.device | str) -> ForkedBatch:
        return ForkedBatch(self.input_ids.to(device), self.position_ids.to(device), self.forks)

    @property
    def last_index(self) -> torch.Tensor:
        """Index of the last token of every ``prompt + a`` (first ``n``), then of every ``prompt + b``
        (next ``n``), ``(2n,)``: where the rewards of the two sides are read."""
        ends_a = [s + p + a - 1 for s, p, a, _ in self.forks]
        ends_b = [s + p + a + b - 1 for s, p, a, b in self.forks]
        return torch.tensor(ends_a + ends_b, device=self.input_ids.device)


def fork_pairs(first: Sequence[Sequence[int]], second: Sequence[Sequence[int]]) -> ForkedBatch:
    """Token-id pairs forked at their common prefix (:func:`pack_forked`). The prefix stops one token
    short of the shorter side, so both keep a token; a pair sharing no first token (its prompt cut
    differently on each side, say) is simply two sequences in a row."""
    prompts, rest_a, rest_b = [], [], []
    for a, b in zip(first, second, strict=True):
        limit, k = min(len(a), len(b)) - 1, 0
        while k < limit and a[k] == b[k]:
            k += 1
        prompts.append(a[:k])
        rest_a.append(a[k:])
        rest_b.append(b[k:])
    return pack_forked(prompts, rest_a, rest_b)


def pack_forked(prompts: Sequence[Sequence[int]], first: Sequence[Sequence[int]],
                second: Sequence[Sequence[int]]) -> ForkedBatch:
    """Pack ``prompt + first + second`` per pair; ``second`` takes the positions ``first`` would have.
    Both responses must be non-empty; an empty prompt makes the pair two plain sequences in a row."""
    if not prompts:
        raise ValueError("cannot pack an empty list of pairs")
    ids, pos, forks, start = [], [], [], 0
    for i, (p, a, b) in enumerate(zip(prompts, first, second, strict=True)):
        if not (a and b):
            raise ValueError(f"pair {i}: both responses need at least one token")
        ids += [*p, *a, *b]
        pos += [*range(len(p) + len(a)), *range(len(p), len(p) + len(b))]
        forks.append((start, len(p), len(a), len(b)))
        start += len(p) + len(a) + len(b)
    return ForkedBatch(torch.tensor([ids]), torch.tensor([pos]), forks)


@contextlib.contextmanager
def packed_forks(forks: list[tuple[int, int, int, int]]) -> Iterator[None]:
    """Within this context, ``rewardlab_varlen`` attention follows the forked segments ``forks``."""
    if _CU_SEQLENS.get() is not None or _FORKS.get() is not None:
        raise RuntimeError("packed() contexts cannot be nested")
    total = forks[-1][0] + sum(forks[-1][1:])
    cu_token, fork_token = _CU_SEQLENS.set([0, total]), _FORKS.set(list(forks))
    try:
        yield
    finally:
        _FORKS.reset(fork_token)
        _CU_SEQLENS.reset(cu_token)


def _forked_attention(sdpa, query, key, value, forks) -> torch.Tensor:
    """Per segment: ``prompt + a`` causally, then ``b`` over the prompt and itself (not over ``a``)."""
    outs = []
    for s, p, a, b in forks:
        outs.append(sdpa(query[:, :, s:s + p + a], key[:, :, s:s + p + a], value[:, :, s:s + p + a],
                         is_causal=True))
        lo, hi = s + p + a, s + p + a + b
        k = torch.cat([key[:, :, s:s + p], key[:, :, lo:hi]], dim=2)
        v = torch.cat([value[:, :, s:s + p], value[:, :, lo:hi]], dim=2)
        mask = torch.cat([torch.ones(b, p, dtype=torch.bool, device=query.device),
                          torch.ones(b, b, dtype=torch.bool, device=query.device).tril()], dim=1)
        outs.append(sdpa(query[:, :, lo:hi], k, v, attn_mask=mask, is_causal=False))
    return torch.cat([o.transpose(1, 2) for o in outs], dim=1)


def _varlen_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """Attention per packed segment. query: ``(1, heads, T, d)``; key/value: ``(1, kv_heads, T, d)``.

    Returns ``(1, T, heads, d)`` like transformers' own attention functions.
    """
    cu = _CU_SEQLENS.get()
    if cu is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, is_causal=is_causal, **kwargs)
    if query.shape[0] != 1:
        raise ValueError(f"a packed batch has one row, got query of shape {tuple(query.shape)}")
    causal = getattr(module, "is_causal", True) if is_causal is None else is_causal
    # Grouped-query attention runs on the kv heads as they are (no repeat_interleave copies of K and V).
    sdpa = functools.partial(F.scaled_dot_product_attention, dropout_p=dropout if module.training else 0.0,
                             is_causal=causal, scale=scaling, enable_gqa=query.shape[1] != key.shape[1])
    forks = _FORKS.get()
    if forks is not None:
        if not causal:
            raise ValueError("forked packing needs a causal (decoder-only) model")
        return _forked_attention(sdpa, query, key, value, forks), None
    if len(cu) == 2:
        return sdpa(query, key, value).transpose(1, 2).contiguous(), None
    # torch.split, not one slice per segment: the backward of a slice writes a zero-filled gradient of
    # the whole packed row per segment and adds them up, the backward of split is one concatenation.
    lengths = [e - s for s, e in zip(cu[:-1], cu[1:], strict=False)]
    outs = [sdpa(q, k, v).transpose(1, 2)
            for q, k, v in zip(query.split(lengths, 2), key.split(lengths, 2), value.split(lengths, 2), strict=True)]
    return torch.cat(outs, dim=1), None  # (1, T, heads, d), contiguous: one copy


def _varlen_mask(*args, **kwargs):
    """No dense mask for packed batches; the usual SDPA mask otherwise."""
    if _CU_SEQLENS.get() is not None:
        return None
    return sdpa_mask(*args, **kwargs)


AttentionInterface.register(VARLEN, _varlen_attention)
AttentionMaskInterface.register(VARLEN, _varlen_mask)
assert VARLEN in ALL_MASK_ATTENTION_FUNCTIONS._global_mapping


def packing_pays(device: torch.device | str) -> bool:
    """Whether packed rows beat length-sorted padded batches on ``device``: on a CPU, not on a GPU.

    On a CPU the linear layers dominate and packing spares them all padding. On a GPU the attention
    here runs one SDPA call per sequence and layer, and those small kernels dominate: scoring 512 HH
    pairs with the SmolLM2 RM on an H200, packed rows ran at 0.83x the naive padded loop and
    length-sorted padded batches at 2.81x (``benchmarks/results/score_trained_h200.json``).
    """
    return torch.device(device).type == "cpu"


def supports_packing(model: torch.nn.Module) -> bool:
    """True when ``model`` (a transformers model) can run padding-free batches through our attention."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "is_encoder_decoder", False):
        return False
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    decoder_only = (config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
                    and config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES)
    return decoder_only and bool(getattr(model, "_supports_attention_backend", False))


def enable_packing(model: torch.nn.Module) -> bool:
    """Switch ``model`` to the varlen attention when it supports it; return whether it did."""
    if not supports_packing(model):
        return False
    model.set_attn_implementation(VARLEN)
    return True
