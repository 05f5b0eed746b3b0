"""CoT-GenRM sampling: k rationales from one shared-prompt ``generate`` vs k separate ``generate`` calls.

A CoT judge samples k rationales for the same judge prompt. The baseline calls ``generate`` k times
(what a loop over samples does): the prompt is computed k times and every decoding step runs at batch
size 1. rewardlab's transformers backend runs the prompt once, repeats its KV cache k times and
decodes the k samples as one batch. For reference, ``generate`` on the prompt repeated k times (what
``num_return_sequences=k`` does: one batch, but the prompt computed k times) is timed as well.

Every contender decodes exactly ``--new-tokens`` tokens per sample (``min_new_tokens`` = ``max_new_tokens``)
so they do the same work. Judge prompts are built from the first ``--prompts`` HH-RLHF harmless test pairs.

    python benchmarks/bench_cot_kv.py            # about 2-3 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import DEFAULT_DATA, data_path, machine_info, pick_device, sync, table, write_json  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--prompts", type=int, default=3, help="judge prompts timed (after one warm-up prompt)")
    ap.add_argument("--k", type=int, default=8, help="rationales per prompt")
    ap.add_argument("--new-tokens", type=int, default=48, help="tokens decoded per rationale")
    ap.add_argument("--max-prompt-tokens", type=int, default=512, help="judge prompts are cut from the left to this")
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", default="benchmarks/results/cot_kv.json")
    a = ap.parse_args()

    from rewardlab.assets import smollm2_path
    from rewardlab.data import load_pairs
    from rewardlab.models.generation import TransformersBackend
    from rewardlab.models.judge import PROMPTS, judge_prompt_ids
    from rewardlab.models.lm import load_causal_lm

    device = pick_device(a.device)
    machine = machine_info(device)  # the load average before the runs
    model, tok = load_causal_lm(smollm2_path())
    model.to(device)
    pairs, _ = load_pairs(data_path(a.data), format="hh", lenient=True, limit=a.prompts + 1)
    prompt = PROMPTS["default"]
    seqs = [judge_prompt_ids(tok, prompt.messages(p.prompt, p.chosen, p.rejected, cot=True))[-a.max_prompt_tokens:]
            for p in pairs]
    fixed = {"min_new_tokens": a.new_tokens}
    shared = TransformersBackend(model, tok, share_prompt_cache=True, generation_kwargs=fixed)
    unshared = TransformersBackend(model, tok, share_prompt_cache=False, generation_kwargs=fixed)

    contenders = {
        "k separate generate calls (baseline)": lambda s: [unshared.sample([s], 1, 0.7, a.new_tokens, seed=i)
                                                           for i in range(a.k)],
        "one generate, prompt repeated k times": lambda s: unshared.sample([s], a.k, 0.7, a.new_tokens),
        "one generate, shared prompt KV cache (rewardlab)": lambda s: shared.sample([s], a.k, 0.7, a.new_tokens),
    }
    for run in contenders.values():  # warm-up on the first prompt
        run(seqs[0])
    seconds = {}
    for name, run in contenders.items():
        sync(device)
        t = time.perf_counter()
        for s in seqs[1:]:
            run(s)
        sync(device)
        seconds[name] = time.perf_counter() - t
    base = seconds["k separate generate calls (baseline)"]
    samples = a.prompts * a.k
    rows = [["contender", "seconds", "samples/s", "speedup"]]
    results = {}
    for name, sec in seconds.items():
        results[name] = {"seconds": round(sec, 3), "samples_per_s": round(samples / sec, 3),
                         "speedup_vs_separate": round(base / sec, 2)}
        rows.append([name, f"{sec:.2f}", f"{samples / sec:.2f}", f"{base / sec:.2f}x"])
    print(table(rows))
    ratio = results["one generate, shared prompt KV cache (rewardlab)"]["speedup_vs_separate"]
    print(f"shared-prompt KV cache vs k separate calls: {ratio:.2f}x (target >= 2.5x)")
    out = write_json(a.out, {
        "benchmark": "cot_kv", "args": vars(a), "machine": machine,
        "prompt_tokens": [len(s) for s in seqs[1:]], "samples": samples, "tokens_per_sample": a.new_tokens,
        "results": results, "ratio_shared_vs_separate": ratio})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
