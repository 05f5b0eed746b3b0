"""Best-of-n curve cost: one scoring pass reused for every n, against re-scoring the candidates per n.

Both contenders produce the same curve n = 1..N (the exact expectation over all size-n subsets):

- **per-n re-scoring** (baseline): what a loop over n written without reuse does — for each n, score
  every (prompt, candidate) again, then compute the value at that n. N scoring passes.
- **rewardlab**: ``rewardlab.bon.run.score_candidates`` scores each (prompt, candidate) once (a single
  ``Scorer.score`` call) and ``expected_best_of_n`` computes every n from those scores.

The curves must be identical; the ratio of wall times is the target (≈ N). It also times the estimator
alone on the full AlpacaEval shape (805 prompts × 11 candidates, bootstrap included) to show that the
curve's cost after scoring is negligible, so the full curve costs one pass: 805 × 11 = 8,855 sequences.

    python benchmarks/bench_bon.py                 # ~3-5 min on 2 busy cores
    python benchmarks/bench_bon.py --prompts 16 --model DIR
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, machine_info, table, write_json  # noqa: E402

DEFAULT_BON = Path("../shared/data/alpacaeval-bon16/bon16.jsonl.gz")


class Counting:
    """Counts ``score`` calls and sequences of the wrapped Scorer."""

    is_generative = False

    def __init__(self, inner):
        self.inner, self.calls, self.seqs = inner, 0, 0

    def score(self, convs):
        self.calls += 1
        self.seqs += len(convs)
        return self.inner.score(convs)


def build_scorer(args):
    from transformers import AutoTokenizer

    from rewardlab.assets import resolve_model_path
    from rewardlab.models.scalar import build_reward_model
    from rewardlab.models.scorer import ScalarScorer

    if args.model:
        return ScalarScorer.load(args.model, max_length=args.max_length)
    path = resolve_model_path("minilm")
    tok = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(args.seed)
    return ScalarScorer(build_reward_model(path, tok), tok, max_length=args.max_length)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_BON), help="AlpacaEval best-of-16 file (relative to the repo)")
    p.add_argument("--model", default=None, help="a trained RM directory (default: minilm with a seeded random head)")
    p.add_argument("--prompts", type=int, default=8, help="prompts timed (seeded random subset)")
    p.add_argument("--max-length", type=int, default=256, help="tokens per (instruction, answer)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/bon.json")
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    data = Path(args.data) if Path(args.data).is_absolute() else (REPO / args.data).resolve()
    if not data.exists():
        raise SystemExit(f"{data} not found: pass --data PATH to the AlpacaEval best-of-16 file")

    from rewardlab.bon.data import load_bon_items
    from rewardlab.bon.estimator import expected_best_of_n, per_prompt_values
    from rewardlab.bon.run import prepare_items, score_candidates

    machine = machine_info(torch.device("cpu"))  # load average at the start
    items, _ = load_bon_items(data)
    items, stats = prepare_items(items, need_gold=True)
    keep = sorted(random.Random(args.seed).sample(range(len(items)), args.prompts))
    items = [items[i] for i in keep]
    N = stats["N"]
    gold = [np.array(it.gold) for it in items]
    scorer = build_scorer(args)
    score_candidates(scorer, items[:1])  # warm-up (allocator, first-call overheads), not timed

    # per-n re-scoring: N passes
    base = Counting(scorer)
    t = time.perf_counter()
    base_curve = []
    for n in range(1, N + 1):
        scores = score_candidates(base, items)
        base_curve.append(float(np.mean([per_prompt_values(s, g)[n - 1] for s, g in zip(scores, gold, strict=True)])))
    base_s = time.perf_counter() - t

    # rewardlab: one pass, every n from the same scores
    ours = Counting(scorer)
    t = time.perf_counter()
    scores = score_candidates(ours, items)
    t_score = time.perf_counter() - t
    curve = expected_best_of_n(scores, gold, win_threshold=1.5, n_boot=1000, seed=args.seed)
    ours_s = time.perf_counter() - t
    max_diff = float(np.max(np.abs(np.array(curve["gold"]) - np.array(base_curve))))

    # the estimator alone on the full AlpacaEval shape (805 x 11), bootstrap included
    rng = np.random.default_rng(args.seed)
    fake_p = [rng.normal(size=N) for _ in range(805)]
    fake_g = [rng.uniform(1, 2, size=N) for _ in range(805)]
    t = time.perf_counter()
    expected_best_of_n(fake_p, fake_g, win_threshold=1.5, n_boot=1000)
    est_full_s = time.perf_counter() - t

    ratio = base_s / ours_s
    rows = [["contender", "score calls", "sequences", "s", "x per-n"],
            ["per-n re-scoring", str(base.calls), str(base.seqs), f"{base_s:.1f}", "1.00"],
            ["rewardlab (one pass)", str(ours.calls), str(ours.seqs), f"{ours_s:.1f}", f"{ratio:.2f}"]]
    print(table(rows))
    print(f"curves identical: max |Δ gold| = {max_diff:.1e}; rewardlab scoring {t_score:.1f} s, "
          f"estimator + bootstrap {ours_s - t_score:.2f} s")
    print(f"estimator alone, 805 prompts x {N} candidates, 1000 bootstrap resamples: {est_full_s:.2f} s")
    result = {"args": vars(args), "machine": machine, "N": N, "prompts": len(items),
              "per_n_rescoring": {"seconds": round(base_s, 2), "score_calls": base.calls, "sequences": base.seqs},
              "rewardlab": {"seconds": round(ours_s, 2), "scoring_seconds": round(t_score, 2),
                            "score_calls": ours.calls, "sequences": ours.seqs},
              "speedup": round(ratio, 2), "max_abs_gold_diff": max_diff,
              "estimator_full_805x11_seconds": round(est_full_s, 3)}
    print(f"results: {write_json(args.out, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
