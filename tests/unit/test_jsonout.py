"""No JSON rewardlab writes holds NaN or Infinity: undefined numbers are null, and every writer goes
through rewardlab.jsonout."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from rewardlab import jsonout
from rewardlab.bon.estimator import fit_gao
from rewardlab.eval.pairwise import accuracy_table, bootstrap_ci, write_results
from tests.conftest import REPO


def strict_loads(text: str):
    """``json.loads`` that refuses NaN/Infinity, as every non-Python JSON reader does."""

    def refuse(word):
        raise ValueError(f"not JSON: {word}")

    return json.loads(text, parse_constant=refuse)


def test_dumps_writes_undefined_numbers_as_null():
    obj = {"a": float("nan"), "b": [1.5, float("inf"), (float("-inf"), 2)], "c": {"d": math.nan}, "e": "NaN"}
    assert strict_loads(jsonout.dumps(obj)) == {"a": None, "b": [1.5, None, [None, 2]], "c": {"d": None}, "e": "NaN"}
    assert strict_loads(jsonout.dumps({"p": REPO, "x": float("nan")}, default=str)) == {"p": str(REPO), "x": None}


def test_no_pairs_have_an_undefined_accuracy_written_as_null(tmp_path):
    summary = accuracy_table([], np.array([]))
    assert summary["accuracy"] is None and summary["ci95"] == [None, None]
    assert bootstrap_ci(np.array([])) == [None, None]
    out, per_pair = write_results(summary, [], tmp_path / "eval.json")
    assert strict_loads(out.read_text())["accuracy"] is None


def test_a_constant_gain_has_no_r2():
    assert fit_gao([0.0, 0.5, 1.0], [0.0, 0.0, 0.0])["r2"] is None


def test_every_json_writer_goes_through_jsonout():
    """Plain ``json.dump(s)`` writes NaN; only rewardlab/jsonout.py may call it."""
    offenders = []
    for root in ("rewardlab", "experiments"):
        for path in sorted((REPO / root).rglob("*.py")):
            if path == REPO / "rewardlab" / "jsonout.py":
                continue
            for no, line in enumerate(path.read_text().splitlines(), 1):
                if re.search(r"\bjson\.dumps?\(", line):
                    offenders.append(f"{path.relative_to(REPO)}:{no}")
    assert not offenders, offenders


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_allow_nan_is_off_underneath(value, monkeypatch):
    monkeypatch.setattr(jsonout, "finite_or_none", lambda obj: obj)  # without the conversion ...
    with pytest.raises(ValueError):  # ... the encoder refuses rather than writing a non-JSON word
        jsonout.dumps({"x": value})
