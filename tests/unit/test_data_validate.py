"""The checks every input gets (rewardlab.data.validate), as the data readers apply them: text that is not
valid Unicode, empty sources, and directory entries that are not read."""

from __future__ import annotations

import gzip
import json
import logging

import pytest

from rewardlab.data import DROP_REASONS, DataError, load_conversations, load_pairs
from rewardlab.data.validate import check_conversation, check_rendered
from tests.conftest import synthetic_pairs, write_jsonl

LONE = "a\ud800b"  # valid JSON ("a\\ud800b"), not valid Unicode: no tokenizer or UTF-8 writer takes it


def jsonl(path, rows):
    """``json.dumps`` writes a lone surrogate as the escape ``\\ud800``, as any JSON writer may."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(("record", "field"), [
    ({"prompt": "hi", "chosen": LONE, "rejected": "no"}, "chosen"),
    ({"prompt": LONE, "chosen": "yes", "rejected": "no"}, "prompt"),
    ({"prompt": [{"role": "user", "content": LONE}], "chosen": "yes", "rejected": "no"}, "prompt[0].content"),
    ({"chosen": f"\n\nHuman: hi\n\nAssistant: {LONE}", "rejected": "\n\nHuman: hi\n\nAssistant: no"}, "chosen"),
    ({"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": LONE}],
      "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "no"}]}, "chosen[1].content"),
])
def test_a_lone_surrogate_is_a_data_error_naming_file_line_and_field(tmp_path, record, field):
    clean = json.loads(json.dumps(record).replace("\\ud800", ""))  # the same record, valid
    path = jsonl(tmp_path / "d.jsonl", [clean, record])
    with pytest.raises(DataError) as info:
        load_pairs(path)
    assert str(info.value).startswith(f"{path}:2: field '{field}': not valid Unicode text: a lone surrogate U+D800")
    assert info.value.reason == "bad_text" and "bad_text" in DROP_REASONS
    str(info.value).encode("utf-8")  # the message itself can be printed and written


def test_lenient_loading_drops_and_counts_lone_surrogates(tmp_path):
    good = synthetic_pairs(3)
    path = jsonl(tmp_path / "d.jsonl", [good[0], {**good[0], "chosen": LONE}, *good[1:]])
    pairs, report = load_pairs(path, lenient=True)
    assert len(pairs) == 3 and report.read == 4 and report.dropped == {"bad_text": 1}
    assert report.examples["bad_text"] == [f"{path}:2"]


def test_conversations_to_score_get_the_same_checks(tmp_path):
    path = jsonl(tmp_path / "c.jsonl", [{"prompt": "q", "response": "fine"}, {"prompt": "q", "response": LONE}])
    with pytest.raises(DataError, match=r"c\.jsonl:2: field 'response': not valid Unicode text"):
        load_conversations(path)
    bad_role = [{"role": "wizard", "content": "q"}, {"role": "assistant", "content": "a"}]
    jsonl(path, [{"messages": bad_role}])
    with pytest.raises(DataError, match=r"c\.jsonl:1: field 'messages\[0\]\.role': expected one of system, user"):
        load_conversations(path)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_an_empty_source_is_an_error_not_zero_pairs(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    with pytest.raises(DataError, match=rf"^{path}: holds no records$"):
        load_pairs(path)
    with pytest.raises(DataError, match=rf"^{path}: holds no conversations$"):
        load_conversations(path)


def test_a_source_whose_every_record_is_dropped_says_so(tmp_path):
    path = jsonl(tmp_path / "bad.jsonl", [{"prompt": "hi", "chosen": "x", "rejected": "x"}])
    with pytest.raises(DataError, match=r"no records left after dropping bad ones: read 1, kept 0, dropped 1 "
                                        r"\[identical: 1"):
        load_pairs(path, lenient=True)


def test_a_directory_reads_any_letter_case_and_reports_what_it_skips(tmp_path, caplog):
    rows = synthetic_pairs(48)
    write_jsonl(tmp_path / "a.jsonl", rows[:12])
    write_jsonl(tmp_path / "B.JSONL", rows[12:24])
    (tmp_path / "c.Json").write_text(json.dumps(rows[24:36]))
    with gzip.open(tmp_path / "d.jsonl.GZ", "wt") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows[36:])
    (tmp_path / "notes.txt").write_text("not data\n")
    (tmp_path / "more").mkdir()
    write_jsonl(tmp_path / "more" / "e.jsonl", synthetic_pairs(5))
    with caplog.at_level(logging.WARNING):
        pairs, report = load_pairs(tmp_path)
    assert len(pairs) == report.read == 48
    assert set(report.skipped) == {str(tmp_path / "notes.txt"), str(tmp_path / "more")}
    assert "subdirectory" in report.skipped[str(tmp_path / "more")]
    assert "not a data file" in report.skipped[str(tmp_path / "notes.txt")]
    assert report.to_dict()["skipped"] == report.skipped
    assert "skipped 2 directory entries" in report.summary()
    logged = [r.getMessage() for r in caplog.records]
    assert any("skipped notes.txt" in m for m in logged) and any("skipped more" in m for m in logged)


@pytest.mark.parametrize(("conv", "needle"), [
    ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}, {"role": "assistant", "content": " "}],
     "field 'messages': the final response is empty"),
    ([{"role": "user", "content": "q"}], "must end with the assistant response"),
    ([{"role": "bot", "content": "q"}, {"role": "assistant", "content": "a"}], "field 'messages[0].role'"),
    ([{"role": "user", "content": "q"}, {"role": "assistant", "content": 3}], "field 'messages[1].content'"),
    ([{"role": "user", "content": LONE}, {"role": "assistant", "content": "a"}], "not valid Unicode"),
    ("hi", "expected a list of messages"),
])
def test_check_conversation(conv, needle):
    with pytest.raises(DataError) as info:
        check_conversation(conv, "conversation 0")
    assert needle in str(info.value)


def test_check_rendered():
    assert check_rendered("<|im_start|>user\nhi", "request", "query[0]")
    for text, needle in (("", "is empty"), (" \n", "is empty"), (LONE, "not valid Unicode")):
        with pytest.raises(DataError, match=needle):
            check_rendered(text, "request", "query[0]")
