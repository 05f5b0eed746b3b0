"""iter_records: every source kind, locations, malformed lines (strict and counted), missing sources."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from rewardlab.data import DataError, iter_records
from rewardlab.data.readers import origin
from rewardlab.types import DataReport

ROWS = [{"prompt": "p1", "chosen": "a", "rejected": "b"}, {"prompt": "p2", "chosen": "c", "rejected": "d"}]


def write_jsonl(path: Path, lines: list[str]) -> Path:
    text = "\n".join(lines) + "\n"
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["d.jsonl", "d.jsonl.gz"])
def test_jsonl_locations_are_file_and_1_based_line(tmp_path, name):
    path = write_jsonl(tmp_path / name, [json.dumps(ROWS[0]), "", "   ", json.dumps(ROWS[1])])
    got = list(iter_records(path))
    assert got == [(f"{path}:1", ROWS[0]), (f"{path}:4", ROWS[1])]  # blank lines skipped, not renumbered


@pytest.mark.parametrize("name", ["d.json", "d.json.gz"])
@pytest.mark.parametrize("wrap", [False, True])
def test_json_list_or_data_key_gives_row_locations(tmp_path, name, wrap):
    payload = json.dumps({"data": ROWS} if wrap else ROWS).encode()
    path = tmp_path / name
    path.write_bytes(gzip.compress(payload) if name.endswith(".gz") else payload)
    assert list(iter_records(path)) == [(f"{path}:row 0", ROWS[0]), (f"{path}:row 1", ROWS[1])]


def test_json_of_wrong_shape_raises(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"rows": ROWS}))
    with pytest.raises(DataError, match=r"d\.json: expected a JSON list of objects"):
        list(iter_records(path))


def test_parquet_rows(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    assert list(iter_records(str(path))) == [(f"{path}:row 0", ROWS[0]), (f"{path}:row 1", ROWS[1])]


def test_save_to_disk_dataset_and_dataset_dict(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list(ROWS)
    ds.save_to_disk(str(tmp_path / "one"))
    assert [r for _, r in iter_records(tmp_path / "one")] == ROWS
    datasets.DatasetDict({"train": ds, "test": ds.select([1])}).save_to_disk(str(tmp_path / "two"))
    assert [loc for loc, _ in iter_records(tmp_path / "two")] == [
        f"{tmp_path / 'two'}:train:row {i}" for i in (0, 1)
    ]
    assert [r for _, r in iter_records(f"{tmp_path / 'two'}:test")] == [ROWS[1]]
    with pytest.raises(DataError, match="splits: train, test"):
        list(iter_records(f"{tmp_path / 'two'}:validation"))


def test_directory_of_data_files_reads_each_file_in_order(tmp_path):
    write_jsonl(tmp_path / "train-b.jsonl", [json.dumps(ROWS[1])])
    write_jsonl(tmp_path / "train-a.jsonl", [json.dumps(ROWS[0])])
    write_jsonl(tmp_path / "test.jsonl", [json.dumps(ROWS[0])])
    (tmp_path / "notes.txt").write_text("ignored")
    assert len(list(iter_records(tmp_path))) == 3
    got = list(iter_records(f"{tmp_path}:train"))
    assert got == [(f"{tmp_path / 'train-a.jsonl'}:1", ROWS[0]), (f"{tmp_path / 'train-b.jsonl'}:1", ROWS[1])]
    assert origin(got[0][0]) == str(tmp_path / "train-a.jsonl")


def test_empty_directory_raises(tmp_path):
    with pytest.raises(DataError, match="no data files"):
        list(iter_records(tmp_path))


@pytest.mark.parametrize(
    ("line", "expected"),
    [("{not json", "malformed JSON"), ("[1, 2]", "expected a JSON object, got list"), ("7", "got int")],
)
def test_malformed_line_strict_names_file_and_line(tmp_path, line, expected):
    path = write_jsonl(tmp_path / "d.jsonl", [json.dumps(ROWS[0]), line])
    with pytest.raises(DataError, match=expected) as info:
        list(iter_records(path))
    assert str(info.value).startswith(f"{path}:2: ")
    assert info.value.location == f"{path}:2" and info.value.reason == "malformed_json"


def test_malformed_lines_counted_when_report_given(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", ["{bad", json.dumps(ROWS[0]), "null", "", json.dumps(ROWS[1])])
    report = DataReport(source=str(path))
    got = list(iter_records(path, report))
    assert [r for _, r in got] == ROWS
    assert report.read == 2 and report.dropped == {"malformed_json": 2}  # yielded records are the caller's
    assert report.examples["malformed_json"] == [f"{path}:1", f"{path}:3"]


@pytest.mark.parametrize("source", ["nope.jsonl", "./nope", "/no/such/file.parquet"])
def test_missing_file_says_so(tmp_path, source):
    with pytest.raises(DataError, match="file does not exist") as info:
        list(iter_records(source))
    assert info.value.reason == "missing_file"


def test_missing_path_object_says_so(tmp_path):
    with pytest.raises(DataError, match="file does not exist"):
        list(iter_records(tmp_path / "absent"))


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b\n")
    with pytest.raises(DataError, match="unsupported file type"):
        list(iter_records(path))


def test_corrupt_gzip_names_the_file(tmp_path):
    path = tmp_path / "d.jsonl.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=r"d\.jsonl\.gz: cannot read file"):
        list(iter_records(path))


def test_unknown_hub_id_is_wrapped(monkeypatch):
    datasets = pytest.importorskip("datasets")

    def fail(name, split):
        raise FileNotFoundError(f"Couldn't find {name}")

    monkeypatch.setattr(datasets, "load_dataset", fail)
    with pytest.raises(DataError, match="could not load dataset id 'someone/prefs' \\(split 'test'\\)"):
        list(iter_records("someone/prefs:test"))


def test_hub_id_rows_and_default_split(monkeypatch):
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake(name, split):
        calls.append((name, split))
        return ROWS

    monkeypatch.setattr(datasets, "load_dataset", fake)
    assert [loc for loc, _ in iter_records("someone/prefs")] == [
        "someone/prefs:train:row 0",
        "someone/prefs:train:row 1",
    ]
    assert calls == [("someone/prefs", "train")]
