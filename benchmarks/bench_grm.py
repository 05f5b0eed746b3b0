"""GRM training cost: ``grm_dpo`` (reference log-probabilities cached) against ``grm_sft``.

The DPO regulariser needs the initial model's log-probabilities. rewardlab computes them once, in one
inference pass over the training pairs before the first update, and stores them with the dataset, so
no second model is held or run during training. This measures what that costs: wall time of one
epoch of each variant on the same pairs, through the real path
(``train_reward_model(load_recipe(None, overrides))``), where an epoch's time is the training loop
(``metrics['train_seconds']``) plus, for ``grm_dpo``, the reference pass (timed around
``rewardlab.train.grm.add_reference_logps``). Model loading, tokenization and saving are the same for
both and not counted.

Target: grm_dpo ≤ 1.3 x grm_sft per epoch. Both run ``--repeats`` times, alternating, the fastest
run of each counting (a shared machine's bursts only ever slow a run down).

    python benchmarks/bench_grm.py [--pairs 32 --batch-size 8] [--dtype bfloat16] [--lora-r 16]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import DEFAULT_DATA, data_path, machine_info, pick_device, table, write_json

TARGET_RATIO = 1.3
VARIANTS = ("grm_sft", "grm_dpo")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA), help="HH-RLHF jsonl(.gz); relative to the repo root")
    p.add_argument("--pairs", type=int, default=32, help="training pairs: one epoch")
    p.add_argument("--batch-size", type=int, default=8, help="pairs per optimizer step")
    p.add_argument("--max-length", type=int, default=256, help="tokens per sequence; longer pairs are skipped")
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                   help="training precision; auto = bfloat16 only where rewardlab's measurement on this "
                        "device says it is faster, else float32")
    p.add_argument("--lora-r", type=int, default=16, help="LoRA rank on all linear layers; 0 = full fine-tuning")
    p.add_argument("--repeats", type=int, default=2, help="runs per variant, alternating; the fastest counts")
    p.add_argument("--out", default="benchmarks/results/grm.json", help="results JSON")
    return p.parse_args(argv)


def select_pairs(path: Path, n: int, max_length: int, out: Path) -> dict:
    """Write the first ``n`` HH pairs whose both sides fit in ``max_length`` tokens as explicit JSONL."""
    from transformers import AutoTokenizer

    from rewardlab.assets import smollm2_path
    from rewardlab.data import load_pairs
    from rewardlab.data.encode import ChatEncoder

    enc = ChatEncoder(AutoTokenizer.from_pretrained(smollm2_path()))
    pairs, _ = load_pairs(path, format="hh", lenient=True)
    kept, tokens = [], 0
    for p in pairs:
        lens = [len(enc.encode(p.prompt, getattr(p, s), p.id).ids) for s in ("chosen", "rejected")]
        if max(lens) <= max_length:
            kept.append(p)
            tokens += sum(lens)
        if len(kept) == n:
            break
    with out.open("w") as f:
        for p in kept:
            f.write(json.dumps({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected, "id": p.id}) + "\n")
    return {"pairs": len(kept), "tokens": tokens}


@contextlib.contextmanager
def reference_timer(log: list[float]):
    """Time every call of the reference pass, whoever calls it."""
    import rewardlab.train.grm as grm

    orig = grm.add_reference_logps

    def timed(*a, **kw):
        start = time.perf_counter()
        try:
            return orig(*a, **kw)
        finally:
            log.append(time.perf_counter() - start)

    grm.add_reference_logps = timed
    try:
        yield
    finally:
        grm.add_reference_logps = orig


def run_once(variant: str, args, train_file: Path, out_dir: Path) -> dict:
    from rewardlab.config import load_recipe
    from rewardlab.train.run import train_reward_model

    overrides = [
        "model.path=smollm2", f"model.lora_r={args.lora_r}", f"data.train={train_file}", "data.format=explicit",
        f"data.max_length={args.max_length}", "data.eval_size=0", "train.epochs=1",
        f"train.batch_size={args.batch_size}", f"train.dtype={args.dtype}", "train.logging_steps=1",
        "train.seed=0", f"variant.name={variant}", f"output_dir={out_dir}",
    ]
    ref: list[float] = []
    load = os.getloadavg()[0]
    with reference_timer(ref):
        m = train_reward_model(load_recipe(None, overrides))
    train_s, ref_s = m["train_seconds"], sum(ref)
    return {"variant": variant, "epoch_seconds": round(train_s + ref_s, 2), "train_seconds": train_s,
            "reference_seconds": round(ref_s, 2), "steps": m["train"]["steps"], "loss": m["train"]["loss"],
            "loadavg_1min_before": round(load, 2), "overrides": overrides}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = pick_device(None)
    result = {"args": vars(args), "machine": machine_info(device), "target_ratio": TARGET_RATIO}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        result["data"] = select_pairs(data_path(args.data), args.pairs, args.max_length, tmp / "pairs.jsonl")
        runs = []
        for r in range(args.repeats):
            for v in VARIANTS if r % 2 == 0 else reversed(VARIANTS):
                runs.append(run_once(v, args, tmp / "pairs.jsonl", tmp / f"{v}-{r}"))
                print(json.dumps({k: runs[-1][k] for k in ("variant", "epoch_seconds", "reference_seconds")}))
    best = {v: min((x for x in runs if x["variant"] == v), key=lambda x: x["epoch_seconds"]) for v in VARIANTS}
    ratio = best["grm_dpo"]["epoch_seconds"] / best["grm_sft"]["epoch_seconds"]
    result.update(runs=runs, best={v: b["epoch_seconds"] for v, b in best.items()}, ratio=round(ratio, 3),
                  met=ratio <= TARGET_RATIO)
    rows = [["variant", "epoch s", "train loop s", "reference pass s"]]
    rows += [[v, f"{b['epoch_seconds']:.1f}", f"{b['train_seconds']:.1f}", f"{b['reference_seconds']:.1f}"]
             for v, b in best.items()]
    print(table(rows))
    print(f"grm_dpo / grm_sft per epoch: {ratio:.3f} (target <= {TARGET_RATIO}: {'met' if ratio <= TARGET_RATIO else 'NOT met'})")
    print(f"results: {write_json(args.out, result)}")


if __name__ == "__main__":
    main()
