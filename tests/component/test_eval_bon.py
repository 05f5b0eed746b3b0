"""Best-of-n, RewardBench scoring and the suite on tiny in-process reward models."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from rewardlab.bon.data import load_bon_items
from rewardlab.bon.estimator import per_prompt_values
from rewardlab.bon.run import bon_lab, run_bon
from rewardlab.data import load_pairs
from rewardlab.eval.suite import evaluate_set, run_suite
from rewardlab.models.base import BaseScorer
from rewardlab.models.scorer import ScalarScorer
from tests.conftest import synthetic_pairs, write_jsonl
from tests.fp32 import forward_terms, fp32_atol

GOOD, BAD = ["good", "helpful", "kind", "safe"], ["bad", "rude", "harmful", "unsafe"]


def save_tiny_rm(base, out, seed: int):
    import torch
    from transformers import AutoTokenizer

    from rewardlab.models.scalar import build_reward_model, save_reward_model

    tok = AutoTokenizer.from_pretrained(str(base))
    torch.manual_seed(seed)
    model = build_reward_model(str(base), tok)
    torch.nn.init.normal_(model.score.weight, std=1.0)  # spread the scores: no accidental ties
    save_reward_model(model, tok, out)
    return out


@pytest.fixture(scope="module")
def tiny_rms(tiny_llama, tmp_path_factory):
    d = tmp_path_factory.mktemp("rms")
    return save_tiny_rm(tiny_llama, d / "a", 0), save_tiny_rm(tiny_llama, d / "b", 1)


def bon_rows(prompts: int, n: int, seed: int = 0, gold: bool = True) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for p in range(prompts):
        responses = [" ".join(rng.sample(GOOD + BAD + ["sure", "here", "it", "is"], rng.randint(2, 6)))
                     for _ in range(n)]
        row = {"id": f"q{p}", "prompt": "can you help me with this ?", "responses": responses}
        if gold:
            row["gold"] = [float(sum(w in GOOD for w in r.split()) - sum(w in BAD for w in r.split()))
                           for r in responses]
        rows.append(row)
    return rows


class Counting(BaseScorer):
    """A Scorer wrapper counting ``score`` calls and conversations."""

    is_generative = False

    def __init__(self, inner):
        self.inner, self.calls, self.convs = inner, 0, 0

    def score(self, convs):
        self.calls += 1
        self.convs += len(convs)
        return self.inner.score(convs)


def test_bon_scores_each_candidate_once_and_matches_the_estimator(tiny_rms, tmp_path):
    path = write_jsonl(tmp_path / "bon.jsonl", bon_rows(6, 5))
    items, _ = load_bon_items(path)
    scorer = Counting(ScalarScorer.load(tiny_rms[0]))
    result, scores = run_bon({"a": scorer}, items, win_threshold=0.0, n_boot=50)
    assert scorer.calls == 1 and scorer.convs == 6 * 5  # one pass serves every n
    curve = result["proxies"]["a"]
    assert result["n"] == [1, 2, 3, 4, 5] and result["prompts"] == 6
    expect = np.mean([per_prompt_values(s, np.array(it.gold)) for s, it in zip(scores["a"], items, strict=True)],
                     axis=0)
    np.testing.assert_allclose(curve["gold"], expect)
    assert curve["gao_fit"]["form"].startswith("gold - gold(n=1)")
    assert result["random_win_rate"] == pytest.approx(curve["gold_win_rate"][0])


def test_bon_lab_writes_json_scores_and_plot_with_a_gold_model(tiny_rms, tmp_path):
    path = write_jsonl(tmp_path / "bon.jsonl", bon_rows(5, 4, gold=False))
    out = tmp_path / "out"
    res = bon_lab({"a": str(tiny_rms[0]), "b": str(tiny_rms[1])}, path, out, gold_model=str(tiny_rms[1]),
                  n_boot=20, prompts=4, seed=3)
    assert set(res["proxies"]) == {"a", "b"} and res["prompts"] == 4 and res["gold_source"] == str(tiny_rms[1])
    # proxy b is the gold model itself: its choice is the oracle's
    np.testing.assert_allclose(res["proxies"]["b"]["gold"], res["oracle"]["oracle_gold"])
    saved = json.loads((out / "bon.json").read_text())
    assert saved["provenance"]["data"]["data"]["hash"].startswith("sha256:")
    assert saved["provenance"]["templates"]["a"]["chat_template_sha256"]
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and set(rows[0]) == {"id", "a", "b", "gold"} and len(rows[0]["a"]) == 4
    assert (out / "bon.png").stat().st_size > 10_000


def rewardbench_file(tmp_path, n: int = 48):
    subsets = ["alpacaeval-easy", "llmbar-natural", "donotanswer", "math-prm", "hep-python", "shp"]
    rows = synthetic_pairs(n, 2)
    for i, r in enumerate(rows):
        r["subset"] = subsets[i % len(subsets)]
        r.pop("margin")
    return write_jsonl(tmp_path / "rb.jsonl", rows)


def test_results_do_not_change_with_batch_size(tiny_rms, tmp_path):
    pairs, _ = load_pairs(rewardbench_file(tmp_path), format="rewardbench")
    small_scorer = ScalarScorer.load(tiny_rms[0], batch_tokens=40)
    small, rows_small = evaluate_set(small_scorer, pairs)
    large, rows_large = evaluate_set(ScalarScorer.load(tiny_rms[0], batch_tokens=100_000), pairs)
    # Other batches sum in another fp32 order: what fp32 promises for rewards of their magnitude (tests/fp32.py)
    scores = np.array([[r["chosen_score"], r["rejected_score"]] for r in rows_large])
    atol = fp32_atol(forward_terms(small_scorer.model.config, 64), float(np.abs(scores).max()))
    np.testing.assert_allclose([r["chosen_score"] for r in rows_small], scores[:, 0], atol=atol, rtol=0)
    assert [r["outcome"] for r in rows_small] == [r["outcome"] for r in rows_large]
    assert small["rewardbench"]["sections"] == large["rewardbench"]["sections"]
    # ECE averages |accuracy - P(chosen)| and P = sigmoid(difference of two rewards) moves by at most half
    # a reward's tolerance
    assert small["calibration"]["ece"] == pytest.approx(large["calibration"]["ece"], abs=atol / 2)


def test_rewardbench_block_and_suite(tiny_rms, tmp_path):
    pairs, _ = load_pairs(rewardbench_file(tmp_path), format="rewardbench")
    summary, rows = evaluate_set(ScalarScorer.load(tiny_rms[0]), pairs)
    rb = summary["rewardbench"]
    assert set(rb["sections"]) == {"Chat", "Chat Hard", "Safety", "Reasoning"}
    assert rb["score_four_sections"] == pytest.approx(np.mean(list(rb["sections"].values())))
    assert {"prefer_longer", "prefer_shorter"} <= set(summary["baselines"])
    assert 0 <= summary["calibration"]["ece"] <= 1 and "p_chosen" in rows[0]
    other = [p for p in pairs if p.subset != "shp"]
    doc = run_suite({"a": lambda: ScalarScorer.load(tiny_rms[0]), "b": lambda: ScalarScorer.load(tiny_rms[1])},
                    {"rb": pairs, "other": other}, tmp_path / "suite", provenance={"seed": 0})
    assert set(doc["results"]) == {"a", "b"} and set(doc["results"]["a"]) == {"rb", "other"}
    assert "null: prefer longer" in doc["table"] and "rb LC acc" in doc["table"]
    assert (tmp_path / "suite" / "a__other.pairs.jsonl").exists()
    assert (tmp_path / "suite" / "reliability.png").exists()


def test_sample_candidates_from_a_tiny_policy(tiny_llama):
    from rewardlab.bon.sample import sample_candidates

    prompts = [("q0", [{"role": "user", "content": "how are you ?"}]),
               ("q1", [{"role": "user", "content": "what is the capital of france ?"}])]
    recs = sample_candidates(str(tiny_llama), prompts, n=3, max_new_tokens=4, seed=0, batch_size=2)
    assert [r["id"] for r in recs] == ["q0", "q1"]
    assert all(len(r["responses"]) == 3 and r["gold"] == [None] * 3 for r in recs)
