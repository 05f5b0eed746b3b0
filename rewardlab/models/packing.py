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

Two engines run packed attention (:func:`packed_attention_engine`): ``sdpa``, one scaled-dot-product
attention call per sequence (the CPU's), and ``flex``, one ``torch.nn.attention.flex_attention`` kernel
over the whole row with a block mask built once per batch (the GPU's, where many small SDPA calls
cost more than the padding they save). ``REWARDLAB_PACKED_ATTENTION=sdpa|flex`` overrides the choice.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
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
# The flex-attention block mask of the batch in flight, built by its first attention layer and shared by
# the rest: {(device, length): BlockMask}.
_BLOCK_MASKS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("rewardlab_block_masks", default=None)

ENGINES = ("sdpa", "flex")
ENGINE_ENV = "REWARDLAB_PACKED_ATTENTION"


def flex_available() -> bool:
    """Whether this torch has ``torch.nn.attention.flex_attention`` with grouped-query support."""
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention  # noqa: F401
    except ImportError:
        return False
    import inspect

    return "enable_gqa" in inspect.signature(flex_attention).parameters


def packed_attention_engine(device: torch.device | str) -> str | None:
    """How packed rows attend on ``device``: ``sdpa`` (per sequence; CPUs), ``flex`` (one block-masked
    kernel; GPUs with flex attention), or None where packing does not pay (a GPU without flex).
    ``REWARDLAB_PACKED_ATTENTION`` set to ``sdpa`` or ``flex`` forces that engine on every device."""
    forced = os.environ.get(ENGINE_ENV, "").strip().lower()
    if forced:
        if forced not in ENGINES:
            raise ValueError(f"{ENGINE_ENV}={forced!r}: choose one of {', '.join(ENGINES)}")
        if forced == "flex" and not flex_available():
            raise ValueError(f"{ENGINE_ENV}=flex: torch {torch.__version__} has no flex attention with enable_gqa")
        return forced
    if torch.device(device).type == "cpu":
        return "sdpa"
    return "flex" if flex_available() else None


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
    masks = _BLOCK_MASKS.set({})
    try:
        yield
    finally:
        _BLOCK_MASKS.reset(masks)
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
    masks = _BLOCK_MASKS.set({})
    try:
        yield
    finally:
        _BLOCK_MASKS.reset(masks)
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
    if forks is not None and not causal:
        raise ValueError("forked packing needs a causal (decoder-only) model")
    if forks is None and len(cu) == 2:  # one sequence: plain SDPA on every device
        return sdpa(query, key, value).transpose(1, 2).contiguous(), None
    if packed_attention_engine(query.device) == "flex" and not (module.training and dropout) and not _FLEX_FAILED:
        try:
            return _flex_attention(query, key, value, cu, forks, causal, scaling), None
        except Exception as e:  # a torch whose flex attention cannot compile here: per-sequence SDPA instead
            _flex_failed(e)
    if forks is not None:
        return _forked_attention(sdpa, query, key, value, forks), None
    # torch.split, not one slice per segment: the backward of a slice writes a zero-filled gradient of
    # the whole packed row per segment and adds them up, the backward of split is one concatenation.
    lengths = [e - s for s, e in zip(cu[:-1], cu[1:], strict=False)]
    outs = [sdpa(q, k, v).transpose(1, 2)
            for q, k, v in zip(query.split(lengths, 2), key.split(lengths, 2), value.split(lengths, 2), strict=True)]
    return torch.cat(outs, dim=1), None  # (1, T, heads, d), contiguous: one copy


_COMPILED_FLEX = None
_FLEX_FAILED: list[str] = []
"""Set (to the error) when flex attention failed once in this process: packed rows then attend per sequence."""


def _flex_failed(error: Exception) -> None:
    import logging

    _FLEX_FAILED.append(f"{type(error).__name__}: {error}")
    logging.getLogger("rewardlab").warning(
        "flex attention failed (%s); packed rows attend with SDPA per sequence from now on",
        _FLEX_FAILED[0].splitlines()[0][:300])


def _compiled_flex():
    """``flex_attention`` compiled once per process (eager flex attention materialises every score)."""
    global _COMPILED_FLEX
    if _COMPILED_FLEX is None:
        from torch.nn.attention.flex_attention import flex_attention

        _COMPILED_FLEX = torch.compile(flex_attention, dynamic=True)
    return _COMPILED_FLEX


def _segment_ids(cu: list[int], forks, device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per position of the row: its sequence (or forked segment), and for forks its part (0 prompt,
    1 first side, 2 second side)."""
    if forks is None:
        lengths = torch.tensor([e - s for s, e in zip(cu[:-1], cu[1:], strict=False)], device=device)
        return torch.repeat_interleave(torch.arange(lengths.numel(), device=device), lengths), None
    sizes = torch.tensor([p + a + b for _, p, a, b in forks], device=device)
    doc = torch.repeat_interleave(torch.arange(len(forks), device=device), sizes)
    parts = torch.tensor([x for _, p, a, b in forks for x in (p, a, b)], device=device)
    part = torch.repeat_interleave(torch.arange(3, device=device).repeat(len(forks)), parts)
    return doc, part


def block_mask(cu: list[int], forks, causal: bool, length: int, device: torch.device):
    """The flex-attention block mask of packed rows with boundaries ``cu`` (and ``forks``); within a packed
    context it is built once per batch and shared by every layer of the forward."""
    from torch.nn.attention.flex_attention import create_block_mask

    cache = _BLOCK_MASKS.get()
    key = (str(device), length)
    if cache is not None and key in cache:
        return cache[key]
    doc, part = _segment_ids(cu, forks, device)

    def mask_mod(b, h, q, k):
        keep = doc[q] == doc[k]
        if causal:
            keep = keep & (q >= k)
        if part is not None:  # a second side never sees the first
            keep = keep & ~((part[q] == 2) & (part[k] == 1))
        return keep

    mask = create_block_mask(mask_mod, None, None, length, length, device=device, _compile=device.type == "cuda")
    if cache is not None:
        cache[key] = mask
    return mask


def _flex_attention(query, key, value, cu, forks, causal: bool, scaling) -> torch.Tensor:
    """The whole packed (or forked) row through one flex-attention kernel, ``(1, T, heads, d)``."""
    mask = block_mask(cu, forks, causal, query.shape[2], query.device)
    out = _compiled_flex()(query, key, value, block_mask=mask, scale=scaling, enable_gqa=query.shape[1] != key.shape[1])
    return out.transpose(1, 2).contiguous()


def _varlen_mask(*args, **kwargs):
    """No dense mask for packed batches; the usual SDPA mask otherwise."""
    if _CU_SEQLENS.get() is not None:
        return None
    return sdpa_mask(*args, **kwargs)


AttentionInterface.register(VARLEN, _varlen_attention)
AttentionMaskInterface.register(VARLEN, _varlen_mask)
assert VARLEN in ALL_MASK_ATTENTION_FUNCTIONS._global_mapping


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


def packing_enabled(model: torch.nn.Module) -> bool:
    """Whether ``model`` runs the varlen attention (:func:`enable_packing`): only then may it take packed rows."""
    config = getattr(model, "config", None)
    return getattr(config, "_attn_implementation", None) == VARLEN


def enable_packing(model: torch.nn.Module) -> bool:
    """Switch ``model`` to the varlen attention when it supports it; return whether it did."""
    if not supports_packing(model):
        return False
    model.set_attn_implementation(VARLEN)
    return True
