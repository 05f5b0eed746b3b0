"""Packed attention engines, measured: which one should run padding-free rows on this device?

One attention layer of a model's shape (default SmolLM2's: 9 query heads, 3 key-value heads of 64) over
a batch of sequences with HH-like lengths (seeded log-normal, clipped to ``--max-length``), each in:

- ``sdpa per sequence``: the packed row split per sequence, one scaled-dot-product attention call each
  (rewardlab's CPU engine);
- ``flex``: one ``torch.nn.attention.flex_attention`` call, compiled, over the packed row with a block
  mask that keeps each sequence to itself (``rewardlab.models.packing.block_mask``: rewardlab's GPU
  engine; the mask's build time is reported
  apart, since it is built once per batch and shared by every layer);
- ``padded sdpa``: the sequences right-padded to the longest, one SDPA call with a key-padding mask
  (what a padded batch runs).

Forward only, and forward + backward where the engine has one (flex attention has no backward on a
CPU). Reports milliseconds per call, the fastest of ``--repeats`` after a warm-up, and the largest
difference of each engine's output from per-sequence SDPA.

    python benchmarks/bench_attention.py [--sequences 32] [--device cuda] [--out benchmarks/results/attention.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_info, pick_device, sync, table, write_json


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sequences", type=int, default=32, help="sequences in the batch")
    p.add_argument("--max-length", type=int, default=512, help="longest sequence")
    p.add_argument("--heads", type=int, default=9)
    p.add_argument("--kv-heads", type=int, default=3)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda when available)")
    p.add_argument("--out", default="benchmarks/results/attention.json")
    return p.parse_args(argv)


def lengths_like_hh(n: int, longest: int, seed: int) -> list[int]:
    """Seeded log-normal lengths (median about 150 tokens, as HH-RLHF conversations under SmolLM2's template)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.exp(torch.randn(n, generator=g) * 0.6 + 5.0)
    return [int(v) for v in x.clamp(8, longest).round()]


def timed(fn, device, repeats: int) -> float:
    fn()  # warm-up (and compilation)
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def engines(lengths, q, k, v):
    """name -> (forward function returning (1, heads, T, d), whether it has a backward on this device)."""
    from rewardlab.models.packing import flex_available

    device = q.device
    gqa = q.shape[1] != k.shape[1]

    def per_sequence():
        outs = [F.scaled_dot_product_attention(a, b, c, is_causal=True, enable_gqa=gqa)
                for a, b, c in zip(q.split(lengths, 2), k.split(lengths, 2), v.split(lengths, 2), strict=True)]
        return torch.cat(outs, 2)

    width, n = max(lengths), len(lengths)

    def padded():
        def rows(x):
            out = x.new_zeros(n, x.shape[1], width, x.shape[3])
            for i, part in enumerate(x.split(lengths, 2)):
                out[i, :, : part.shape[2]] = part[0]
            return out

        real = torch.arange(width, device=device)[None] < torch.tensor(lengths, device=device)[:, None]
        mask = torch.ones(width, width, dtype=torch.bool, device=device).tril()[None] & real[:, None, :]
        o = F.scaled_dot_product_attention(rows(q), rows(k), rows(v), attn_mask=mask[:, None], enable_gqa=gqa)
        return torch.cat([o[i, :, : n_i][None] for i, n_i in enumerate(lengths)], 2)

    out = {"sdpa per sequence": (per_sequence, True), "padded sdpa": (padded, True)}
    if flex_available():
        from torch.nn.attention.flex_attention import flex_attention

        from rewardlab.models.packing import block_mask

        cu = [0, *torch.tensor(lengths).cumsum(0).tolist()]
        total = sum(lengths)

        def build():  # the mask rewardlab builds for a packed batch of these lengths
            return block_mask(cu, None, True, total, device)

        block = build()
        compiled = torch.compile(flex_attention, dynamic=True)
        out["flex"] = (lambda: compiled(q, k, v, block_mask=block, enable_gqa=gqa), device.type == "cuda")
        out["flex block mask (once per batch)"] = (build, False)
    return out


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = pick_device(args.device)
    dtype = getattr(torch, args.dtype)
    lengths = lengths_like_hh(args.sequences, args.max_length, args.seed)
    total = sum(lengths)
    g = torch.Generator().manual_seed(args.seed)
    shape = (1, args.heads, total, args.head_dim)
    q = torch.randn(shape, generator=g).to(device, dtype)
    k = torch.randn(1, args.kv_heads, total, args.head_dim, generator=g).to(device, dtype)
    v = torch.randn(1, args.kv_heads, total, args.head_dim, generator=g).to(device, dtype)
    res = {"machine": machine_info(device), "args": vars(args), "tokens": total,
           "padded_tokens": max(lengths) * len(lengths), "engines": {}}
    ref = None
    for name, (fn, has_backward) in engines(lengths, q, k, v).items():
        row: dict = {"forward_ms": round(timed(fn, device, args.repeats), 3)}
        if not name.startswith("flex block"):
            with torch.no_grad():
                o = fn().float()
            ref = o if ref is None else ref
            row["max_abs_diff_vs_per_sequence"] = float((o - ref).abs().max())
        if has_backward:
            qg, kg, vg = (x.detach().requires_grad_() for x in (q, k, v))
            fwd = engines(lengths, qg, kg, vg)[name][0]
            row["forward_backward_ms"] = round(timed(lambda f=fwd: f().float().pow(2).sum().backward(), device,
                                                     args.repeats), 3)
        res["engines"][name] = row
        print(f"  {name}: {row}", flush=True)
    base = res["engines"]["sdpa per sequence"]["forward_ms"]
    for row in res["engines"].values():
        row["forward_speedup_vs_per_sequence"] = round(base / row["forward_ms"], 3)
    out = write_json(args.out, res)
    rows = [["engine", "forward ms", "fwd+bwd ms", "x per-seq (fwd)", "max |diff|"]]
    for name, r in res["engines"].items():
        rows.append([name, f"{r['forward_ms']:.2f}", f"{r.get('forward_backward_ms', float('nan')):.2f}",
                     f"{r['forward_speedup_vs_per_sequence']:.2f}", f"{r.get('max_abs_diff_vs_per_sequence', 0):.2e}"])
    print(f"{res['machine']['cpu'] if device.type == 'cpu' else device}: {len(lengths)} sequences, {total} tokens "
          f"({res['padded_tokens']} padded), {args.dtype}")
    print(table(rows))
    print(f"wrote {out}")
    return res


if __name__ == "__main__":
    main()
