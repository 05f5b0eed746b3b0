"""load_pairs (strict, lenient, auto detection, limit), split_pairs, load_conversations, the real HH file."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from rewardlab.data import DataError, load_conversations, load_pairs, split_pairs
from rewardlab.registry import UnknownNameError

HH_FILE = (
    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "hh-rlhf-harmless" / "test.jsonl.gz"
)


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def good(i: int) -> dict:
    return {"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"}


MIXED = [
    good(1),
    "{oops",
    {"prompt": "q", "chosen": "a"},
    {"prompt": "q", "chosen": 3, "rejected": "b"},
    good(2),
    {"prompt": "q", "chosen": "", "rejected": "b"},
    {"prompt": "q", "chosen": "same", "rejected": "same"},
    good(3),
]


def test_strict_raises_at_first_bad_record_with_file_line_and_field(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [good(1), {"prompt": "q", "chosen": "a"}, "{oops"])
    with pytest.raises(DataError, match=r"d\.jsonl:2: field 'rejected': required field is missing"):
        load_pairs(path)


def test_strict_malformed_json_names_the_line(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [good(1), "{oops"])
    with pytest.raises(DataError, match=r"d\.jsonl:2: malformed JSON"):
        load_pairs(path)


def test_lenient_counts_every_bad_record_by_reason(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", MIXED)
    pairs, report = load_pairs(path, lenient=True)
    assert [p.chosen[0]["content"] for p in pairs] == ["good 1", "good 2", "good 3"]
    assert [p.id for p in pairs] == [f"{path}:1", f"{path}:5", f"{path}:8"]
    assert {p.source for p in pairs} == {str(path)}
    assert (report.read, report.kept) == (8, 3)
    assert report.dropped == {
        "malformed_json": 1,
        "missing_field": 1,
        "bad_type": 1,
        "empty_response": 1,
        "identical": 1,
    }
    assert report.examples["missing_field"] == [f"{path}:3"]
    report.check()


def test_limit_stops_after_that_many_kept(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", MIXED)
    pairs, report = load_pairs(path, lenient=True, limit=2)
    assert [p.id for p in pairs] == [f"{path}:1", f"{path}:5"]
    assert (report.read, report.kept, report.n_dropped) == (5, 2, 3)
    assert load_pairs(path, lenient=True, limit=0)[0] == []


def test_auto_detects_per_file_from_first_valid_record(tmp_path):
    hh = "\n\nHuman: q\n\nAssistant: "
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"question": "?"},  # detects nothing
            {"chosen": hh + "a", "rejected": hh + "a"},  # detects hh but is not valid: nothing is locked yet
            {"chosen": hh + "a", "rejected": hh + "b"},  # locks hh
            good(1),  # explicit-looking, but this file is hh
        ],
    )
    pairs, report = load_pairs(path, lenient=True)
    assert len(pairs) == 1 and pairs[0].prompt == [{"role": "user", "content": "q"}]
    assert report.dropped == {"unknown_format": 1, "identical": 1, "bad_structure": 1}


def test_auto_detection_is_separate_for_each_file_of_a_directory(tmp_path):
    hh = "\n\nHuman: q\n\nAssistant: "
    write_jsonl(tmp_path / "a.jsonl", [good(1)])
    write_jsonl(tmp_path / "b.jsonl", [{"chosen": hh + "a", "rejected": hh + "b"}])
    pairs, report = load_pairs(tmp_path)
    assert [p.source for p in pairs] == [str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")]
    assert report.kept == 2


def test_forced_format_and_unknown_format_name(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{**good(1), "subset": "s"}])
    assert load_pairs(path, format="explicit")[0][0].subset == "s"
    with pytest.raises(DataError, match="field 'chosen'"):
        load_pairs(path, format="implicit")
    with pytest.raises(UnknownNameError, match="did you mean 'implicit'"):
        load_pairs(path, format="implict")


def test_gzip_json_source(tmp_path):
    path = tmp_path / "d.json.gz"
    path.write_bytes(gzip.compress(json.dumps({"data": [good(1), {"prompt": "q"}]}).encode()))
    pairs, report = load_pairs(path, lenient=True)
    assert [p.id for p in pairs] == [f"{path}:row 0"] and report.examples["missing_field"] == [
        f"{path}:row 1"
    ]


def test_split_pairs_is_deterministic_and_disjoint():
    items = list(range(20))
    train, evals = split_pairs(items, eval_fraction=0.25, seed=3)
    assert len(evals) == 5 and sorted(train + evals) == items
    assert train == sorted(train) and evals == sorted(evals)  # input order kept
    assert split_pairs(items, eval_fraction=0.25, seed=3) == (train, evals)
    assert split_pairs(items, eval_fraction=0.25, seed=4) != (train, evals)
    assert len(split_pairs(items, eval_size=7)[1]) == 7
    assert (
        len(split_pairs(items[:3], eval_fraction=0.01)[1]) == 1
    )  # a positive fraction holds out at least one


@pytest.mark.parametrize(
    "kwargs", [{}, {"eval_fraction": 0.1, "eval_size": 2}, {"eval_fraction": 1.5}, {"eval_size": 21}]
)
def test_split_pairs_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        split_pairs(list(range(20)), **kwargs)


def test_load_conversations_accepts_every_shape(tmp_path):
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    path = write_jsonl(
        tmp_path / "c.jsonl",
        [
            {"messages": msgs},
            {"conversation": msgs},
            {"prompt": "q", "response": "a"},
            {"prompt": msgs[:1], "response": msgs[1:]},
            msgs,
        ],
    )
    got = load_conversations(path)
    assert [loc for loc, _ in got] == [f"{path}:{i}" for i in range(1, 6)]
    assert all(conv == msgs for _, conv in got)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"prompt": "q", "response": "  "}, "c.jsonl:1: field 'response': the final response is empty"),
        ({"messages": []}, "c.jsonl:1: field 'messages': the final response is empty"),
        ({"prompt": "q"}, "c.jsonl:1: field 'response': required field"),
        ({"messages": "hi"}, "c.jsonl:1: field 'messages': expected a list of messages, got str"),
        ([{"role": "user", "content": 1}], "c.jsonl:1: field 'messages[0].content': expected a string"),
        ({"text": "hi"}, "c.jsonl:1: expected 'messages', 'conversation' or 'prompt' + 'response'"),
        (5, "c.jsonl:1: expected a JSON object or list of messages, got int"),
    ],
)
def test_load_conversations_errors_name_file_line_and_field(tmp_path, row, expected):
    path = write_jsonl(tmp_path / "c.jsonl", [row])
    with pytest.raises(DataError) as info:
        load_conversations(path)
    assert str(info.value).startswith(str(tmp_path))
    assert expected in str(info.value)


@pytest.mark.slow
@pytest.mark.skipif(not HH_FILE.exists(), reason=f"shared HH-RLHF data not found at {HH_FILE}")
def test_real_hh_file_loads_leniently():
    pairs, report = load_pairs(HH_FILE, lenient=True)
    assert report.read == 2312
    assert report.kept + report.n_dropped == report.read
    report.check()
    # The known bad lines: four transcripts whose final Assistant answer is empty.
    assert report.dropped == {"empty_response": 4}
    assert all(p.chosen and p.rejected and p.chosen != p.rejected for p in pairs)
