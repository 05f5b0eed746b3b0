"""Best-of-n records: strict and lenient reading, and the gold-gap pair rule worked out by hand."""

from __future__ import annotations

import pytest

from rewardlab.data import DataError
from rewardlab.data.bon import gold_gap_pairs, load_bon_records
from tests.conftest import BON16, requires_shared, write_jsonl


def rec(i, gold, samples=None):
    samples = samples or [f"answer {k} of {i}" for k in range(len(gold))]
    return {"id": str(i), "dataset": "koala", "instruction": f"question {i}", "samples": samples,
            "gold_preference": gold}


def test_gap_rule_by_hand(tmp_path):
    path = write_jsonl(tmp_path / "b.jsonl", [
        rec(0, [1.0, 1.9, 1.3, None]),        # widest gap 1 > 0 (0.9); 1 > 2 (0.6) would reuse sample 1
        rec(1, [1.1, 1.2, None, 1.4]),        # max gap 0.3 < 0.5: no pair
        rec(2, [None, 1.7, None, None]),      # one label only
        rec(3, [2.0, 1.0, 1.5, 1.0]),         # 0 > 1 (gap 1.0, tie with 0 > 3 broken by index); 2 > 3 (0.5) is disjoint
    ])
    records, report = load_bon_records(path)
    assert (report.read, report.kept) == (4, 4)
    pairs, stats = gold_gap_pairs(records, min_gap=0.5)
    assert [p.id for p in pairs] == ["0:1>0", "3:0>1"]
    assert pairs[0].chosen[0]["content"] == "answer 1 of 0" and pairs[0].rejected[0]["content"] == "answer 0 of 0"
    assert pairs[0].margin == pytest.approx(0.9) and pairs[0].subset == "koala"
    assert pairs[0].prompt == [{"role": "user", "content": "question 0"}]
    assert stats == {"instructions": 4, "fewer_than_two_labels": 1, "no_gap": 1, "identical_texts": 0,
                     "pairs": 2, "min_gap": 0.5, "per_instruction": 1}
    two, stats2 = gold_gap_pairs(records, min_gap=0.5, per_instruction=2)
    assert [p.id for p in two] == ["0:1>0", "3:0>1", "3:2>3"]  # disjoint samples only
    assert stats2["pairs"] == 3


def test_identical_texts_are_skipped_and_counted(tmp_path):
    path = write_jsonl(tmp_path / "b.jsonl", [rec(0, [1.0, 2.0], samples=["same", "same "])])
    pairs, stats = gold_gap_pairs(load_bon_records(path)[0], min_gap=0.5)
    assert pairs == [] and stats["identical_texts"] == 1 and stats["no_gap"] == 1


@pytest.mark.parametrize("row, field, reason", [
    ({"instruction": "q", "samples": ["a", "b"]}, "gold_preference", "missing_field"),
    ({"instruction": "q", "samples": ["a", "b"], "gold_preference": [1.0]}, "gold_preference", "bad_structure"),
    ({"instruction": "q", "samples": ["a", 3], "gold_preference": [1.0, 1.0]}, "samples[1]", "bad_type"),
    ({"instruction": "q", "samples": ["a", "b"], "gold_preference": [1.0, "x"]}, "gold_preference[1]", "bad_type"),
    ({"instruction": " ", "samples": ["a"], "gold_preference": [1.0]}, "instruction", "empty_response"),
])
def test_bad_records_name_line_and_field_or_are_counted(tmp_path, row, field, reason):
    path = write_jsonl(tmp_path / "b.jsonl", [rec(0, [1.0, 2.0]), row])
    with pytest.raises(DataError) as info:
        load_bon_records(path)
    assert info.value.location == f"{path}:2" and info.value.field == field and info.value.reason == reason
    records, report = load_bon_records(path, lenient=True)
    assert len(records) == 1 and report.read == 2 and report.dropped == {reason: 1}


def test_min_gap_must_be_positive():
    with pytest.raises(ValueError, match="min_gap"):
        gold_gap_pairs([], min_gap=0)


@requires_shared(BON16)
def test_real_bon16_counts():
    records, report = load_bon_records(BON16)
    assert report.kept == report.read == 805
    assert all(len(r.samples) == 16 and len(r.labelled) == 11 for r in records)
    pairs, stats = gold_gap_pairs(records, min_gap=0.5)
    assert stats["pairs"] == len(pairs) and stats["pairs"] + stats["no_gap"] == 805
    assert all(p.margin >= 0.5 for p in pairs)
