"""Reward-model ensembles: k members trained with different seeds, scored as one :class:`Scorer`.

A member's reward is noisy where the training data is thin; combining members (Coste et al. 2023,
"Reward Model Ensembles Help Mitigate Overoptimization") gives a more conservative reward:

- ``mean``: the average member reward;
- ``min``: the worst case over members;
- ``mean_minus_std``: ``mean − λ·std`` (uncertainty-weighted; std over members, population form).

An ensemble directory holds ``ensemble.json`` (the manifest: member directories relative to it, the
reduction and λ) next to the members; ``load_scorer(dir)`` and ``rewardlab eval --model dir`` take it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch

from rewardlab import jsonout
from rewardlab.choices import ENSEMBLE_REDUCTIONS
from rewardlab.models.scorer import PairScoringMixin
from rewardlab.types import Conversation

MANIFEST = "ensemble.json"
REDUCTIONS = ENSEMBLE_REDUCTIONS


def reduce_scores(scores: torch.Tensor, reduction: str = "mean", lam: float = 1.0) -> torch.Tensor:
    """Combine member rewards ``(k, n)`` into ``(n,)`` by ``mean``, ``min`` or ``mean_minus_std``
    (``mean − lam·std``, the population std over the k members)."""
    if scores.dim() != 2:
        raise ValueError(f"scores must be (members, n), got shape {tuple(scores.shape)}")
    if reduction == "mean":
        return scores.mean(0)
    if reduction == "min":
        return scores.min(0).values
    if reduction == "mean_minus_std":
        return scores.mean(0) - lam * scores.std(0, correction=0)
    raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")


class EnsembleScorer(PairScoringMixin):
    """Members behind the Scorer interface; ``compare`` is σ(r_a − r_b) of the reduced rewards."""

    can_score_ids = True

    def __init__(self, members: Sequence, reduction: str = "mean", lam: float = 1.0) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
        self.members = list(members)
        self.reduction = reduction
        self.lam = lam

    @classmethod
    def load(cls, path: str | Path, reduction: str | None = None, lam: float | None = None,
             **kwargs) -> EnsembleScorer:
        """Load ``path/ensemble.json`` and its members (keyword arguments go to each member's loader);
        ``reduction`` / ``lam`` override the manifest's."""
        from rewardlab.models.scorer import ScalarScorer

        path = Path(path)
        manifest = json.loads((path / MANIFEST).read_text())
        members = [ScalarScorer.load(path / m, **kwargs) for m in manifest["members"]]
        return cls(members, reduction or manifest.get("reduction", "mean"),
                   manifest.get("lambda", 1.0) if lam is None else lam)

    @property
    def encoder(self):
        return self.members[0].encoder

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the members' matmuls run in (they load with one ``dtype``)."""
        return self.members[0].dtype

    def check_length(self, ids, where: str) -> None:
        for m in self.members:
            m.check_length(ids, where)

    def member_scores_ids(self, seqs: Sequence[Sequence[int]]) -> torch.Tensor:
        """Every member's rewards for tokenized sequences, ``(k, n)``."""
        return torch.stack([m.score_ids(seqs) for m in self.members])

    def score_ids(self, seqs: Sequence[Sequence[int]]) -> torch.Tensor:
        return reduce_scores(self.member_scores_ids(seqs), self.reduction, self.lam)

    def score(self, convs: Sequence[Conversation]) -> torch.Tensor:
        return self.score_ids(self.members[0].encode(convs))


def write_manifest(path: str | Path, members: Sequence[str | Path], reduction: str = "mean",
                   lam: float = 1.0) -> Path:
    """Write ``path/ensemble.json`` naming ``members`` (stored relative to ``path`` when inside it)."""
    path = Path(path)
    rel = []
    for m in members:
        m = Path(m)
        try:
            rel.append(str(m.resolve().relative_to(path.resolve())))
        except ValueError:
            rel.append(str(m.resolve()))
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    out = path / MANIFEST
    out.write_text(jsonout.dumps({"kind": "ensemble", "members": rel, "reduction": reduction, "lambda": lam},
                              indent=2) + "\n")
    return out


def is_ensemble_dir(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).exists()
