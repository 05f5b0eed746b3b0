"""How sequences become batches and run through a model: one decision, one forward, one loop.

Every forward path of rewardlab goes through here: scoring (:class:`rewardlab.models.scorer.ScalarScorer`),
features for frozen backbones, per-token traces, the GRM reference pass and training (the collators
build their batches with :func:`make_batch`, the training modules read them back with
:func:`batch_from_inputs`).

Three layouts:

- ``pack``: the sequences of a batch concatenated into one row (:class:`PackedBatch`), positions
  restarting per sequence; attention stays within each sequence (:mod:`rewardlab.models.packing`).
  Linear layers, most of the cost, see no padding.
- ``fork``: pairs that share a prompt packed as ``prompt + a + b`` (:class:`ForkedBatch`); ``b`` sees
  the prompt but not ``a``, so the prompt runs once for both sides.
- ``pad``: right-padded rows with an attention mask (:class:`PaddedBatch`); the layout of encoders,
  and of any model that cannot take packed rows.

:func:`choose_layout` decides, for a device, a model and what the caller wants:

- **CPU**: ``pack`` (or ``fork``). Packed attention runs scaled-dot-product attention once per
  sequence; measured faster there than a flex-attention block mask (about 3.5x for 16 sequences of
  SmolLM2's attention shape, compiled, on a 2-core AMD EPYC: ``benchmarks/bench_attention.py``) and than
  padding, which spends the linear layers on pad tokens.
- **GPU**: ``pack`` (or ``fork``) through ``torch.nn.attention.flex_attention`` with a block mask built
  once per batch (one fused kernel for the whole row instead of one small SDPA call per sequence and
  layer, which made packed rows slower than padding there), when this torch has flex attention;
  ``pad`` otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from rewardlab.models.packing import (
    ForkedBatch,
    PackedBatch,
    fork_pairs,
    pack,
    packed,
    packed_attention_engine,
    packed_forks,
    packing_enabled,
    supports_packing,
)

LAYOUTS = ("pack", "fork", "pad")


@dataclass
class PaddedBatch:
    """``n`` sequences padded to a common length. input_ids, attention_mask: ``(n, L)``."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    def to(self, device) -> PaddedBatch:
        return PaddedBatch(self.input_ids.to(device), self.attention_mask.to(device))


Batch = PackedBatch | ForkedBatch | PaddedBatch


def pad(sequences: Sequence[Sequence[int]], pad_id: int, side: str = "right") -> PaddedBatch:
    """Pad token id lists to the longest one, on ``side`` (``right`` or ``left``).

    Every sequence must be non-empty: an empty row would have its reward read at a padding token.
    """
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    if not sequences:
        raise ValueError("cannot pad an empty list of sequences")
    lengths = [len(s) for s in sequences]
    if min(lengths) == 0:
        raise ValueError(f"sequence {lengths.index(0)} is empty; every sequence needs at least one token")
    n, width = len(sequences), max(lengths)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for i, s in enumerate(sequences):
        sl = slice(0, len(s)) if side == "right" else slice(width - len(s), width)
        ids[i, sl] = torch.tensor(list(s), dtype=torch.long)
        mask[i, sl] = 1
    return PaddedBatch(ids, mask)


def packing_pays(device: torch.device | str) -> bool:
    """Whether packed rows are the layout to use on ``device``: on a CPU always (per-sequence SDPA), on a
    GPU when packed attention runs as one flex-attention kernel there (see the module docstring)."""
    return packed_attention_engine(torch.device(device)) in ("sdpa", "flex")


def choose_layout(model: nn.Module, device: torch.device | str, packing: bool | str = "auto",
                  fork: bool = False) -> str:
    """The layout of ``model``'s batches on ``device``: ``pack``, ``fork`` or ``pad``.

    ``model`` is the transformers model itself (not a peft or DDP wrapper). ``packing``: ``auto`` packs
    where that pays on ``device`` (:func:`packing_pays`), ``True`` packs wherever the model can, ``False``
    pads. ``fork`` asks for forked pairs when packing (a head that reads one token of each side; the
    caller knows whether it does)."""
    if packing not in (True, False, "auto"):
        raise ValueError(f"packing must be True, False or 'auto', got {packing!r}")
    if packing is False or not supports_packing(model) or not packing_enabled(model):
        return "pad"
    if packing == "auto" and not packing_pays(device):
        return "pad"
    return "fork" if fork else "pack"


def make_batch(seqs: Sequence[Sequence[int]], layout: str, pad_id: int = 0) -> Batch:
    """``seqs`` in ``layout``. For ``fork``, ``seqs`` holds the first sides of ``n`` pairs then their
    second sides (``2n`` sequences) and each pair forks at its common prefix
    (:func:`rewardlab.models.packing.fork_pairs`)."""
    if layout == "pack":
        return pack(seqs)
    if layout == "pad":
        return pad(seqs, pad_id)
    if layout == "fork":
        if len(seqs) % 2:
            raise ValueError(f"a forked batch takes both sides of each pair: {len(seqs)} sequences is odd")
        half = len(seqs) // 2
        return fork_pairs(seqs[:half], seqs[half:])
    raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def batch_inputs(batch: Batch) -> dict[str, torch.Tensor]:
    """The tensors of ``batch`` as model inputs (what a collator returns): packed rows carry
    ``cu_seqlens``, forked rows ``forks``, padded batches ``attention_mask``."""
    if isinstance(batch, ForkedBatch):
        return {"input_ids": batch.input_ids, "position_ids": batch.position_ids, "forks": torch.tensor(batch.forks)}
    if isinstance(batch, PackedBatch):
        return {"input_ids": batch.input_ids, "position_ids": batch.position_ids, "cu_seqlens": batch.cu_seqlens}
    return {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}


def batch_from_inputs(input_ids, position_ids=None, cu_seqlens=None, attention_mask=None, forks=None) -> Batch:
    """The batch :func:`batch_inputs` described (what a training module's ``forward`` receives)."""
    if forks is not None:  # (B, 4) rows of (start, prompt, first, second)
        return ForkedBatch(input_ids, position_ids, [tuple(f) for f in forks.tolist()])
    if cu_seqlens is not None:
        return PackedBatch(input_ids, position_ids, cu_seqlens)
    return PaddedBatch(input_ids, attention_mask)


@dataclass
class Hidden:
    """Final hidden states of a batch as one row of positions, ``flat``: ``(N, hidden)``. A packed or
    forked row as it is; a padded batch of ``n`` rows of width ``L`` as its rows end to end (``N = nL``).

    last: flat index of each sequence's last token, ``(n,)`` (forked: the first sides, then the second
    sides, ``(2n,)``); seg: the sequence of each position, ``(N,)``; valid: ``(N,)`` bool, False on
    padding (None: every position is real); starts: flat index of each sequence's first position.
    Forked rows share their prompt positions between two sequences: they have no ``seg`` or ``starts``."""

    flat: torch.Tensor
    last: torch.Tensor
    seg: torch.Tensor | None = None
    valid: torch.Tensor | None = None
    starts: torch.Tensor | None = None

    @property
    def num_sequences(self) -> int:
        return self.last.numel()

    def _need_segments(self, what: str) -> None:
        if self.seg is None:
            raise ValueError(f"{what} needs one sequence per position; forked pairs share their prompt "
                             "(set train.fork_prompts: false)")

    def at_last(self) -> torch.Tensor:
        """Each sequence's hidden state at its last real token, ``(n, hidden)``."""
        return self.flat[self.last]

    def mean(self) -> torch.Tensor:
        """Each sequence's hidden states averaged over its real tokens, ``(n, hidden)``."""
        self._need_segments("a mean over each sequence")
        h, seg = self.flat, self.seg
        if self.valid is not None:
            h, seg = h[self.valid], seg[self.valid]
        n = self.num_sequences
        sums = torch.zeros(n, h.shape[-1], device=h.device, dtype=h.dtype).index_add_(0, seg, h)
        counts = torch.zeros(n, device=h.device, dtype=h.dtype).index_add_(0, seg, torch.ones_like(seg, dtype=h.dtype))
        return sums / counts.unsqueeze(-1)

    def rows(self) -> list[torch.Tensor]:
        """Each sequence's hidden states at its real tokens, in order, ``(len_i, hidden)``."""
        self._need_segments("per-sequence rows")
        n = self.num_sequences
        keep = torch.ones_like(self.seg, dtype=torch.bool) if self.valid is None else self.valid
        lengths = torch.zeros(n, dtype=torch.long, device=self.seg.device).index_add_(0, self.seg[keep],
                                                                                       torch.ones_like(self.seg[keep]))
        return list(self.flat[keep].split(lengths.tolist()))


def hidden_states(backbone: nn.Module, batch: Batch) -> Hidden:
    """One forward of ``backbone`` (a decoder's base model, no head) over ``batch`` in any layout.

    Packed and forked rows run inside their attention context (:func:`rewardlab.models.packing.packed`,
    :func:`~rewardlab.models.packing.packed_forks`) with ``use_cache=False`` (transformers skips its
    packed-sequence mask whenever a KV cache exists). Padded rows get positions that count real tokens
    only, so left padding does not shift them."""
    if isinstance(batch, ForkedBatch):
        with packed_forks(batch.forks):
            h = backbone(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).last_hidden_state[0]
        return Hidden(h, batch.last_index)
    if isinstance(batch, PackedBatch):
        with packed(batch.cu_seqlens):
            h = backbone(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).last_hidden_state[0]
        lengths = batch.cu_seqlens.diff().to(h.device)
        seg = torch.repeat_interleave(torch.arange(lengths.numel(), device=h.device), lengths)
        return Hidden(h, batch.last_index.to(h.device), seg, None, batch.cu_seqlens[:-1].to(h.device))
    mask = batch.attention_mask
    n, width = mask.shape
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    h = backbone(input_ids=batch.input_ids, attention_mask=mask, position_ids=positions,
                 use_cache=False).last_hidden_state
    offsets = torch.arange(n, device=mask.device) * width
    last = (torch.arange(width, device=mask.device) * mask).argmax(-1) + offsets
    first = (mask.cumsum(-1) == 0).sum(-1) + offsets
    seg = torch.arange(n, device=h.device).repeat_interleave(width)
    return Hidden(h.reshape(n * width, -1), last, seg, mask.reshape(-1).bool(), first)


def length_batches(lengths: Sequence[int], batch_tokens: int, max_batch: int = 256) -> Iterator[list[int]]:
    """Indices grouped longest-first so each group holds at most ``batch_tokens`` tokens
    (counting padding to the group's longest sequence) and ``max_batch`` sequences."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    group: list[int] = []
    for i in order:
        width = lengths[group[0]] if group else lengths[i]
        if group and ((len(group) + 1) * width > batch_tokens or len(group) >= max_batch):
            yield group
            group = []
        group.append(i)
    if group:
        yield group


def forward_batches(items: Sequence, step: Callable[[Batch, list[int]], torch.Tensor | Sequence[torch.Tensor]],
                    device: torch.device | str, *, layout: str = "pack", pad_id: int = 0, batch_tokens: int = 8192,
                    lengths: Sequence[int] | None = None, build: Callable[[list[int]], Batch] | None = None,
                    progress: bool = False, desc: str = "scoring", max_batch: int = 256) -> list:
    """The inference loop: ``items`` (token sequences, by default) in groups of similar length of at
    most ``batch_tokens`` tokens, each group laid out as ``layout`` (or by ``build(group)``), moved to
    ``device`` and given to ``step(batch, group)``, which returns one output per item of the group (a
    tensor whose first dimension is the group, or a list). Returns the outputs in input order, on the CPU.
    ``lengths`` (default: each item's length) sizes the groups, of at most ``max_batch`` items;
    ``progress`` shows a bar of batches."""
    from tqdm.auto import tqdm

    lengths = [len(x) for x in items] if lengths is None else list(lengths)
    out: list = [None] * len(items)
    groups = list(length_batches(lengths, batch_tokens, max_batch))
    for group in tqdm(groups, desc=desc, unit="batch", disable=not progress):
        batch = build(group) if build is not None else make_batch([list(items[i]) for i in group], layout, pad_id)
        result = step(batch.to(device), group)
        if isinstance(result, torch.Tensor):  # one copy to the host per batch, not one per item
            result = result.detach().cpu()
        else:
            result = [r.detach().cpu() if isinstance(r, torch.Tensor) else r for r in result]
        for i, r in zip(group, result, strict=True):
            out[i] = r
    return out
