"""Training throughput: rewardlab's ``train_reward_model`` against TRL's ``RewardTrainer``.

The same HH-harmless pairs (the first ``--pairs`` whose chosen and rejected sides both fit in
``--max-length`` tokens under both encodings, so neither side truncates or filters anything), the same
batch size, steps, precision, LoRA/full setting, optimiser and schedule, and the same seed for the
random head (and LoRA init). One process, run one after the other.

- rewardlab goes through the real path, ``train_reward_model(load_recipe(None, overrides))``: packed
  padding-free batches; its tokens/s is ``metrics['train']['tokens_seen'] / train_seconds``.
- TRL gets the same conversations in its explicit-prompt conversational format and applies the chat
  template itself (right padding to the batch maximum; gradient checkpointing off, as on our side,
  unless ``--trl-gradient-checkpointing``). Its tokens are the real (non-pad) tokens it trained on
  (its ``num_tokens`` metric); ``trainer.train()`` is timed.

The two tokenisations differ by one token per sequence: the SmolLM2 template writes ``<|im_end|>\\n``
and TRL keeps the newline (so its reward is read at ``\\n``), while rewardlab ends at ``<|im_end|>``.
``--trl-input ids`` feeds TRL rewardlab's token ids instead (with a pad token other than EOS), which
isolates trainer differences: the loss curves should then agree to float noise.

    python benchmarks/bench_train.py [--pairs 64 --batch-size 8 --steps 8] [--dtype float32] [--lora-r 0]

Defaults follow the project's main recipe (LoRA r=16 on all linear layers, bf16 mixed precision).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import DEFAULT_DATA, data_path, machine_info, pick_device, table, write_json

TARGET_SPEEDUP = 1.5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA), help="HH-RLHF jsonl(.gz); relative to the repo root")
    p.add_argument("--pairs", type=int, default=64, help="training pairs (one epoch: pairs = steps x batch)")
    p.add_argument("--batch-size", type=int, default=8, help="pairs per optimizer step (2x sequences)")
    p.add_argument("--steps", type=int, default=8, help="optimizer steps")
    p.add_argument("--max-length", type=int, default=256, help="tokens per sequence; longer pairs are skipped")
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                   help="float32, or bfloat16 mixed precision (fp32 weights) on both sides; auto = bfloat16 "
                        "only where rewardlab's measurement on this device says it is faster, else float32")
    p.add_argument("--lora-r", type=int, default=16, help="LoRA rank on all linear layers; 0 = full fine-tuning")
    p.add_argument("--lora-alpha", type=int, default=32, help="LoRA alpha")
    p.add_argument("--lr", type=float, default=1e-4, help="peak learning rate")
    p.add_argument("--warmup", type=float, default=0.0, help="warm-up as a fraction of the steps")
    p.add_argument("--scheduler", default="cosine", help="transformers scheduler name")
    p.add_argument("--seed", type=int, default=42, help="seed of the head / LoRA init and the data order")
    p.add_argument("--trl-input", choices=("conversations", "ids"), default="conversations",
                   help="what TRL gets: the conversations (its chat template) or rewardlab's token ids")
    p.add_argument("--trl-gradient-checkpointing", action="store_true",
                   help="keep TRL's default gradient checkpointing (off by default: rewardlab does not use it)")
    p.add_argument("--repeats", type=int, default=1,
                   help="runs per side, alternating sides; the fastest counts (losses come from the first)")
    p.add_argument("--skip", choices=("", "rewardlab", "trl"), default="", help="run only one side")
    p.add_argument("--device", default=None, help="informational; both Trainers pick the device themselves")
    p.add_argument("--out", default="benchmarks/results/train.json", help="result JSON (relative to the repo)")
    args = p.parse_args(argv)
    if args.dtype == "auto":  # both sides get the same, resolved precision
        import torch

        from rewardlab.precision import dtype_name, resolve_dtype

        args.dtype = dtype_name(resolve_dtype("auto", "cuda" if torch.cuda.is_available() else "cpu"))
    if args.pairs != args.steps * args.batch_size:
        p.error(f"--pairs ({args.pairs}) must equal --steps x --batch-size ({args.steps * args.batch_size}) "
                "so both sides train exactly one epoch on the same pairs")
    return args


@contextlib.contextmanager
def step_timer(trainer_cls, log: list):
    """Record ``(seconds, real tokens)`` of every ``training_step`` (forward + backward) of ``trainer_cls``.

    Instrumentation only: the wrapped method runs unchanged. Real tokens: the attention mask's sum for
    padded batches, ``num_tokens`` (both sides) for forked pairs, the packed row's length otherwise."""
    original = trainer_cls.training_step

    def timed(self, model, inputs, *args, **kwargs):
        before = allocator_counts()
        start = time.perf_counter()
        out = original(self, model, inputs, *args, **kwargs)
        mask = inputs.get("attention_mask")
        if inputs.get("num_tokens") is not None:  # forked pairs: the shared prompt counts for both sides
            tokens = int(inputs["num_tokens"])
        else:
            tokens = int(mask.sum()) if mask is not None else int(inputs["input_ids"].numel())
        after = allocator_counts()
        log.append((time.perf_counter() - start, tokens, tuple(inputs["input_ids"].shape),
                    {k: after[k] - before[k] for k in after}))
        return out

    trainer_cls.training_step = timed
    try:
        yield
    finally:
        trainer_cls.training_step = original


def allocator_counts() -> dict:
    """The CUDA caching allocator's counters (device mallocs and frees, retries after a failed malloc):
    a step that has to go back to the device for memory is a step-time spike's usual cause. Empty on a CPU."""
    if not torch.cuda.is_available():
        return {}
    stats = torch.cuda.memory_stats()
    return {k: stats.get(k, 0) for k in ("num_device_alloc", "num_device_free", "num_alloc_retries")}


def step_stats(log: list, total_seconds: float) -> dict:
    secs = sorted(s for s, *_ in log)
    return {"step_seconds": [round(s, 3) for s, *_ in log], "step_tokens": [t for _, t, *_ in log],
            "step_input_shapes": [list(shape) for _, _, shape, _ in log],
            "step_allocator": [alloc for *_, alloc in log],
            "median_step_seconds": round(secs[len(secs) // 2], 3),
            "fwd_bwd_tokens_per_s": sum(t for _, t, *_ in log) / sum(secs),
            "outside_steps_seconds": round(total_seconds - sum(secs), 2)}


def select_pairs(path: Path, args, tok):
    """The first ``args.pairs`` pairs whose four encodings (2 sides x 2 tokenisations) fit in max_length."""
    from rewardlab.data import load_pairs
    from rewardlab.data.encode import ChatEncoder

    enc = ChatEncoder(tok)
    pairs, _ = load_pairs(path, format="hh", lenient=True)
    kept, ours, skipped, prefix_equal = [], [], 0, 0
    for p in pairs:
        sides = [enc.encode(p.prompt, getattr(p, s), p.id).ids for s in ("chosen", "rejected")]
        theirs = [tok.apply_chat_template(p.prompt + getattr(p, s), tokenize=True, return_dict=True)["input_ids"]
                  for s in ("chosen", "rejected")]
        if max(map(len, sides + theirs)) > args.max_length:
            skipped += 1
            continue
        prefix_equal += sum(t[: len(o)] == o for o, t in zip(sides, theirs, strict=True))
        kept.append(p)
        ours.append(sides)
        if len(kept) == args.pairs:
            break
    if len(kept) < args.pairs:
        raise SystemExit(f"only {len(kept)} pairs of {path} fit in --max-length {args.max_length}")
    info = {"skipped_too_long": skipped, "sequences_where_trl_ids_extend_ours": prefix_equal}
    return kept, ours, info


def write_explicit(pairs, path: Path) -> None:
    with path.open("w") as f:
        for p in pairs:
            f.write(json.dumps({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected, "id": p.id}) + "\n")


def losses(log_history: list[dict]) -> list[float]:
    return [e["loss"] for e in sorted(log_history, key=lambda e: e["step"]) if "loss" in e]


def run_rewardlab(args, train_file: Path, out_dir: Path) -> dict:
    from rewardlab.config import load_recipe
    from rewardlab.train.run import train_reward_model

    overrides = [
        "model.path=smollm2", f"model.lora_r={args.lora_r}", f"model.lora_alpha={args.lora_alpha}",
        f"data.train={train_file}", "data.format=explicit", f"data.max_length={args.max_length}", "data.eval_size=0",
        f"train.max_steps={args.steps}", f"train.batch_size={args.batch_size}", f"train.lr={args.lr}",
        "train.weight_decay=0.0", f"train.warmup_ratio={args.warmup}", f"train.scheduler={args.scheduler}",
        f"train.seed={args.seed}", f"train.dtype={args.dtype}", "train.logging_steps=1",
        # Same random order as TRL (one sampler, one data_seed), so both see the same batches step by step.
        "train.group_by_length=false", f"output_dir={out_dir}",
    ]
    from rewardlab.train.trainer import RewardTrainer

    load, log = os.getloadavg()[0], []
    with step_timer(RewardTrainer, log):
        m = train_reward_model(load_recipe(None, overrides))
    # Tokens the training steps consumed (one epoch here, so the dataset's sum, m["train"]["tokens"]).
    tokens, sec = m["train"]["tokens_seen"], m["train_seconds"]
    return {"seconds": sec, "tokens": tokens, "tokens_per_s": tokens / sec, "steps": m["train"]["steps"],
            "dataset_tokens": m["train"]["tokens"],
            "losses": losses(m["log_history"]), "loadavg_1min_before": round(load, 2),
            **step_stats(log, sec), "overrides": overrides}


def trl_model(args):
    """The TRL side's model, built in the same order as ``train_reward_model`` (seed, head, LoRA)."""
    from transformers import AutoModelForSequenceClassification, set_seed

    from rewardlab.assets import smollm2_path

    set_seed(args.seed)
    model = AutoModelForSequenceClassification.from_pretrained(str(smollm2_path()), num_labels=1,
                                                               dtype=torch.float32)
    if args.lora_r:
        from peft import LoraConfig, get_peft_model

        cfg = LoraConfig(task_type="SEQ_CLS", r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=0.0,
                         target_modules="all-linear", modules_to_save=["score"])
        model = get_peft_model(model, cfg)
    return model


def trl_dataset(args, pairs, our_ids, tok):
    """TRL's input: explicit-prompt conversations, or (``--trl-input ids``) our ids with a non-EOS pad."""
    import copy

    import datasets

    from rewardlab.models.scalar import choose_pad_id

    if args.trl_input == "conversations":
        rows = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs]
        return datasets.Dataset.from_list(rows), tok
    tok = copy.deepcopy(tok)
    tok.pad_token = tok.convert_ids_to_tokens(choose_pad_id(tok))
    rows = [{"chosen_ids": c, "rejected_ids": r} for c, r in our_ids]
    return datasets.Dataset.from_list(rows), tok


def run_trl(args, pairs, our_ids, tok, out_dir: Path) -> dict:
    from trl import RewardConfig, RewardTrainer

    dataset, tok = trl_dataset(args, pairs, our_ids, tok)
    config = RewardConfig(
        output_dir=str(out_dir), per_device_train_batch_size=args.batch_size, gradient_accumulation_steps=1,
        max_steps=args.steps, learning_rate=args.lr, weight_decay=0.0, warmup_steps=args.warmup,
        lr_scheduler_type=args.scheduler, seed=args.seed, data_seed=args.seed, bf16=args.dtype == "bfloat16",
        gradient_checkpointing=args.trl_gradient_checkpointing, max_length=args.max_length, logging_steps=1,
        logging_first_step=True, save_strategy="no", report_to="none", dataloader_num_workers=0,
        train_sampling_strategy="random", use_cpu=not torch.cuda.is_available(),
    )
    trainer = RewardTrainer(model=trl_model(args), args=config, train_dataset=dataset, processing_class=tok)
    load, log = os.getloadavg()[0], []
    with step_timer(RewardTrainer, log):
        start = time.perf_counter()
        result = trainer.train()
        sec = time.perf_counter() - start
    history = trainer.state.log_history
    tokens = int(max(e.get("num_tokens", 0) for e in history))
    out = {"seconds": round(sec, 2), "tokens": tokens, "tokens_per_s": tokens / sec, "steps": result.global_step,
           "losses": losses(history), "loadavg_1min_before": round(load, 2), **step_stats(log, sec),
           "padded_tokens": _padded_tokens(trainer)}
    del trainer
    gc.collect()
    return out


def _padded_tokens(trainer) -> int:
    """Tokens TRL's batches hold including padding (one more pass over its dataloader, no model)."""
    return int(sum(b["input_ids"].numel() for b in trainer.get_train_dataloader()))


def head_init_matches(args, tok) -> bool:
    """Whether TRL's model starts from the very same head weights as rewardlab's."""
    from transformers import set_seed

    from rewardlab.models.scalar import build_reward_model, head_of

    set_seed(args.seed)
    ours = head_of(build_reward_model("smollm2", tok)).weight.detach().clone()
    theirs = trl_model(args)
    theirs_w = head_of(theirs).weight.detach()
    same = ours.shape == theirs_w.shape and torch.equal(ours, theirs_w)
    del theirs
    gc.collect()
    return same


def keep_fastest(best: dict | None, run: dict) -> dict:
    """The faster of two runs of one side, with every run's seconds listed and the first run's losses."""
    if best is None:
        return {**run, "all_seconds": [run["seconds"]]}
    fastest = run if run["tokens_per_s"] > best["tokens_per_s"] else best
    return {**fastest, "losses": best["losses"], "all_seconds": [*best["all_seconds"], run["seconds"]]}


def compare(ours: dict, trl: dict) -> dict:
    steps = min(len(ours["losses"]), len(trl["losses"]))
    diffs = [abs(a - b) for a, b in zip(ours["losses"][:steps], trl["losses"][:steps], strict=True)]
    return {"tokens_per_s_ratio": ours["tokens_per_s"] / trl["tokens_per_s"],
            "fwd_bwd_tokens_per_s_ratio": ours["fwd_bwd_tokens_per_s"] / trl["fwd_bwd_tokens_per_s"],
            "wall_time_ratio": trl["seconds"] / ours["seconds"],
            "loss_abs_diff_per_step": diffs, "loss_max_abs_diff": max(diffs) if diffs else None,
            "target_tokens_per_s_ratio": TARGET_SPEEDUP,
            "met": ours["tokens_per_s"] / trl["tokens_per_s"] >= TARGET_SPEEDUP}


def print_report(res: dict) -> None:
    ours, trl = res.get("rewardlab"), res.get("trl")
    rows = [["trainer", "s", "tokens", "tokens/s", "median step s", "fwd+bwd tokens/s", "s outside steps"]]
    for name, r in (("rewardlab", ours), ("trl", trl)):
        if r:
            rows.append([name, f"{r['seconds']:.1f}", str(r["tokens"]), f"{r['tokens_per_s']:.1f}",
                         f"{r['median_step_seconds']:.2f}", f"{r['fwd_bwd_tokens_per_s']:.1f}",
                         f"{r['outside_steps_seconds']:.1f}"])
    print()
    print(table(rows))
    if ours and trl:
        c = res["comparison"]
        print(f"\ntokens/s ratio {c['tokens_per_s_ratio']:.2f}x (target >= {TARGET_SPEEDUP}x: "
              f"{'met' if c['met'] else 'NOT met'}); fwd+bwd-only ratio {c['fwd_bwd_tokens_per_s_ratio']:.2f}x; "
              f"wall-time ratio {c['wall_time_ratio']:.2f}x; "
              f"TRL padded tokens {trl['padded_tokens']}")
        rows = [["step", "loss rewardlab", "loss trl", "|d|", "step s rewardlab", "step s trl"]]
        for i, (a, b) in enumerate(zip(ours["losses"], trl["losses"], strict=False)):
            rows.append([str(i + 1), f"{a:.4f}", f"{b:.4f}", f"{abs(a - b):.4f}",
                         f"{ours['step_seconds'][i]:.2f}", f"{trl['step_seconds'][i]:.2f}"])
        print(table(rows))
    print(f"load {res['machine']['loadavg_start']} -> {[round(x, 2) for x in os.getloadavg()]}")


def main(argv: list[str] | None = None) -> dict:
    from transformers import AutoTokenizer

    from rewardlab.assets import smollm2_path

    args = parse_args(argv)
    path = data_path(args.data)
    info = machine_info(pick_device(args.device))
    print(f"machine: {info['cpu']}, {info['torch_threads']} threads, load {info['loadavg_start']}", flush=True)
    tok = AutoTokenizer.from_pretrained(smollm2_path())
    pairs, our_ids, sel = select_pairs(path, args, tok)
    res: dict = {"machine": info, "args": vars(args), "selection": sel,
                 "head_init_identical": head_init_matches(args, tok)}
    sides = [s for s in ("rewardlab", "trl") if s != args.skip]
    with tempfile.TemporaryDirectory(prefix="rl-bench-train-") as tmp:
        train_file = Path(tmp) / "pairs.jsonl"
        write_explicit(pairs, train_file)
        for r in range(args.repeats):
            for side in sides if r % 2 == 0 else sides[::-1]:
                run = (run_rewardlab(args, train_file, Path(tmp) / f"rewardlab-{r}") if side == "rewardlab"
                       else run_trl(args, pairs, our_ids, tok, Path(tmp) / f"trl-{r}"))
                gc.collect()
                print(f"  repeat {r + 1}: {side} {run['seconds']:.1f} s, {run['tokens_per_s']:.1f} tokens/s "
                      f"(load before {run['loadavg_1min_before']})", flush=True)
                res[side] = keep_fastest(res.get(side), run)
    if "rewardlab" in res and "trl" in res:
        res["comparison"] = compare(res["rewardlab"], res["trl"])
    out = write_json(args.out, res)
    print_report(res)
    print(f"wrote {out}")
    return res


if __name__ == "__main__":
    main()
