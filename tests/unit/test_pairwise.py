"""Pairwise accuracy, ties, per-subset tables and bootstrap intervals against numbers worked out by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rewardlab.eval.pairwise import accuracy_table, bootstrap_ci, evaluate_pairs, pair_outcomes, write_results
from rewardlab.models.base import BaseScorer
from rewardlab.types import PreferencePair


def pair(i: int, subset: str | None = None, source: str | None = None) -> PreferencePair:
    return PreferencePair(
        prompt=[{"role": "user", "content": f"q{i}"}],
        chosen=[{"role": "assistant", "content": f"good{i}"}],
        rejected=[{"role": "assistant", "content": f"bad{i}"}],
        id=f"p{i}",
        subset=subset,
        source=source,
    )


# Rewards: gaps chosen - rejected = 1.0, -0.5, 0.0, 0.05  ->  right, wrong, tie, right (barely).
CHOSEN = torch.tensor([2.0, 0.0, 1.0, 0.30])
REJECTED = torch.tensor([1.0, 0.5, 1.0, 0.25])
PAIRS = [pair(0, "chat"), pair(1, "chat"), pair(2, "safety"), pair(3, "safety")]


def test_outcomes_score_ties_as_half():
    assert pair_outcomes(CHOSEN, REJECTED).tolist() == [1.0, 0.0, 0.5, 1.0]
    # |0.05| <= 0.1 is a tie too once a tolerance is given
    assert pair_outcomes(CHOSEN, REJECTED, tie_tol=0.1).tolist() == [1.0, 0.0, 0.5, 0.5]


def test_accuracy_table_overall_and_per_subset():
    t = accuracy_table(PAIRS, pair_outcomes(CHOSEN, REJECTED))
    # overall: (1 + 0 + 0.5 + 1) / 4 = 0.625; ties as losses: 2 / 4 = 0.5
    assert (t["accuracy"], t["accuracy_ties_as_loss"], t["n"], t["ties"]) == (0.625, 0.5, 4, 1)
    chat, safety = t["per_subset"]["chat"], t["per_subset"]["safety"]
    # chat: (1 + 0) / 2 = 0.5, no ties; safety: (0.5 + 1) / 2 = 0.75, ties as losses 1 / 2
    assert (chat["accuracy"], chat["accuracy_ties_as_loss"], chat["n"], chat["ties"]) == (0.5, 0.5, 2, 0)
    assert (safety["accuracy"], safety["accuracy_ties_as_loss"], safety["n"], safety["ties"]) == (
        0.75,
        0.5,
        2,
        1,
    )
    assert set(t["per_subset"]) == {"chat", "safety"}


def test_pairs_without_subset_group_by_source_then_all():
    pairs = [pair(0, source="a.jsonl"), pair(1, source="a.jsonl"), pair(2)]
    t = accuracy_table(pairs, np.array([1.0, 0.0, 1.0]))
    assert {k: v["accuracy"] for k, v in t["per_subset"].items()} == {"a.jsonl": 0.5, "all": 1.0}


def test_bootstrap_interval_of_a_constant_is_that_constant():
    assert bootstrap_ci(np.ones(7)) == [1.0, 1.0]
    assert bootstrap_ci(np.full(5, 0.5)) == [0.5, 0.5]
    assert bootstrap_ci(np.array([])) == [None, None]  # not defined: JSON null, never NaN


def test_bootstrap_interval_of_two_outcomes_by_hand():
    # Resampling [0, 1] twice gives a mean of 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4.
    # 95%: the 2.5% and 97.5% quantiles are 0 and 1. 40%: the 30% and 70% quantiles both fall in
    # the middle half, which is all 0.5.
    correct = np.array([0.0, 1.0])
    assert bootstrap_ci(correct, n_boot=4000) == [0.0, 1.0]
    assert bootstrap_ci(correct, n_boot=4000, level=0.4) == [0.5, 0.5]


def test_bootstrap_interval_matches_the_normal_approximation():
    # 300 right of 400: p = 0.75, standard error sqrt(0.75 * 0.25 / 400) = 0.021651,
    # 95% interval 0.75 -+ 1.96 * 0.021651 = [0.70756, 0.79244].
    correct = np.array([1.0] * 300 + [0.0] * 100)
    lo, hi = bootstrap_ci(correct, n_boot=20000)
    assert lo == pytest.approx(0.70756, abs=0.006) and hi == pytest.approx(0.79244, abs=0.006)
    assert bootstrap_ci(correct, seed=3) == bootstrap_ci(correct, seed=3)  # seeded: reproducible


def test_bootstrap_draws_like_resampling_indices():
    # The multinomial shortcut against the textbook definition: draw n indices with replacement.
    correct = np.array([1.0] * 31 + [0.5] * 6 + [0.0] * 13)
    rng = np.random.default_rng(1)
    means = correct[rng.integers(0, correct.size, size=(20000, correct.size))].mean(axis=1)
    textbook = np.quantile(means, [0.025, 0.975])
    assert bootstrap_ci(correct, n_boot=20000) == pytest.approx(textbook.tolist(), abs=0.011)


def test_cluster_bootstrap_widens_the_interval_of_correlated_pairs():
    # 20 instructions of 10 pairs each; every pair of an instruction has the same outcome (12 right
    # instructions, 8 wrong). The 200 pairs carry the information of 20: the pair bootstrap's interval
    # is about sqrt(10) times too narrow. Cluster standard error sqrt(0.6 * 0.4 / 20) = 0.1095, so the
    # 95% interval is about 0.6 -+ 0.215; the pair bootstrap's sqrt(0.24 / 200) = 0.0346, about -+ 0.068.
    correct = np.repeat([1.0] * 12 + [0.0] * 8, 10)
    groups = np.repeat([f"inst{i}" for i in range(20)], 10)
    lo, hi = bootstrap_ci(correct, n_boot=20000, groups=groups)
    plo, phi = bootstrap_ci(correct, n_boot=20000)
    assert hi - lo == pytest.approx(2 * 1.96 * 0.1095, abs=0.05)
    assert phi - plo == pytest.approx(2 * 1.96 * 0.0346, abs=0.015)
    assert hi - lo > 2.5 * (phi - plo)


def test_cluster_bootstrap_with_one_pair_per_cluster_is_the_pair_bootstrap():
    correct = np.array([1.0] * 31 + [0.5] * 6 + [0.0] * 13)
    groups = [f"i{k}" for k in range(correct.size)]
    assert bootstrap_ci(correct, seed=4, groups=groups) == bootstrap_ci(correct, seed=4)
    with pytest.raises(ValueError, match="groups has 3 entries for 50"):
        bootstrap_ci(correct, groups=["a", "b", "c"])


def test_cluster_bootstrap_weights_clusters_by_their_pairs():
    # Cluster a: 3 pairs all right; cluster b: 1 pair wrong. The resampled mean is a pair mean, not a
    # mean of cluster means: {a, a} 1, {a, b} 3/4, {b, b} 0 with probabilities 1/4, 1/2, 1/4.
    correct = np.array([1.0, 1.0, 1.0, 0.0])
    assert bootstrap_ci(correct, n_boot=4000, groups=["a", "a", "a", "b"]) == [0.0, 1.0]
    assert bootstrap_ci(correct, n_boot=4000, level=0.4, groups=["a", "a", "a", "b"]) == [0.75, 0.75]


class PairScorer(BaseScorer):
    """Scores pairs directly, as ScalarScorer does."""

    def score_pairs(self, pairs):
        return CHOSEN[: len(pairs)], REJECTED[: len(pairs)]


class ConversationScorer(BaseScorer):
    """Only ``score``: a reward per conversation, read from the last message."""

    rewards = {"good0": 2.0, "bad0": 1.0, "good1": 0.0, "bad1": 0.5}

    def score(self, convs):
        return torch.tensor([self.rewards[c[-1]["content"]] for c in convs])


class Judge(BaseScorer):
    """A generative judge: P(chosen preferred) per pair."""

    is_generative = True

    def compare(self, prompts, a, b):
        return torch.tensor([0.9, 0.5, 0.2])


def test_evaluate_pairs_rows_and_summary():
    summary, rows = evaluate_pairs(PairScorer(), PAIRS)
    assert summary["accuracy"] == 0.625 and summary["ties"] == 1
    assert [r["id"] for r in rows] == ["p0", "p1", "p2", "p3"]
    assert [r["outcome"] for r in rows] == [1.0, 0.0, 0.5, 1.0]
    assert rows[1] == {
        "id": "p1",
        "subset": "chat",
        "chosen_score": 0.0,
        "rejected_score": 0.5,
        "outcome": 0.0,
    }


def test_evaluate_pairs_with_a_conversation_scorer():
    summary, rows = evaluate_pairs(ConversationScorer(), PAIRS[:2])
    assert [r["outcome"] for r in rows] == [1.0, 0.0] and summary["accuracy"] == 0.5


def test_evaluate_pairs_with_a_generative_judge():
    # P = 0.9 -> right, exactly 0.5 -> tie, 0.2 -> wrong: (1 + 0.5 + 0) / 3 = 0.5
    summary, rows = evaluate_pairs(Judge(), PAIRS[:3])
    assert [r["outcome"] for r in rows] == [1.0, 0.5, 0.0]
    assert summary["accuracy"] == 0.5 and summary["ties"] == 1
    assert rows[0]["chosen_score"] == pytest.approx(0.9) and rows[0]["rejected_score"] == pytest.approx(0.1)


def test_write_results_puts_per_pair_rows_beside_the_summary(tmp_path):
    summary, rows = evaluate_pairs(PairScorer(), PAIRS)
    out, per_pair = write_results(summary, rows, tmp_path / "deep" / "res.json")
    assert per_pair == tmp_path / "deep" / "res.pairs.jsonl"
    assert json.loads(out.read_text()) == summary
    assert [json.loads(line) for line in per_pair.read_text().splitlines()] == rows


def test_pairs_that_share_a_prompt_are_resampled_together():
    """Best-of-n pairs of one instruction share its prompt: the interval resamples prompts, so it is wider
    than one that pretends the pairs independent, and it says how many prompts it rests on."""
    pairs, outcomes = [], []
    for k in range(12):  # 12 prompts with 10 pairs each; within a prompt the outcomes agree
        for j in range(10):
            pairs.append(PreferencePair([{"role": "user", "content": f"q{k}"}],
                                        [{"role": "assistant", "content": "a" * (j + 2)}],
                                        [{"role": "assistant", "content": "b"}], id=f"{k}:{j}"))
            outcomes.append(1.0 if k % 3 else 0.0)
    o = np.array(outcomes)
    table = accuracy_table(pairs, o)
    assert table["prompts"] == 12 and table["n"] == 120
    assert table["ci95"] == bootstrap_ci(o, groups=[p.id.split(":")[0] for p in pairs])
    lo, hi = table["ci95"]
    plo, phi = bootstrap_ci(o)
    assert hi - lo > 2 * (phi - plo)
    own = [PreferencePair([{"role": "user", "content": f"q{i}"}], p.chosen, p.rejected) for i, p in enumerate(pairs)]
    assert accuracy_table(own, o)["ci95"] == [plo, phi] and accuracy_table(own, o)["prompts"] == 120
