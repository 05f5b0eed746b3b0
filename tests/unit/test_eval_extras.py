"""Calibration (ECE by hand), length baselines and length-controlled accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from rewardlab.eval.baselines import length_baselines, length_controlled
from rewardlab.eval.calibration import calibration
from rewardlab.models.base import BaseScorer
from rewardlab.types import PreferencePair


def test_ece_by_hand():
    p = np.array([0.95, 0.85, 0.25, 0.65, 0.55, 0.45])
    # confidence .95 .85 .75 .65 .55 .55; correct 1 1 0 1 1 0; 5 bins of width 0.1 over [0.5, 1]
    # bin [.5,.6): conf .55, acc .5 (2 pairs) gap .05; [.6,.7): .65 vs 1 gap .35; [.7,.8): .75 vs 0 gap .75;
    # [.8,.9): .85 vs 1 gap .15; [.9,1]: .95 vs 1 gap .05
    c = calibration(p, n_bins=5)
    assert c["ece"] == pytest.approx((2 * 0.05 + 0.35 + 0.75 + 0.15 + 0.05) / 6)
    assert c["mce"] == pytest.approx(0.75)
    assert [b["n"] for b in c["bins"]] == [2, 1, 1, 1, 1]
    assert c["accuracy"] == pytest.approx(4 / 6)


def test_perfectly_calibrated_and_ties():
    c = calibration(np.array([0.5, 0.5]), n_bins=10)  # a tie is confidence .5 and half correct
    assert c["ece"] == pytest.approx(0.0) and c["accuracy"] == 0.5


def pair(lc: int, lr: int, subset: str) -> PreferencePair:
    return PreferencePair(prompt=[], chosen=[{"role": "assistant", "content": "a" * lc}],
                          rejected=[{"role": "assistant", "content": "b" * lr}], subset=subset)


PAIRS = [pair(10, 5, "x"), pair(3, 8, "x"), pair(4, 4, "y"), pair(6, 2, "y")]


def test_length_baselines_by_hand():
    b = length_baselines(PAIRS)
    # longer: 1, 0, tie, 1 -> (1 + 0 + .5 + 1)/4 = .625; ties as loss .5
    assert b["prefer_longer"]["accuracy"] == pytest.approx(0.625)
    assert b["prefer_longer"]["accuracy_ties_as_loss"] == pytest.approx(0.5)
    assert b["prefer_longer"]["ties"] == 1
    assert b["prefer_shorter"]["accuracy"] == pytest.approx(0.375)
    assert b["prefer_longer"]["per_subset"]["x"]["accuracy"] == pytest.approx(0.5)
    assert b["prefer_shorter"]["per_subset"]["y"]["accuracy"] == pytest.approx(0.25)


def test_length_controlled_accuracy():
    lc = length_controlled(PAIRS, np.array([1.0, 1.0, 0.0, 0.0]))
    # chosen longer: pairs 0, 3 -> 1, 0 = .5; chosen shorter: pair 1 -> 1; LC = (.5 + 1)/2
    assert lc["length_controlled_accuracy"] == pytest.approx(0.75)
    assert lc["n_chosen_longer"] == 2 and lc["n_chosen_shorter"] == 1 and lc["n_equal_length"] == 1
    assert sum(b["n"] for b in lc["bins"]) == 4
    heuristic = length_controlled(PAIRS, np.array([1.0, 0.0, 0.5, 1.0]))  # "prefer longer" itself
    assert heuristic["length_controlled_accuracy"] == pytest.approx(0.5)


def test_every_evaluation_reports_length_alone_on_the_same_pairs():
    """evaluate_pairs puts the length rules beside the model: here the model is right on pairs 0, 1, 2."""
    import torch

    from rewardlab.eval.pairwise import evaluate_pairs

    class Fixed(BaseScorer):  # rewards in pair order: chosen then rejected
        def score_pairs(self, pairs):
            return torch.tensor([1.0, 1.0, 1.0, 0.0]), torch.tensor([0.0, 0.0, 0.0, 1.0])

    summary, _ = evaluate_pairs(Fixed(), PAIRS)
    length = summary["length"]
    assert length["prefer_longer"] == pytest.approx(0.625) and length["prefer_shorter"] == pytest.approx(0.375)
    # chosen longer: pairs 0, 3 -> 1, 0 = .5; chosen shorter: pair 1 -> 1; LC = (.5 + 1)/2
    assert length["length_controlled_accuracy"] == pytest.approx(0.75)
    # model 1, 1, 1, 0 minus prefer-longer 1, 0, .5, 1 = 0, 1, .5, -1: mean .125
    assert length["vs_best"]["baseline"] == "prefer_longer"
    assert length["vs_best"]["difference"] == pytest.approx(0.125)
    lo, hi = length["vs_best"]["ci95"]
    assert -1 <= lo <= 0.125 <= hi <= 1


def test_the_length_line_reads_the_report():
    from rewardlab.cli.train import length_line

    line = length_line({"prefer_longer": 0.625, "prefer_shorter": 0.375, "length_controlled_accuracy": 0.75,
                        "vs_best": {"baseline": "prefer_longer", "difference": 0.125, "ci95": [-0.25, 0.5]}})
    assert line == ("length alone on the same pairs: prefer longer 0.625, prefer shorter 0.375; model - prefer "
                    "longer: +0.125 (95% CI -0.250 to +0.500); length-controlled accuracy 0.750")
    assert length_line(None) == "length baseline: no pairs"
