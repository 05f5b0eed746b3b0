"""The one way rewardlab writes JSON: never ``NaN`` or ``Infinity``, which are not JSON.

Python's ``json`` writes ``float("nan")`` as the bare word ``NaN``, which strict readers (``jq``, browsers,
most JSON libraries outside Python) refuse. Every JSON file, JSON line and JSON print of rewardlab goes
through :func:`dumps`: a value that is not defined (a NaN, e.g. the accuracy of zero pairs, or an
infinity) is written as ``null``, and the encoder runs with ``allow_nan=False`` so that nothing else can
slip through. Producers should return ``None`` for "not defined" in the first place; the conversion here is
the boundary that guarantees it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def finite_or_none(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, +-inf) replaced by ``None``, through dicts, lists and tuples."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_or_none(v) for v in obj]
    return obj


def dumps(obj: Any, indent: int | None = None, default: Any = None, sort_keys: bool = False) -> str:
    """``json.dumps`` that writes undefined numbers as ``null`` and can never write ``NaN``/``Infinity``.

    ``default`` is passed on (e.g. ``str`` for paths); values it returns are converted the same way."""
    if default is not None:
        obj = json.loads(json.dumps(obj, default=default, allow_nan=True))
    return json.dumps(finite_or_none(obj), indent=indent, allow_nan=False, sort_keys=sort_keys)


def write_json(path: str | Path, obj: Any, indent: int | None = 2, default: Any = None) -> Path:
    """Write ``obj`` to ``path`` as one JSON document ending in a newline; return the path."""
    path = Path(path)
    path.write_text(dumps(obj, indent=indent, default=default) + "\n")
    return path


def write_jsonl(path: str | Path, rows: Iterable[Any], mode: str = "w") -> Path:
    """Write one JSON value per line (``mode="a"`` appends); return the path."""
    path = Path(path)
    with path.open(mode) as fh:
        for row in rows:
            fh.write(dumps(row) + "\n")
    return path
