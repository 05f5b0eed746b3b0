"""Per-token reward trace: one forward pass reading the head at every position, against re-scoring
every prefix of the response (what one would otherwise do: one sequence per prefix, batched and packed
by the same ScalarScorer).

The model is the embedded SmolLM2-135M-Instruct with a fresh random linear head (speed and equality
do not depend on training), or the tiny test model with ``--tiny``. The response is ``--tokens`` long.
Reported: seconds of each, the speedup (target >= 50x at 256 tokens) and max |trace - rescored|
(target <= 1e-4, fp32).

    python benchmarks/bench_trace.py [--tokens 256] [--repeats 3] [--tiny] [--out benchmarks/results/trace.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _common import machine_info, write_json

TARGETS = {"speedup": 50.0, "max_abs_diff": 1e-4}
WORDS = ["the", "reward", "model", "reads", "every", "token", "of", "this", "answer", "and", "we", "want", "to", "know", "which", "words", "move", "it", "most", ";", "here", "is", "a", "long", "and", "careful", "reply", "that", "explains", "the", "steps", "one", "by", "one", ",", "with", "examples", "and", "caveats", "."]


def build(tiny: bool):
    from transformers import AutoTokenizer

    from rewardlab.models.scalar import build_reward_model, head_of
    from rewardlab.models.scorer import ScalarScorer

    if tiny:
        from tests.conftest import make_tiny_llama

        base = str(make_tiny_llama(Path(tempfile.mkdtemp()) / "tiny"))
    else:
        from rewardlab.assets import smollm2_path

        base = str(smollm2_path())
    tok = AutoTokenizer.from_pretrained(base)
    model = build_reward_model(base, tok).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        head_of(model).weight.normal_(0, 0.05)
    return ScalarScorer(model, tok, batch_tokens=16384), base


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=256, help="response length in tokens")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each side (the best is kept)")
    ap.add_argument("--tiny", action="store_true", help="the tiny test model instead of SmolLM2")
    ap.add_argument("--out", default="benchmarks/results/trace.json")
    args = ap.parse_args(argv)

    from rewardlab.models.trace import prefix_rewards_ids, rescored_prefixes

    scorer, base = build(args.tiny)
    prompt = [{"role": "user", "content": "Explain how a reward model scores an answer, step by step."}]
    text, n = [], 0
    while True:  # grow the response until it encodes to exactly --tokens response tokens (or just over)
        text.append(WORDS[len(text) % len(WORDS)])
        enc = scorer.encoder.encode(prompt, [{"role": "assistant", "content": " ".join(text)}])
        n = enc.response_len
        if n >= args.tokens:
            break
    ids, start = enc.ids, enc.prompt_len
    fast_t, slow_t = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        fast = prefix_rewards_ids(scorer, [ids])[0][start:]
        fast_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        slow = rescored_prefixes(scorer, ids, start=start + 1)
        slow_t.append(time.perf_counter() - t0)
    diff = (fast - slow).abs().max().item()
    speedup = min(slow_t) / min(fast_t)
    result = {
        "model": base, "dtype": "float32", "prompt_tokens": start, "response_tokens": len(ids) - start,
        "one_pass_s": min(fast_t), "rescore_prefixes_s": min(slow_t), "speedup": speedup, "max_abs_diff": diff,
        "targets": TARGETS, "meets": {"speedup": speedup >= TARGETS["speedup"],
                                      "max_abs_diff": diff <= TARGETS["max_abs_diff"]},
        "machine": machine_info(torch.device("cpu")),
    }
    result["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    write_json(args.out, result)
    print(f"{len(ids) - start} response tokens: one pass {min(fast_t) * 1000:.1f} ms, re-scoring "
          f"{min(slow_t) * 1000:.0f} ms -> {speedup:.0f}x; max |diff| {diff:.2e}")
    return result


if __name__ == "__main__":
    main()
