"""Scoring throughput: rewardlab's ScalarScorer against the loop a user would write.

Both sides of the first ``--pairs`` HH-harmless pairs are encoded once with rewardlab's ChatEncoder
(so every contender scores the very same token ids), then scored by:

- ``naive``: file order, ``--naive-batch`` sequences per batch, right padding to the batch maximum,
  fp32, ``torch.no_grad``, the stock ``model(input_ids, attention_mask).logits`` (SDPA attention);
- ``rewardlab fp32``: ``ScalarScorer.score_ids`` (length-sorted, ``inference_mode``; packed rows on a
  CPU, and on a GPU with flex attention: ``rewardlab.models.batching.choose_layout``);
- ``rewardlab bf16``: what ``ScalarScorer.load(dtype="bfloat16")`` runs: linear layers in bf16, the
  residual stream, norms and reward head in fp32 (``rewardlab.precision.bf16_matmuls``);
- with ``--layout-variants``: both rewardlab contenders in the other batch layout (length-sorted padded
  batches where rewardlab packs, packed rows where it pads);
- with ``--compile-modes``: rewardlab bf16 with its backbone under ``torch.compile`` (``reduce-overhead``
  adds CUDA graphs);
- with ``--bf16-variants``: other bf16 choices for comparison (bf16 matmuls but fp32 q/k/v
  projections; the whole model cast to bf16; that cast
  with the final norm + head kept in fp32; fp32 weights under ``torch.autocast``).

Reported: pairs/s and the ratio against naive (targets: >= 2x fp32, >= 4x bf16), max |score
difference| of rewardlab fp32 vs naive (target <= 1e-5), Spearman of each bf16 contender vs fp32
(target >= 0.999), and MFU = model FLOPs / measured matmul peak of the same dtype. Model FLOPs are
``2 x non-embedding parameters x real tokens`` (padding does not count); ``mfu_attn`` adds causal
attention, ``2 x layers x d_model x s^2`` per sequence of length ``s``.

    python benchmarks/bench_score.py [--pairs 32] [--model DIR] [--out benchmarks/results/score.json]
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import DEFAULT_DATA, data_path, machine_info, matmul_peak, pick_device, sync, table, write_json

TARGETS = {"fp32_speedup": 2.0, "bf16_speedup": 4.0, "fp32_max_abs_diff": 1e-5, "bf16_spearman": 0.999}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA), help="HH-RLHF jsonl(.gz); relative to the repo root")
    p.add_argument("--pairs", type=int, default=32, help="first N pairs of the file (2N sequences scored)")
    p.add_argument("--model", default=None,
                   help="a trained reward-model directory; default: fresh SmolLM2 RM with a seeded random head")
    p.add_argument("--seed", type=int, default=0, help="seed for the fresh model's random head")
    p.add_argument("--naive-batch", type=int, default=16, help="sequences per batch of the naive loop")
    p.add_argument("--batch-tokens", type=int, default=8192, help="ScalarScorer token budget per forward")
    p.add_argument("--chunk-pairs", type=int, default=16,
                   help="pairs timed together (0: all at once); each chunk's fastest repeat counts")
    p.add_argument("--repeats", type=int, default=2, help="runs of each chunk per contender, interleaved")
    p.add_argument("--peak-repeats", type=int, default=5, help="timed matmuls per size for the peak")
    p.add_argument("--peak-sizes", default="",
                   help="square matmul sizes for the peak, comma-separated (default: 2048,3072 on a CPU, 4096,8192 on a GPU)")
    p.add_argument("--bf16-variants", action="store_true",
                   help="also time bf16 with fp32 norm+head, and fp32 weights under torch.autocast")
    p.add_argument("--layout-variants", action="store_true",
                   help="also time rewardlab fp32 and bf16 on length-sorted padded batches instead of packed ones")
    p.add_argument("--compile-modes", default="",
                   help="also time rewardlab bf16 with its backbone under torch.compile in these modes, comma-separated "
                        "(default, reduce-overhead = CUDA graphs, max-autotune)")
    p.add_argument("--profile", default="", help="profile one contender (naive, fp32, bf16) and print top ops")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--out", default="benchmarks/results/score.json", help="result JSON (relative to the repo)")
    return p.parse_args(argv)


def encode_pairs(path, n: int, tok) -> tuple[list[list[int]], float]:
    """Token ids of chosen (first n) then rejected (next n), and the seconds encoding took."""
    from rewardlab.data import load_pairs
    from rewardlab.data.encode import ChatEncoder

    pairs, _ = load_pairs(path, format="hh", lenient=True, limit=n)
    if len(pairs) < n:
        raise SystemExit(f"{path} holds only {len(pairs)} usable pairs; asked for --pairs {n}")
    enc = ChatEncoder(tok)
    t = time.perf_counter()
    seqs = [enc.encode(p.prompt, getattr(p, side), p.id).ids for side in ("chosen", "rejected") for p in pairs]
    return seqs, time.perf_counter() - t


def load_model(args: argparse.Namespace):
    """The fp32 reward model and its tokenizer: ``--model DIR`` or a fresh seeded SmolLM2 RM."""
    from transformers import AutoTokenizer, set_seed

    from rewardlab.assets import smollm2_path
    from rewardlab.models.loading import load_reward_model
    from rewardlab.models.scalar import build_reward_model

    if args.model:
        return load_reward_model(args.model, torch.float32), AutoTokenizer.from_pretrained(args.model)
    tok = AutoTokenizer.from_pretrained(smollm2_path())
    set_seed(args.seed)
    return build_reward_model("smollm2", tok).eval(), tok


def naive_model(rm: torch.nn.Module) -> torch.nn.Module:
    """The same weights behind transformers' stock attention (SDPA) and forward."""
    from rewardlab.models.scalar import unwrap

    model = copy.deepcopy(unwrap(rm))
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.set_attn_implementation("sdpa")
    return model.eval()


def score_naive(model, seqs: list[list[int]], batch: int, device: torch.device) -> torch.Tensor:
    """What a user writes: batches in file order, right padding, ``model(...).logits``."""
    pad_id = model.config.pad_token_id
    out = []
    with torch.no_grad():
        for i in range(0, len(seqs), batch):
            chunk = seqs[i:i + batch]
            width = max(len(s) for s in chunk)
            ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in chunk], device=device)
            mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in chunk], device=device)
            out.append(model(input_ids=ids, attention_mask=mask).logits[:, 0].float().cpu())
    return torch.cat(out)


def keep_norm_and_head_fp32(model: torch.nn.Module) -> torch.nn.Module:
    """bf16 backbone, but the final RMSNorm runs in fp32 on an fp32 copy of its input, and the head is fp32."""
    from rewardlab.models.scalar import backbone_of, head_of

    norm = backbone_of(model).norm
    norm.float()
    norm.register_forward_pre_hook(lambda _m, a: (a[0].float(),))
    head_of(model).float()
    return model


def bf16_matmuls_fp32_qkv(model: torch.nn.Module) -> torch.nn.Module:
    """bf16 matmuls as ``rewardlab bf16``, but the attention q/k/v projections keep fp32."""
    from rewardlab.models.scalar import head_of
    from rewardlab.precision import bf16_matmuls

    qkv = [m for n, m in model.named_modules() if n.endswith(("q_proj", "k_proj", "v_proj"))]
    return bf16_matmuls(model, keep=[head_of(model), *qkv])


@dataclass
class Contender:
    name: str
    dtype: torch.dtype  # the dtype whose matmul peak MFU is measured against
    run: Callable[[list[list[int]]], torch.Tensor]
    """Scores ``(n,)`` for token-id sequences, in input order."""


def contenders(args, rm, tok, device) -> list[Contender]:
    from rewardlab.models.scorer import ScalarScorer, for_scoring

    naive = naive_model(rm).to(device)
    fp32 = ScalarScorer(rm.to(device), tok, batch_tokens=args.batch_tokens)
    bf16 = ScalarScorer(for_scoring(copy.deepcopy(rm), torch.bfloat16), tok, batch_tokens=args.batch_tokens)
    out = [
        Contender("naive fp32", torch.float32, lambda seqs: score_naive(naive, seqs, args.naive_batch, device)),
        Contender("rewardlab fp32", torch.float32, fp32.score_ids),
        Contender("rewardlab bf16", torch.bfloat16, bf16.score_ids),
    ]
    if args.layout_variants:  # the batch layout ScalarScorer does not pick on this device
        other = not fp32.packing
        layout = "packed" if other else "padded"
        alt32 = ScalarScorer(rm, tok, batch_tokens=args.batch_tokens, packing=other)
        alt16 = ScalarScorer(bf16.model, tok, batch_tokens=args.batch_tokens, packing=other)
        out += [Contender(f"rewardlab fp32 {layout}", torch.float32, alt32.score_ids),
                Contender(f"rewardlab bf16 {layout}", torch.bfloat16, alt16.score_ids)]
    for mode in filter(None, (m.strip() for m in args.compile_modes.split(","))):
        from rewardlab.models.scalar import backbone_of

        compiled = copy.deepcopy(bf16.model)
        backbone_of(compiled).compile(mode=mode, dynamic=True)
        out.append(Contender(f"rewardlab bf16 compile:{mode}", torch.bfloat16,
                             ScalarScorer(compiled, tok, batch_tokens=args.batch_tokens).score_ids))
    if args.bf16_variants:
        mixed = ScalarScorer(keep_norm_and_head_fp32(copy.deepcopy(rm).to(torch.bfloat16)), tok,
                             batch_tokens=args.batch_tokens)

        def autocast(seqs):
            with torch.autocast(device.type, dtype=torch.bfloat16):
                return fp32.score_ids(seqs)

        cast = ScalarScorer(copy.deepcopy(rm).to(torch.bfloat16), tok, batch_tokens=args.batch_tokens)
        qkv32 = ScalarScorer(bf16_matmuls_fp32_qkv(copy.deepcopy(rm)), tok, batch_tokens=args.batch_tokens)
        out += [Contender("bf16 matmuls, fp32 q/k/v", torch.bfloat16, qkv32.score_ids),
                Contender("bf16 whole-model cast", torch.bfloat16, cast.score_ids),
                Contender("bf16 cast + fp32 norm/head", torch.bfloat16, mixed.score_ids),
                Contender("bf16 autocast", torch.bfloat16, autocast)]
    return out


def model_flops(rm: torch.nn.Module, seqs: list[list[int]]) -> tuple[float, float]:
    """(2 x non-embedding params x tokens, causal attention FLOPs) of one scoring pass."""
    from rewardlab.models.scalar import backbone_of

    cfg = rm.config.get_text_config()
    embed = backbone_of(rm).get_input_embeddings().weight.numel()
    n_params = sum(p.numel() for p in rm.parameters()) - embed
    d_attn = cfg.num_attention_heads * getattr(cfg, "head_dim", cfg.hidden_size // cfg.num_attention_heads)
    dense = 2.0 * n_params * sum(len(s) for s in seqs)
    attn = sum(2.0 * cfg.num_hidden_layers * d_attn * len(s) ** 2 for s in seqs)
    return dense, attn


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    def ranks(x: torch.Tensor) -> torch.Tensor:
        return x.double().argsort().argsort().double()

    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


def chunked(seqs: list[list[int]], n_pairs: int, chunk_pairs: int) -> list[list[list[int]]]:
    """Split ``chosen (n) + rejected (n)`` into chunks of ``chunk_pairs`` pairs, each chosen-then-rejected."""
    step = chunk_pairs or n_pairs
    return [seqs[i:i + step] + seqs[n_pairs + i:n_pairs + i + step] for i in range(0, n_pairs, step)]


def time_all(cands: list[Contender], chunks: list[list[list[int]]], repeats: int, device: torch.device) -> dict:
    """Seconds and scores per contender: each chunk runs ``repeats`` times per contender, contenders
    interleaved (order rotated per round), and the fastest run of each chunk counts. On a shared machine
    this drops the bursts when another process takes a core; every contender is treated alike."""
    for c in cands:  # first-call costs (weight page-in, oneDNN primitives, allocator) are not throughput
        c.run(chunks[0][:4])
    seconds = dict.fromkeys((c.name for c in cands), 0.0)
    scores: dict[str, list[torch.Tensor]] = {c.name: [] for c in cands}
    for k, chunk in enumerate(chunks):
        best: dict[str, float] = {}
        for r in range(repeats):
            for c in cands[r % len(cands):] + cands[:r % len(cands)]:
                sync(device)
                t = time.perf_counter()
                s = c.run(chunk)
                sync(device)
                best[c.name] = min(time.perf_counter() - t, best.get(c.name, float("inf")))
                if r == 0:
                    scores[c.name].append(s)
        for name, sec in best.items():
            seconds[name] += sec
        print(f"  chunk {k + 1}/{len(chunks)}: " + ", ".join(f"{n} {t:.2f}s" for n, t in best.items())
              + f"  (load {os.getloadavg()[0]:.2f})", flush=True)
    return {"seconds": seconds, "scores": {n: torch.cat(v) for n, v in scores.items()}}


def measure_peaks(device: torch.device, repeats: int, sizes: str = "") -> dict:
    """Matmul peak per dtype; measured before and after the contenders, the higher one counts."""
    print("matmul peak ...", flush=True)
    dims = tuple(int(x) for x in sizes.split(",") if x.strip()) or None
    return {name: matmul_peak(dt, device, sizes=dims, repeats=repeats)
            for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16))}


def profile(cand: Contender, seqs: list[list[int]]) -> str:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        cand.run(seqs)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18)


def summarise(cands, timed, seqs, flops, peaks, naive_padded) -> dict:
    n_pairs, tokens = len(seqs) // 2, sum(len(s) for s in seqs)
    dense, attn = flops
    ref = timed["scores"]["rewardlab fp32"]
    rows = {}
    for c in cands:
        sec = timed["seconds"][c.name]
        s = timed["scores"][c.name]
        peak = peaks["bf16" if c.dtype == torch.bfloat16 else "fp32"]["flops_per_s"]
        rows[c.name] = {
            "seconds": round(sec, 3), "pairs_per_s": round(n_pairs / sec, 3), "tokens_per_s": round(tokens / sec, 1),
            "speedup_vs_naive": round(timed["seconds"]["naive fp32"] / sec, 3),
            "mfu": round(dense / sec / peak, 4), "mfu_attn": round((dense + attn) / sec / peak, 4),
            "max_abs_diff_vs_fp32": float((s - ref).abs().max()), "spearman_vs_fp32": round(spearman(s, ref), 6),
        }
    naive_diff = rows["naive fp32"]["max_abs_diff_vs_fp32"]
    checks = {
        "fp32_speedup": rows["rewardlab fp32"]["speedup_vs_naive"] >= TARGETS["fp32_speedup"],
        "bf16_speedup": rows["rewardlab bf16"]["speedup_vs_naive"] >= TARGETS["bf16_speedup"],
        "fp32_max_abs_diff": naive_diff <= TARGETS["fp32_max_abs_diff"],
        "bf16_spearman": rows["rewardlab bf16"]["spearman_vs_fp32"] >= TARGETS["bf16_spearman"],
    }
    return {"pairs": n_pairs, "sequences": len(seqs), "tokens": tokens, "naive_padded_tokens": naive_padded,
            "model_flops": dense, "attention_flops": attn, "peak": peaks, "contenders": rows,
            "targets": TARGETS, "met": checks,
            "score_spread_fp32": {"std": float(ref.std()), "min": float(ref.min()), "max": float(ref.max())}}


def print_report(res: dict) -> None:
    rows = [["contender", "s", "pairs/s", "x naive", "MFU", "MFU+attn", "max|d| vs fp32", "Spearman"]]
    for name, r in res["contenders"].items():
        rows.append([name, f"{r['seconds']:.2f}", f"{r['pairs_per_s']:.2f}", f"{r['speedup_vs_naive']:.2f}",
                     f"{r['mfu']:.1%}", f"{r['mfu_attn']:.1%}", f"{r['max_abs_diff_vs_fp32']:.2e}",
                     f"{r['spearman_vs_fp32']:.5f}"])
    print()
    print(table(rows))
    pk = res["peak"]
    print(f"\n{res['pairs']} pairs, {res['tokens']} real tokens (naive pads to {res['naive_padded_tokens']}); "
          f"matmul peak fp32 {pk['fp32']['gflops']} GFLOP/s, bf16 {pk['bf16']['gflops']} GFLOP/s; "
          f"load {res['machine']['loadavg_start']} -> {[round(x, 2) for x in os.getloadavg()]}")
    print("targets met:", ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in res["met"].items()))


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    path = data_path(args.data)
    info = machine_info(device)
    print(f"machine: {info['cpu']}, {info['torch_threads']} threads, load {info['loadavg_start']}", flush=True)
    rm, tok = load_model(args)
    seqs, encode_s = encode_pairs(path, args.pairs, tok)
    cands = contenders(args, rm, tok, device)
    before = measure_peaks(device, args.peak_repeats, args.peak_sizes)
    timed = time_all(cands, chunked(seqs, args.pairs, args.chunk_pairs), args.repeats, device)
    after = measure_peaks(device, args.peak_repeats, args.peak_sizes)
    peaks = {k: max(before[k], after[k], key=lambda p: p["flops_per_s"]) for k in before}
    b = args.naive_batch
    padded = sum(max(map(len, ch[i:i + b])) * len(ch[i:i + b])
                 for ch in chunked(seqs, args.pairs, args.chunk_pairs) for i in range(0, len(ch), b))
    res = summarise(cands, timed, seqs, model_flops(rm, seqs), peaks, padded)
    res.update({"machine": info, "encode_seconds": round(encode_s, 3), "args": vars(args),
                "flops_note": "model FLOPs = 2 x non-embedding params x real tokens (forward); "
                              "mfu_attn adds causal attention 2 x layers x d_attn x s^2 per sequence"})
    if args.profile:
        by_key = {"naive": "naive fp32", "fp32": "rewardlab fp32", "bf16": "rewardlab bf16"}
        res["profile"] = profile(next(c for c in cands if c.name == by_key[args.profile]), seqs)
        print(res["profile"])
    out = write_json(args.out, res)
    print_report(res)
    print(f"wrote {out}")
    return res


if __name__ == "__main__":
    main()
