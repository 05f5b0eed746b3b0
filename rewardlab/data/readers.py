"""Read raw records from files, directories and Hugging Face datasets, each with its location.

A *location* names where a record came from, so that every error can point at it:

- ``"<file>:<line>"`` for JSONL, with 1-based line numbers as an editor shows them;
- ``"<file>:row <index>"`` for JSON arrays, parquet files and datasets, with the 0-based index that
  ``data[index]`` / ``dataset[index]`` takes.

The part before the last ``:`` is the record's *origin* (a file, or a dataset and split).
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rewardlab.types import DataReport

log = logging.getLogger(__name__)

DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet")
"""File types ``iter_records`` reads, in any letter case (``.JSONL`` too); a directory is read through its
files with these endings, and every other entry in it is reported as skipped."""

DROP_REASONS = {
    "malformed_json": "a JSONL line that is not valid JSON, or a value that is not an object",
    "missing_field": "a required field is absent or null",
    "bad_type": "a field has the wrong type (non-string content, unknown role, non-numeric margin, ...)",
    "bad_text": "a string that is not valid Unicode (a lone surrogate escape such as \\ud800)",
    "empty_response": "a response with no content",
    "identical": "chosen and rejected are the same",
    "bad_structure": "a transcript or conversation that cannot be split into prompt and responses",
    "unknown_format": "the record's format cannot be detected",
}
"""Every ``DataError.reason``, i.e. every key a lenient reader may put in ``DataReport.dropped``."""


class DataError(ValueError):
    """Bad input data, naming where (``location``), which field and what was expected.

    ``str(err)`` reads ``"train.jsonl:12: field 'chosen': expected a non-empty string or list of
    messages, got int"``; ``reason`` is a key of ``DROP_REASONS`` (or ``missing_file``/``unreadable``
    for errors about a whole source) and is what lenient readers count.
    """

    def __init__(self, location: str, field: str | None, message: str, reason: str = "bad_type") -> None:
        self.location = location
        self.field = field
        self.reason = reason
        self.detail = message
        where = f"{location}: field '{field}'" if field else location
        super().__init__(f"{where}: {message}")


def iter_records(
    source: str | Path, report: DataReport | None = None, skipped: dict[str, str] | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(location, record)`` for every JSON object in ``source``.

    ``source`` is a ``.jsonl``/``.jsonl.gz``/``.json``/``.json.gz`` (a list of objects or
    ``{"data": [...]}``)/``.parquet`` file, a directory written by ``datasets.save_to_disk`` (optionally
    ``"<dir>:<split>"``), a directory of such data files (``"<dir>:<split>"`` keeps the files whose
    name starts with the split), or else a Hugging Face hub id ``"name"`` / ``"name:split"`` (split
    ``train`` by default). Blank JSONL lines are skipped silently. Entries of a directory that are not
    data files (subdirectories, other file types) are not read: each is logged and, when ``report`` is
    given, listed in ``report.skipped`` with the reason.

    A malformed record (bad JSON, or a value that is not an object) raises ``DataError``; when
    ``report`` is given it is counted instead (``report.read += 1`` and a ``malformed_json`` drop) and
    skipped. Records that are yielded are not counted: that is the caller's job.
    """
    for location, value in iter_values(source, report, skipped):
        if isinstance(value, dict):
            yield location, value
        else:
            _malformed(location, f"expected a JSON object, got {_type_name(value)}", report)


def iter_values(
    source: str | Path, report: DataReport | None = None, skipped: dict[str, str] | None = None
) -> Iterator[tuple[str, Any]]:
    """Like ``iter_records`` but also yields JSON values that are not objects (e.g. lists).

    ``skipped`` (default: ``report.skipped`` when a report is given) receives ``entry -> reason`` for
    every directory entry that was not read."""
    kind, target, split = _resolve(source)
    if skipped is None and report is not None:
        skipped = report.skipped
    if kind == "file":
        yield from _iter_file(Path(target), report)
    elif kind == "dir":
        yield from _iter_dir(Path(target), split, report, skipped)
    else:
        yield from _iter_hub(target, split or "train")


def origin(location: str) -> str:
    """The file or dataset part of a location: ``"a/b.jsonl:12"`` -> ``"a/b.jsonl"``."""
    return location.rsplit(":", 1)[0]


def _resolve(source: str | Path) -> tuple[str, str, str | None]:
    """Classify ``source`` as ``("file" | "dir" | "hub", path or id, split or None)``."""
    text = os.path.expanduser(str(source))
    if os.path.exists(text):
        return ("dir" if os.path.isdir(text) else "file"), text, None
    head, sep, split = text.rpartition(":")
    if sep and head and os.path.isdir(head):
        return "dir", head, split
    if isinstance(source, Path) or _is_data_file(text) or text.startswith(("/", ".", "~")):
        raise DataError(text, None, "file does not exist", reason="missing_file")
    if sep and head:
        return "hub", head, split
    return "hub", text, None


def _is_data_file(name: str) -> bool:
    return name.lower().endswith(DATA_SUFFIXES)


def _iter_file(path: Path, report: DataReport | None) -> Iterator[tuple[str, Any]]:
    name = str(path)
    lower = name.lower()
    if lower.endswith((".jsonl", ".jsonl.gz")):
        yield from _iter_jsonl(path, report)
    elif lower.endswith((".json", ".json.gz")):
        yield from _iter_json(path)
    elif lower.endswith(".parquet"):
        yield from _iter_parquet(path)
    else:
        raise DataError(
            name,
            None,
            f"unsupported file type; expected one of {', '.join(DATA_SUFFIXES)}",
            reason="unreadable",
        )


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _iter_jsonl(path: Path, report: DataReport | None) -> Iterator[tuple[str, Any]]:
    name = str(path)
    try:
        with _open_binary(path) as f:
            for lineno, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                location = f"{name}:{lineno}"
                try:
                    value = json.loads(raw)
                except ValueError as err:  # JSONDecodeError and UnicodeDecodeError
                    _malformed(location, f"malformed JSON: {err}", report)
                    continue
                yield location, value
    except (OSError, EOFError) as err:  # e.g. a truncated or non-gzip .gz file
        raise DataError(name, None, f"cannot read file: {err}", reason="unreadable") from err


def _iter_json(path: Path) -> Iterator[tuple[str, Any]]:
    name = str(path)
    try:
        with _open_binary(path) as f:
            data = json.load(f)
    except (OSError, EOFError, ValueError) as err:
        raise DataError(name, None, f"cannot read JSON file: {err}", reason="unreadable") from err
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise DataError(
            name,
            None,
            f'expected a JSON list of objects or {{"data": [...]}}, got {_type_name(data)}',
            reason="unreadable",
        )
    yield from _rows(name, data)


def _iter_parquet(path: Path) -> Iterator[tuple[str, Any]]:
    import pyarrow.parquet as pq  # optional dependency: only needed for parquet files

    name = str(path)
    try:
        batches = pq.ParquetFile(path).iter_batches()
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(name, None, f"cannot read parquet file: {err}", reason="unreadable") from err
    yield from _rows(name, (row for batch in batches for row in batch.to_pylist()))


def _iter_dir(
    path: Path, split: str | None, report: DataReport | None, skipped: dict[str, str] | None
) -> Iterator[tuple[str, Any]]:
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        yield from _iter_saved(path, split)
        return
    files = []
    for entry in sorted(path.iterdir()):
        reason = _skip_reason(entry)
        if reason is None:
            files.append(entry)
            continue
        log.warning("%s: skipped %s: %s", path, entry.name, reason)
        if skipped is not None:
            skipped[str(entry)] = reason
    if split is not None:
        files = [p for p in files if p.name.startswith(split)]
    if not files:
        wanted = f" for split {split!r}" if split else ""
        raise DataError(
            str(path),
            None,
            f"no data files ({', '.join(DATA_SUFFIXES)}){wanted} in this directory",
            reason="missing_file",
        )
    for file in files:
        yield from _iter_file(file, report)


def _skip_reason(entry: Path) -> str | None:
    """Why a directory entry is not read as data, or ``None`` for a data file."""
    if entry.is_dir():
        return "a subdirectory (directories are not read recursively; pass it as its own source)"
    if not entry.is_file():
        return "not a regular file"
    if not _is_data_file(entry.name):
        return f"not a data file (reads {', '.join(DATA_SUFFIXES)}, any letter case)"
    return None


def _iter_saved(path: Path, split: str | None) -> Iterator[tuple[str, Any]]:
    """Rows of a ``save_to_disk`` directory; a DatasetDict needs a split unless it has ``train`` or one split."""
    import datasets

    data = datasets.load_from_disk(str(path))
    name = str(path)
    if isinstance(data, datasets.DatasetDict):
        splits = list(data)
        if split is None:
            split = "train" if "train" in splits else (splits[0] if len(splits) == 1 else None)
        if split not in splits:
            raise DataError(
                name,
                None,
                f"choose a split as '{name}:<split>'; splits: {', '.join(splits)}",
                reason="missing_file",
            )
        data, name = data[split], f"{name}:{split}"
    elif split is not None:
        raise DataError(
            name, None, f"this saved dataset has no splits, got split {split!r}", reason="missing_file"
        )
    yield from _rows(name, data)


def _iter_hub(dataset_id: str, split: str) -> Iterator[tuple[str, Any]]:
    import datasets

    try:
        data = datasets.load_dataset(dataset_id, split=split)
    except Exception as err:  # the hub raises many kinds; all mean "could not load"
        raise DataError(
            dataset_id,
            None,
            f"could not load dataset id {dataset_id!r} (split {split!r}): {err}",
            reason="missing_file",
        ) from err
    yield from _rows(f"{dataset_id}:{split}", data)


def _rows(name: str, rows: Iterable[Any]) -> Iterator[tuple[str, Any]]:
    for index, row in enumerate(rows):
        yield f"{name}:row {index}", row


def _malformed(location: str, message: str, report: DataReport | None) -> None:
    """Raise a ``malformed_json`` error, or count it in ``report`` when one is given."""
    if report is None:
        raise DataError(location, None, message, reason="malformed_json")
    report.read += 1
    report.drop("malformed_json", location)


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__
