"""Reading best-of-n candidate sets in both shapes; keeping labelled candidates; real-file smoke test."""

from __future__ import annotations

import pytest

from rewardlab.bon.data import equal_size, labelled_only, load_bon_items
from rewardlab.data import DataError
from tests.conftest import BON16, requires_shared, write_jsonl


def test_both_shapes(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [
        {"id": "a", "prompt": "hi", "responses": ["x", "y", "z"], "gold": [1, None, 0.5]},
        {"instruction": "hello", "samples": ["p", "q"], "gold_preference": [1.2, 1.8], "dataset": "oasst"},
        {"prompt": [{"role": "user", "content": "m"}], "responses": ["r", [{"role": "assistant", "content": "s"}]]},
    ])
    items, report = load_bon_items(path)
    assert report.kept == 3 and items[0].gold == (1.0, None, 0.5) and items[1].subset == "oasst"
    assert items[2].gold == (None, None) and items[2].responses[1][0]["content"] == "s"
    kept, stats = labelled_only(items)
    assert [len(k.responses) for k in kept] == [2, 2] and stats["too_few_labelled"] == 1
    assert kept[0].gold == (1.0, 0.5)
    same, n = equal_size(items)
    assert n == 2 and all(len(i.responses) == 2 for i in same)


def test_errors_name_the_field(tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "hi", "responses": ["x"], "gold": [1, 2]}])
    with pytest.raises(DataError, match="gold"):
        load_bon_items(bad)
    missing = write_jsonl(tmp_path / "m.jsonl", [{"prompt": "hi"}])
    with pytest.raises(DataError, match="responses"):
        load_bon_items(missing)


@requires_shared(BON16)
def test_alpacaeval_file_has_eleven_labelled_samples():
    items, _ = load_bon_items(BON16, limit=20)
    kept, stats = labelled_only(items)
    assert {len(k.responses) for k in kept} == {11} and stats["prompts_kept"] == 20
