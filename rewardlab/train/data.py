"""Training inputs: tokenized pairs, collators for packed/padded batches, frozen-backbone features."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rewardlab.data import DataError
from rewardlab.data.encode import ChatEncoder
from rewardlab.models.batching import batch_inputs, choose_layout, make_batch
from rewardlab.models.scalar import unwrap
from rewardlab.types import PreferencePair


def require_margins(pairs: Sequence[PreferencePair], variant: str, source: str) -> None:
    """Raise a :class:`DataError` naming ``source`` when some pair has no ``margin``."""
    missing = [p.id for p in pairs if p.margin is None]
    if missing:
        raise DataError(
            source,
            "margin",
            f"variant {variant!r} needs a margin on every pair; {len(missing)} of "
            f"{len(pairs)} have none (e.g. {', '.join(missing[:3])})",
            reason="missing_field",
        )


def tokenize_pairs(pairs: Sequence[PreferencePair], encoder: ChatEncoder, source: str = "pairs"):
    """A ``datasets.Dataset`` of ``chosen_ids``, ``rejected_ids``, ``margin`` (0 when absent), ``length``
    (for length grouping), ``id``, and ``chosen_prompt_len`` / ``rejected_prompt_len`` (tokens before
    the response, for LM losses over response tokens only). Pairs made identical by truncation are left out and counted in
    ``encoder.stats``; none left at all is a :class:`DataError` naming ``source``."""
    import datasets

    rows = []
    for p in pairs:
        enc = encoder.encode_pair(p)
        if enc is None:
            continue
        c, r = enc
        rows.append(
            {
                "chosen_ids": c.ids,
                "rejected_ids": r.ids,
                "margin": float(p.margin or 0.0),
                "length": len(c.ids) + len(r.ids),
                "id": p.id,
                "chosen_prompt_len": c.prompt_len,
                "rejected_prompt_len": r.prompt_len,
            }
        )
    if not rows:
        raise DataError(
            source,
            None,
            f"none of its {len(pairs)} pairs is left after tokenization: truncation to "
            f"data.max_length={encoder.max_length} made chosen and rejected identical",
            reason="identical",
        )
    return datasets.Dataset.from_list(rows)


class LengthGroupedSampler(torch.utils.data.Sampler[int]):
    """Indices in groups of similar length, in an order fixed by ``seed`` and the epoch alone.

    ``group_size`` is the *global* batch (per-device batch x accumulation x processes), so one process
    with batch 8 and two with batch 4 see the same pairs at every step. Seeding per epoch (the Trainer
    calls ``set_epoch``) instead of drawing from the global RNG makes a run resumed in a later epoch
    replay exactly the order of an uninterrupted one.
    """

    def __init__(self, lengths: Sequence[int], group_size: int, seed: int) -> None:
        self.lengths = list(lengths)
        self.group_size = group_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        from transformers.trainer_pt_utils import get_length_grouped_indices

        g = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.group_size, generator=g))


def training_layout(model: torch.nn.Module, wanted: bool = True, fork: bool = False) -> str:
    """The layout of training batches (:func:`rewardlab.models.batching.choose_layout` on the training
    device): ``pack`` or ``fork`` when ``wanted`` (``train.packing``) and the model takes packed rows,
    where they pay; ``pad`` otherwise. ``fork`` (``train.fork_prompts``) runs each pair's prompt once."""
    from accelerate import PartialState

    return choose_layout(unwrap(model), PartialState().device, "auto" if wanted else False, fork=fork)


@dataclass
class PairCollator:
    """Stacks ``B`` pairs into one batch of ``2B`` sequences: chosen ``0..B-1``, rejected ``B..2B-1``,
    laid out as ``layout`` (:mod:`rewardlab.models.batching`)."""

    layout: str
    pad_id: int
    with_margin: bool = False
    response_mask: str = ""
    """For LM losses: ``chosen`` or ``both`` adds ``response_mask`` (the shape of ``input_ids``, 1 on the
    response tokens of those sides); empty adds none."""
    with_reference: bool = False
    """Add ``ref_logps`` ``(2B,)`` from the cached ``ref_chosen_logps`` / ``ref_rejected_logps`` columns."""

    def __post_init__(self) -> None:
        if self.response_mask not in ("", "chosen", "both"):
            raise ValueError(f"response_mask must be '', 'chosen' or 'both', got {self.response_mask!r}")
        if self.layout == "fork" and (self.response_mask or self.with_reference):
            raise ValueError("forked pairs share their prompt positions, so LM losses over each side's "
                             "tokens cannot read them: use layout 'pack' or 'pad'")

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        """With layout ``fork`` each pair's shared prefix (its prompt) runs once: the row holds
        ``prefix + chosen + rejected`` per pair and the rejected side sees only the prefix and itself
        (:func:`rewardlab.models.packing.fork_pairs`), the same rewards from fewer tokens; the batch
        then carries ``forks`` and ``num_tokens``, the tokens of both sides."""
        seqs = [r["chosen_ids"] for r in rows] + [r["rejected_ids"] for r in rows]
        out = batch_inputs(make_batch(seqs, self.layout, self.pad_id))
        if self.layout == "fork":
            out["num_tokens"] = torch.tensor(sum(len(x) for x in seqs))
        if self.with_margin:
            out["margin"] = torch.tensor([r["margin"] for r in rows], dtype=torch.float32)
        if self.response_mask:
            from rewardlab.models.grm import response_mask_for

            lens = [len(x) for x in seqs]
            # A "prompt" as long as the sequence scores nothing: the rejected sides in "chosen" mode.
            rejected = [r["rejected_prompt_len"] for r in rows] if self.response_mask == "both" else lens[len(rows):]
            prompts = [r["chosen_prompt_len"] for r in rows] + rejected
            out["response_mask"] = response_mask_for(lens, prompts, self.layout == "pack")
        if self.with_reference:
            out["ref_logps"] = torch.tensor([r["ref_chosen_logps"] for r in rows]
                                            + [r["ref_rejected_logps"] for r in rows], dtype=torch.float32)
        return out


class FeatureDataset(torch.utils.data.Dataset):
    """Cached backbone features of chosen/rejected responses, each ``(n, hidden)``."""

    def __init__(self, chosen: torch.Tensor, rejected: torch.Tensor, margin: torch.Tensor) -> None:
        self.chosen, self.rejected, self.margin = chosen, rejected, margin

    def __len__(self) -> int:
        return self.chosen.shape[0]

    def __getitem__(self, i: int) -> dict:
        return {"c": self.chosen[i], "r": self.rejected[i], "margin": self.margin[i]}


@dataclass
class FeatureCollator:
    with_margin: bool = False

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        feats = torch.stack([r["c"] for r in rows] + [r["r"] for r in rows])
        out = {"features": feats}
        if self.with_margin:
            out["margin"] = torch.stack([r["margin"] for r in rows])
        return out


def frozen_features(recipe, model: torch.nn.Module, tokenizer):
    """The frozen backbone of ``model`` behind a :class:`rewardlab.models.feature_cache.FeatureCache`
    (the pooling its head reads): on disk with ``train.feature_cache`` (under ``train.feature_cache_dir``),
    else in memory for this run. Its encoder (``data.max_length``) is the final evaluation's."""
    from rewardlab.models.feature_cache import CachedScorer, FeatureCache, default_root
    from rewardlab.models.scalar import pooling_of
    from rewardlab.models.scorer import ScalarScorer

    t = recipe.train
    scorer = ScalarScorer(model, tokenizer, max_length=recipe.data.max_length, batch_tokens=t.feature_batch_tokens,
                          packing="auto" if t.packing else False)
    root = (t.feature_cache_dir or default_root()) if t.feature_cache else None
    return CachedScorer(scorer, FeatureCache(model, pooling_of(model), root), progress=True)


def feature_dataset(features, ds) -> FeatureDataset:
    """Cached features of a tokenized pair dataset (:func:`tokenize_pairs`); ``features`` is what
    :func:`frozen_features` returns."""
    f = features.features(list(ds["chosen_ids"]) + list(ds["rejected_ids"]))
    n = len(ds)
    return FeatureDataset(f[:n], f[n:], torch.tensor(list(ds["margin"]), dtype=torch.float32))


class HeadForward(torch.nn.Module):
    """Rewards from cached features through the head alone (frozen backbone).

    The head reads standardised features, ``(f - mean) / std`` with the training responses' mean and
    standard deviation (:func:`feature_stats`): a frozen LM's hidden states have a few dimensions
    hundreds of times larger than the rest, which would otherwise set the head's scale and its
    optimiser's steps. :meth:`fold` writes the standardisation into the head's own weights once training
    is done, so the saved head reads raw features (the same rewards, up to a constant for a linear head
    without bias, which no comparison sees)."""

    def __init__(self, head: torch.nn.Module, mean: torch.Tensor | None = None, std: torch.Tensor | None = None) -> None:
        super().__init__()
        self.head = head
        hidden = next(head.parameters()).shape[-1]
        self.register_buffer("mean", torch.zeros(hidden) if mean is None else mean.float(), persistent=False)
        self.register_buffer("std", torch.ones(hidden) if std is None else std.float(), persistent=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        z = (features.float() - self.mean) / self.std
        return self.head(z.to(next(self.head.parameters()).dtype)).squeeze(-1).float()

    @torch.no_grad()
    def fold(self) -> torch.nn.Module:
        """Put the standardisation into the head's first linear layer (in place) and reset it here to the
        identity; returns the head."""
        first = self.head if isinstance(self.head, torch.nn.Linear) else self.head[0]
        w = first.weight.float()
        if first.bias is not None:
            first.bias -= (w @ (self.mean / self.std)).to(first.bias.dtype)
        first.weight.copy_((w / self.std).to(first.weight.dtype))
        self.mean.zero_()
        self.std.fill_(1.0)
        return self.head


def feature_stats(ds: FeatureDataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation ``(hidden,)`` over every training response (both sides); a constant
    dimension gets 1, so it passes through unscaled."""
    x = torch.cat([ds.chosen, ds.rejected]).double()
    std = x.std(0)
    return x.mean(0).float(), torch.where(std > 1e-6, std, torch.ones_like(std)).float()
