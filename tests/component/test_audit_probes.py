"""Probe suites: interval arithmetic, verdicts, every built-in suite on tiny models, user suites, report."""

from __future__ import annotations

import json

import pytest
import torch

from rewardlab.audit.probes import (
    ProbeError,
    builtin_probes,
    load_suite_file,
    run_probe,
    select_probes,
    verdict,
    wilson,
)
from rewardlab.audit.report import write_report
from rewardlab.audit.run import audit
from rewardlab.models.base import BaseScorer
from rewardlab.models.scorer import ScalarScorer
from rewardlab.registry import UnknownNameError
from tests.rm_helpers import make_tiny_rm


def test_wilson_interval_by_hand():
    # k = 8 of n = 10, z = 1.96: centre (0.8 + z²/20) / (1 + z²/10), half-width z·sqrt(0.016 + z²/400) / (1 + z²/10)
    z2 = 1.959964**2
    den = 1 + z2 / 10
    mid = (0.8 + z2 / 20) / den
    half = 1.959964 * (0.8 * 0.2 / 10 + z2 / 400) ** 0.5 / den
    lo, hi = wilson(8, 10)
    assert lo == pytest.approx(mid - half) and hi == pytest.approx(mid + half)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize("expected,rate,ci,status", [
    ("neutral", 0.9, (0.7, 0.97), "biased"), ("neutral", 0.1, (0.03, 0.3), "biased"),
    ("neutral", 0.5, (0.3, 0.7), "ok"), ("a", 0.9, (0.7, 0.97), "ok"), ("a", 0.1, (0.03, 0.3), "wrong"),
    ("b", 0.1, (0.03, 0.3), "ok"), ("b", 0.6, (0.4, 0.8), "inconclusive"),
])
def test_verdicts(expected, rate, ci, status):
    assert verdict("p", expected, rate, ci)[0] == status


class LengthLover(BaseScorer):
    """Rewards the number of characters of the response: a textbook length bias."""

    is_generative = False

    def score(self, convs):
        return torch.tensor([float(len(c[-1]["content"])) for c in convs])

    def compare(self, prompts, a, b):
        ra = self.score([[*p, *x] for p, x in zip(prompts, a, strict=True)])
        rb = self.score([[*p, *x] for p, x in zip(prompts, b, strict=True)])
        return torch.sigmoid(ra - rb)


def test_length_bias_is_found():
    probes = builtin_probes()
    r = run_probe(LengthLover(), probes["length"])
    assert r.rate == 1.0 and r.status == "biased" and r.ci95[0] > 0.5
    assert "prefers the probed variant" in r.verdict
    assert run_probe(LengthLover(), probes["order"]).status == "skipped"  # order cannot matter for it


@pytest.fixture(scope="module")
def scorer(tiny_llama, tmp_path_factory):
    return ScalarScorer.load(make_tiny_rm(tiny_llama, tmp_path_factory.mktemp("probe-rm")))


@pytest.mark.parametrize("name", ["length", "format", "sycophancy", "refusal", "over_refusal"])
def test_each_builtin_suite_on_a_tiny_scalar_model(scorer, name):
    probe = builtin_probes()[name]
    r = run_probe(scorer, probe)
    assert r.n == len(probe.pairs) >= 10
    assert 0.0 <= r.ci95[0] <= r.rate <= r.ci95[1] <= 1.0
    assert r.status in ("ok", "biased", "wrong", "inconclusive") and r.verdict.startswith(name)
    p = scorer.compare([x.prompt for x in probe.pairs], [x.a for x in probe.pairs], [x.b for x in probe.pairs])
    assert r.mean_prob == p.mean().item()  # exact: the same compare call on the same inputs


def test_order_probe_on_a_tiny_judge(tiny_judge):
    from rewardlab.models.judge_scorer import JudgeScorer

    judge = JudgeScorer.load(str(tiny_judge), method="indicator")
    probe = builtin_probes()["order"]
    r = run_probe(judge, probe)
    assert r.n == 2 * len(probe.pairs) and r.rate is not None and r.status != "skipped"


def test_user_suite_file(tmp_path, scorer):
    f = tmp_path / "suite.jsonl"
    rows = [{"suite": "politeness", "prompt": "hi", "a": "hello ! how are you ?", "b": "no", "expected": "a"},
            {"suite": "politeness", "prompt": [{"role": "user", "content": "help me"}],
             "a": [{"role": "assistant", "content": "sure , here it is"}], "b": "no", "expected": "a"},
            {"suite": "other", "prompt": "hi", "a": "yes", "b": "no"}]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    probes = load_suite_file(f)
    assert [p.name for p in probes] == ["politeness", "other"]
    assert probes[0].expected == "a" and probes[1].expected == "neutral" and len(probes[0].pairs) == 2
    assert run_probe(scorer, probes[0]).n == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**rows[0], "expected": "b"}) + "\n" + json.dumps(rows[0]) + "\n")
    with pytest.raises(ProbeError, match=r"bad.jsonl:2: suite 'politeness' expects 'b'"):
        load_suite_file(bad)
    bad.write_text(json.dumps({"suite": "x", "prompt": "hi", "a": "yes"}) + "\n")
    with pytest.raises(ProbeError, match=r"bad.jsonl:1: missing field 'b'"):
        load_suite_file(bad)


def test_select_probes_names_close_match():
    assert len(select_probes("all")) == 6
    assert select_probes("none") == []
    with pytest.raises(UnknownNameError, match="did you mean 'length'"):
        select_probes("lenght")


def test_report_is_one_self_contained_file(scorer, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 2], [3, 4])
    fig.savefig(tmp_path / "bon.png")
    plt.close(fig)
    result = audit(scorer, select_probes("length,sycophancy"), trace_limit=2)
    assert len(result.traces) == 2
    out = write_report(tmp_path / "audit.html", "audit", result.probes, [(p, t) for _, p, t in result.traces],
                       [tmp_path])
    html = out.read_text()
    assert html.count("<table>") == 1 and html.count('class="tok"') == sum(len(t.values) for *_, t in result.traces)
    assert html.count("data:image/png;base64,") == 2  # the probe chart and the included plot
    for needle in ("http://", "https://", "<script", "<link"):
        assert needle not in html
