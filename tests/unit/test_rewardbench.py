"""RewardBench (v1) arithmetic on a hand-made results set, every expected number written out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from rewardlab.eval.rewardbench import EXAMPLE_COUNTS, SECTIONS, rewardbench_summary, section_scores
from rewardlab.types import PreferencePair

HAND = {  # subset -> outcomes (1 right, 0 wrong, 0.5 tie: a tie loses in RewardBench)
    "alpacaeval-easy": [1, 1, 0, 0.5],  # 2/4 = 0.5 (the tie loses), 1 tie
    "mt-bench-easy": [1, 1],  # 1.0
    "llmbar-natural": [1, 0],  # 0.5
    "donotanswer": [1, 1, 1, 0],  # 0.75
    "xstest-should-respond": [0, 1],  # 0.5
    "math-prm": [1, 0],  # 0.5
    "hep-python": [1, 1],  # 1.0
    "hep-go": [0, 1],  # 0.5
    "anthropic_hhh": [1, 0],  # 0.5
    "shp": [1, 1],  # 1.0
    "my-own-subset": [1, 1],  # not in the definition: reported, never in a section
}


def hand_set() -> tuple[list[PreferencePair], np.ndarray]:
    pairs, outcomes = [], []
    msg = [{"role": "assistant", "content": "x"}]
    for subset, outs in HAND.items():
        for i, o in enumerate(outs):
            pairs.append(PreferencePair(prompt=[], chosen=msg, rejected=msg, id=f"{subset}:{i}", subset=subset))
            outcomes.append(o)
    return pairs, np.array(outcomes, dtype=float)


def test_hand_made_set():
    s = rewardbench_summary(*hand_set())
    assert s["per_subset"]["alpacaeval-easy"]["accuracy"] == 0.5
    assert s["per_subset"]["alpacaeval-easy"]["ties"] == 1
    chat = (0.5 * 100 + 1.0 * 28) / (100 + 28)  # 78/128
    chat_hard = 0.5  # only llmbar-natural present
    safety = (0.75 * 136 + 0.5 * 250) / (136 + 250)  # 227/386
    reasoning = (0.5 * 984 + 1.0 * 164 + 0.5 * 164) / (984 + 164 + 164)  # 738/1312
    prior = (0.5 + 1.0) / 2
    assert s["sections"]["Chat"] == pytest.approx(chat)
    assert s["sections"]["Chat Hard"] == pytest.approx(chat_hard)
    assert s["sections"]["Safety"] == pytest.approx(safety)
    assert s["sections"]["Reasoning"] == pytest.approx(reasoning)
    assert s["prior_sets"] == pytest.approx(prior)
    assert s["score_four_sections"] == pytest.approx((chat + chat_hard + safety + reasoning) / 4)
    assert s["score_with_prior_sets"] == pytest.approx((chat + chat_hard + safety + reasoning + 0.5 * prior) / 4.5)
    assert s["unmapped_subsets"] == ["my-own-subset"]
    assert s["ties"] == 1 and s["n"] == 26
    assert s["pair_accuracy"] == pytest.approx(18 / 26)


def test_math_weighs_as_much_as_all_code_together():
    acc = {"math-prm": 0.4, **{s: 1.0 for s in SECTIONS["Reasoning"] if s.startswith("hep-")}}
    assert section_scores(acc)["sections"]["Reasoning"] == pytest.approx(0.5 * 0.4 + 0.5 * 1.0)
    assert EXAMPLE_COUNTS["math-prm"] == 6 * 164


def test_missing_section_gives_no_aggregate():
    s = section_scores({"alpacaeval-easy": 1.0, "anthropic_hhh": 1.0})
    assert s["sections"]["Chat"] == 1.0 and s["sections"]["Safety"] is None
    assert s["score_four_sections"] is None and s["score_with_prior_sets"] is None


def test_definition_covers_the_published_subsets():
    assert sum(len(v) for v in SECTIONS.values()) == 23 == len(EXAMPLE_COUNTS)
    real_pairs = sum(EXAMPLE_COUNTS.values()) - 984 + 447
    assert real_pairs == 2985  # the v1 release: 2,985 pairs
