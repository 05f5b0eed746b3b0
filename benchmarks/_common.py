"""What both benchmarks share: the data path, machine facts, the matmul peak, result files.

Numbers from a shared 2-core machine move with whatever else runs on it, so every result records the
load average before and after, and targets are ratios measured in the same run.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

from rewardlab.precision import cpu_name

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path("../shared/data/hh-rlhf-harmless/test.jsonl.gz")
"""Relative to the repository root (``shared/`` sits beside the checkout)."""


def data_path(arg: str | Path) -> Path:
    """The HH-harmless file, resolved against the repo root when relative; exits naming it when absent."""
    path = Path(arg)
    if not path.is_absolute():
        path = (REPO / path).resolve()
    if not path.exists():
        raise SystemExit(f"data file {path} not found: pass --data PATH to an HH-RLHF jsonl(.gz) file "
                         "(the default is ../shared/data/hh-rlhf-harmless/test.jsonl.gz beside the repo)")
    return path


def pick_device(name: str | None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync(device: torch.device) -> None:
    """Wait for queued kernels so wall-clock timings mean something on accelerators."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine_info(device: torch.device) -> dict:
    import transformers

    info = {
        "device": str(device),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def matmul_peak(dtype: torch.dtype, device: torch.device, sizes: tuple[int, ...] | None = None,
                repeats: int = 3) -> dict:
    """Best FLOP/s of square ``torch.matmul`` over ``sizes`` x ``repeats`` (after one warm-up each).

    Default sizes: 2048 and 3072 on a CPU; 4096 and 8192 on a GPU, where a smaller product finishes
    in tens of microseconds and the timer's own overhead would understate the rate."""
    best, best_n = 0.0, 0
    for n in sizes or ((2048, 3072) if device.type == "cpu" else (4096, 8192)):
        a = torch.randn(n, n, dtype=dtype, device=device)
        b = torch.randn(n, n, dtype=dtype, device=device)
        torch.matmul(a, b)
        for _ in range(repeats):
            sync(device)
            t = time.perf_counter()
            torch.matmul(a, b)
            sync(device)
            rate = 2 * n**3 / (time.perf_counter() - t)
            if rate > best:
                best, best_n = rate, n
    return {"flops_per_s": best, "gflops": round(best / 1e9, 1), "size": best_n}


def write_json(path: str | Path, result: dict) -> Path:
    path = Path(path)
    if not path.is_absolute():
        path = REPO / path
    path.parent.mkdir(parents=True, exist_ok=True)
    result.setdefault("machine", {})["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def table(rows: list[list[str]]) -> str:
    """Plain aligned text table; the first row is the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
