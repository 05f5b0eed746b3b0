"""Study helpers: pair files round-trip, paired bootstrap by hand, tables, plots, cached evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rewardlab.data import load_pairs
from rewardlab.data.bon_pairs import instruction_of
from rewardlab.eval.study import (
    cached_eval,
    fmt_acc,
    load_outcomes,
    markdown_table,
    paired_difference,
    plot_accuracy,
    write_pairs_jsonl,
)
from rewardlab.models.base import BaseScorer
from rewardlab.types import PreferencePair


def pairs(n):
    return [PreferencePair(prompt=[{"role": "user", "content": f"q{i}"}],
                           chosen=[{"role": "assistant", "content": f"good {i}"}],
                           rejected=[{"role": "assistant", "content": f"bad {i}"}],
                           margin=0.5 if i % 2 else None, id=f"p{i}", subset="s" if i % 2 else None)
            for i in range(n)]


def test_pairs_round_trip_through_jsonl(tmp_path):
    path = write_pairs_jsonl(pairs(4), tmp_path / "d" / "x.jsonl")
    back, report = load_pairs(path, format="explicit")
    assert report.kept == 4
    assert [(p.id, p.margin, p.subset, p.chosen) for p in back] == [(p.id, p.margin, p.subset, p.chosen) for p in pairs(4)]


def test_paired_difference_by_hand():
    a = {"x": 1.0, "y": 1.0, "z": 0.5, "only_a": 1.0}
    b = {"x": 0.0, "y": 1.0, "z": 0.5, "only_b": 0.0}
    diff, (lo, hi) = paired_difference(a, b)
    assert diff == pytest.approx(1 / 3)  # (1 + 0 + 0) / 3 over the shared ids
    assert 0.0 <= lo <= diff <= hi <= 1.0
    same, (lo2, hi2) = paired_difference(a, a)
    assert (same, lo2, hi2) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="share no pair ids"):
        paired_difference({"a": 1.0}, {"b": 1.0})


def test_paired_difference_resamples_instructions_when_told():
    # 20 instructions of 8 pairs: model a beats b on every pair of 12 instructions and loses on every
    # pair of 8 (d = +1 or -1 per pair, mean 0.2). Pairs alone: sd 0.98 / sqrt(160), about -+ 0.15;
    # instructions: sd 0.98 / sqrt(20), about -+ 0.43, so only the cluster interval includes 0.
    a, b = {}, {}
    for i in range(20):
        for k in range(8):
            a[f"inst{i}:{k}>9"], b[f"inst{i}:{k}>9"] = (1.0, 0.0) if i < 12 else (0.0, 1.0)
    diff, (lo, hi) = paired_difference(a, b, n_boot=20000)
    cdiff, (clo, chi) = paired_difference(a, b, n_boot=20000, groups=instruction_of)
    assert diff == cdiff == pytest.approx(0.2)
    assert lo > 0 and clo < 0 < chi
    assert chi - clo == pytest.approx(2 * 1.96 * 0.98 / 20 ** 0.5, abs=0.1)
    # one pair per cluster (a mapping this time): exactly the pair bootstrap
    own = {k: k for k in a}
    assert paired_difference(a, b, seed=2, groups=own) == paired_difference(a, b, seed=2)


def test_table_and_accuracy_text():
    res = {"accuracy": 0.61, "ci95": [0.54, 0.68]}
    assert fmt_acc(res) == "61.0 [54.0, 68.0]" and fmt_acc(None) == "—"
    table = markdown_table(["bt", "grm"], ["ID", "OOD"], {("bt", "ID"): "1", ("grm", "OOD"): "2"})
    assert table.splitlines() == ["| method | ID | OOD |", "|---|---:|---:|", "| bt | 1 | — |", "| grm | — | 2 |"]


def test_plot_is_written(tmp_path):
    res = {"accuracy": 0.6, "ci95": [0.5, 0.7]}
    path = plot_accuracy({"bt": {"ID": res, "OOD": None}, "grm": {"ID": res, "OOD": res}}, tmp_path / "a.png", "t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class FixedScorer(BaseScorer):
    """Scores 'good' above 'bad' except for pair p0, which it gets wrong."""

    is_generative = False
    calls = 0

    def score(self, convs):
        import torch

        FixedScorer.calls += 1
        return torch.tensor([(1.0 if "good" in c[-1]["content"] else 0.0) * (-1 if c[0]["content"] == "q0" else 1)
                             for c in convs])


def test_cached_eval_scores_once_and_rows_load(tmp_path):
    out = tmp_path / "e" / "eval_ID.json"
    first = cached_eval(FixedScorer, pairs(4), out)
    calls = FixedScorer.calls
    again = cached_eval(FixedScorer, pairs(4), out)
    assert FixedScorer.calls == calls and again == json.loads(out.read_text()) and first["n"] == 4
    outcomes = load_outcomes(out)
    assert outcomes == {"p0": 0.0, "p1": 1.0, "p2": 1.0, "p3": 1.0}
    assert first["accuracy"] == pytest.approx(np.mean(list(outcomes.values())))
