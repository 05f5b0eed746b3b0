"""Ensemble reductions written out by hand, and the ensemble as a Scorer over fake members.

Comparisons keep ``assert_close``'s float32 defaults (rtol 1.3e-6, about 11 ulps, and atol 1e-5): a
handful of correctly rounded fp32 operations on O(1) numbers, against float64 arithmetic, stay well
within them on any machine (see tests/fp32.py for computations long enough to need more)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.testing import assert_close

from rewardlab.models.ensemble import EnsembleScorer, reduce_scores, write_manifest

# 3 members x 2 sequences
SCORES = torch.tensor([[1.0, -1.0], [2.0, 0.0], [3.0, 4.0]])


def test_mean_min_and_mean_minus_std():
    assert_close(reduce_scores(SCORES, "mean"), torch.tensor([2.0, 1.0]))
    assert_close(reduce_scores(SCORES, "min"), torch.tensor([1.0, -1.0]))
    # population std: column 0 sqrt(((1-2)^2 + 0 + (3-2)^2) / 3) = sqrt(2/3);
    # column 1 sqrt((4 + 1 + 9) / 3) = sqrt(14/3)
    expected = torch.tensor([2.0 - 0.5 * math.sqrt(2 / 3), 1.0 - 0.5 * math.sqrt(14 / 3)])
    assert_close(reduce_scores(SCORES, "mean_minus_std", lam=0.5), expected)
    assert_close(reduce_scores(SCORES, "mean_minus_std", lam=0.0), reduce_scores(SCORES, "mean"))


def test_unknown_reduction_and_bad_shape_raise():
    with pytest.raises(ValueError, match="mean, min, mean_minus_std"):
        reduce_scores(SCORES, "median")
    with pytest.raises(ValueError, match="members, n"):
        reduce_scores(SCORES[0], "mean")


class Fake:
    """A member whose reward of a conversation is a fixed function of its text."""

    def __init__(self, table: dict[str, float]) -> None:
        self.table = table

    def encode(self, convs):
        return [c[-1]["content"] for c in convs]

    def score_ids(self, seqs):
        return torch.tensor([self.table[s] for s in seqs])


def conv(text: str) -> list[dict]:
    return [{"role": "user", "content": "q"}, {"role": "assistant", "content": text}]


def test_ensemble_scorer_reduces_then_compares():
    members = [Fake({"a": 1.0, "b": 0.0}), Fake({"a": 3.0, "b": 1.0})]
    ens = EnsembleScorer(members, "min")
    assert_close(ens.score([conv("a"), conv("b")]), torch.tensor([1.0, 0.0]))
    p = ens.compare([conv("")[:1]], [conv("a")[1:]], [conv("b")[1:]])
    assert_close(p, torch.sigmoid(torch.tensor([1.0 - 0.0])))
    assert_close(EnsembleScorer(members, "mean").score([conv("a")]), torch.tensor([2.0]))


def test_manifest_stores_members_relative_to_the_ensemble_dir(tmp_path):
    out = write_manifest(tmp_path, [tmp_path / "member-0" / "final", tmp_path / "member-1" / "final"],
                         "mean_minus_std", 0.5)
    assert json.loads(out.read_text()) == {"kind": "ensemble", "members": ["member-0/final", "member-1/final"],
                                           "reduction": "mean_minus_std", "lambda": 0.5}
