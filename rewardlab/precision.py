"""Numeric precision: names users write (``float32``, ``bfloat16``, ``auto``) and what they resolve to.

bfloat16 is only fast where the hardware computes in it, and no CPU flag says how fast: on an Intel
Xeon that reports ``avx512_bf16`` (oneDNN says bf16 is supported) but exposes no AMX, a bf16 matmul
peaked at 173 GFLOP/s against 342 in fp32, and training ran 1.7x slower than in fp32; on CPUs without
native bf16 (AVX2-only, e.g. AMD Zen 3) PyTorch emulates it, about 30x slower. So ``auto`` *measures*
(:func:`auto_choice`): a few timed matmuls of a SmolLM2 MLP shape in both dtypes on the device itself
(0.8 s on a quiet 2-core AVX2 EPYC, where the emulated bf16 matmuls dominate; less where bf16 is
native), and bfloat16 only where it is clearly faster. The answer is cached per device
(CPU model, its instruction set and the torch version; or the GPU's name) in
``<rewardlab cache>/dtype_auto.json``, so a machine measures once. A CUDA GPU with native bf16
(Ampere and later) takes bf16 without measuring; one without takes float32.

Scoring in bfloat16 uses :func:`bf16_matmuls`: only the linear layers compute in bf16; the residual
stream, norms, attention and the reward head stay fp32. Casting the whole model instead rounds the
residual stream at every layer, and the ranking of rewards moves more. Spearman against fp32 with the
main job's trained SmolLM2 RM on 512 HH pairs on an H200 (``benchmarks/bench_score.py --model``,
see benchmarks/README.md): 0.99777 for the plain cast, 0.99904 for bf16 matmuls.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from rewardlab import jsonout
from rewardlab.choices import DTYPES as DTYPE_NAMES

log = logging.getLogger("rewardlab")

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
CHOICES = DTYPE_NAMES
"""The names the CLI and recipes offer (``fp32``/``bf16`` are accepted as aliases)."""

BF16_MARGIN = 1.2
"""``auto`` takes bfloat16 only when its matmuls run at least this many times the float32 rate: the
rest of a step (casts, norms, softmax, fp32 master weights) does not speed up, and bf16 costs precision."""

MATMUL_SHAPE = (256, 576, 1536)
"""``(tokens, in, out)`` of the timed matmul: a 256-token batch through SmolLM2-135M's MLP up-projection."""

CACHE_FILE = "dtype_auto.json"


@dataclass(frozen=True)
class AutoChoice:
    """What ``dtype: auto`` resolved to on one device, and the evidence."""

    dtype: str
    """``"bfloat16"`` or ``"float32"``."""
    device: str
    """The device as the cache knows it, e.g. ``"cpu: AMD EPYC (AVX2), torch 2.13.0"``."""
    bfloat16_gflops: float | None = None
    """Best measured bf16 matmul rate; ``None`` where nothing was measured (a GPU)."""
    float32_gflops: float | None = None
    basis: str = "measured"
    """``measured`` (just now), ``cached`` (an earlier measurement on this device) or, for GPUs, why not."""
    cache: str | None = None
    """The cache file holding the measurement."""

    def describe(self) -> str:
        """One line for logs and the CLI, e.g. ``dtype auto: bfloat16 1.2 GFLOP/s vs float32 33.2
        GFLOP/s on cpu: AMD EPYC (AVX2), torch 2.13.0 -> float32 (cached in ~/.cache/rewardlab/dtype_auto.json)``."""
        if self.bfloat16_gflops is None or self.float32_gflops is None:
            return f"dtype auto: {self.basis} ({self.device}) -> {self.dtype}, not measured"
        where = "measured now, cached in" if self.basis == "measured" else "cached in"
        return (f"dtype auto: bfloat16 {self.bfloat16_gflops:.1f} GFLOP/s vs float32 {self.float32_gflops:.1f} "
                f"GFLOP/s on {self.device} -> {self.dtype} ({where} {self.cache})")

    def to_dict(self) -> dict:
        return asdict(self)


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), for cache keys and for every figure a benchmark reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_key(device: str | torch.device = "cpu") -> str:
    """The name a measurement is cached under: what the device is and which torch computes on it.

    The CPU's instruction set is part of the name because virtual machines often report a bare model
    name (``AMD EPYC``) for different generations; it names the machine, it does not decide the dtype."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"cpu: {cpu_name()} ({torch.backends.cpu.get_cpu_capability()}), torch {torch.__version__}"


def measure_matmuls(device: str | torch.device = "cpu", budget_s: float = 0.5,
                    rounds: int = 5) -> tuple[float, float]:
    """Best bf16 and fp32 matmul rates on ``device``, GFLOP/s, as ``(bfloat16, float32)``.

    One warm-up call in each dtype (first calls build kernels), then up to ``rounds`` timed rounds, each
    timing one matmul in both dtypes back to back so that load from other processes hits both alike;
    rounds stop once ``budget_s`` seconds have gone by (after at least one). The best time of each
    dtype counts: noise only ever makes a matmul slower."""
    device = torch.device(device)
    m, k, n = MATMUL_SHAPE
    g = torch.Generator().manual_seed(0)
    a32, b32 = torch.randn(m, k, generator=g).to(device), torch.randn(k, n, generator=g).to(device)
    pairs = {torch.bfloat16: (a32.bfloat16(), b32.bfloat16()), torch.float32: (a32, b32)}

    def timed(dtype: torch.dtype) -> float:
        a, b = pairs[dtype]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t

    start = time.perf_counter()
    for dtype in pairs:
        timed(dtype)
    best = {dtype: float("inf") for dtype in pairs}
    for _ in range(rounds):
        for dtype in pairs:
            best[dtype] = min(best[dtype], timed(dtype))
        if time.perf_counter() - start > budget_s:
            break
    flop = 2.0 * m * k * n
    return flop / best[torch.bfloat16] / 1e9, flop / best[torch.float32] / 1e9


def cache_path() -> Path:
    from rewardlab.assets import cache_dir

    return cache_dir() / CACHE_FILE


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # missing, or unreadable: measure again
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, key: str, entry: dict) -> None:
    """Add ``entry`` under ``key``, written to a temporary file and renamed, so that processes measuring
    at once (one per GPU, say) never leave half a file. A cache that cannot be written is only a warning."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _read_cache(path)
        data[key] = entry
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(jsonout.dumps(data, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
    except OSError as e:
        log.warning("dtype auto: could not cache the measurement in %s (%s)", path, e)


_CHOICES: dict[str, AutoChoice] = {}
"""This process's answers, by device key: a process measures or reads the cache once per device."""


def auto_choice(device: str | torch.device = "cpu", refresh: bool = False) -> AutoChoice:
    """What ``auto`` means on ``device``: bfloat16 where a measurement there says its matmuls are at
    least :data:`BF16_MARGIN` times as fast as float32, else float32 (see the module docstring).

    ``refresh`` measures again and replaces the cached answer."""
    device = torch.device(device)
    key = device_key(device)
    if key in _CHOICES and not refresh:
        return _CHOICES[key]
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported(including_emulation=False)
        choice = AutoChoice("bfloat16" if native else "float32", key,
                            basis="native bfloat16 on this GPU" if native else "no native bfloat16 on this GPU")
    else:
        path = cache_path()
        entry = None if refresh else _read_cache(path).get(key)
        basis = "cached"
        if not (isinstance(entry, dict) and {"bfloat16_gflops", "float32_gflops"} <= entry.keys()):
            bf16, fp32 = measure_matmuls(device)
            entry = {"bfloat16_gflops": round(bf16, 2), "float32_gflops": round(fp32, 2),
                     "matmul": list(MATMUL_SHAPE), "threads": torch.get_num_threads(),
                     "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
            _write_cache(path, key, entry)
            basis = "measured"
        bf16, fp32 = float(entry["bfloat16_gflops"]), float(entry["float32_gflops"])
        choice = AutoChoice("bfloat16" if bf16 >= BF16_MARGIN * fp32 else "float32", key, bf16, fp32, basis, str(path))
    log.info("%s", choice.describe())
    _CHOICES[key] = choice
    return choice


def resolve_dtype(name: str | torch.dtype, device: str | torch.device = "cpu") -> torch.dtype:
    """``auto`` -> what :func:`auto_choice` measured for ``device``; other names as written."""
    if isinstance(name, torch.dtype):
        return name
    if name == "auto":
        return DTYPES[auto_choice(device).dtype]
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(CHOICES)}, got {name!r}")
    return DTYPES[name]


def dtype_name(dtype: torch.dtype) -> str:
    return {torch.float32: "float32", torch.bfloat16: "bfloat16"}.get(dtype, str(dtype).removeprefix("torch."))


def _to_bf16(_module, args):
    return (args[0].to(torch.bfloat16), *args[1:])


def _to_fp32(_module, _args, output):
    return output.float()


def bf16_matmuls(model: nn.Module, keep: Iterable[nn.Module] = ()) -> nn.Module:
    """Run ``model``'s linear layers in bfloat16 and everything else in float32 (inference).

    Each ``nn.Linear`` (except those in ``keep``, e.g. the reward head) stores bf16 weights, casts its
    input to bf16 and returns fp32, so matmuls (most of the cost) run at the bf16 rate while the
    residual stream, norms and softmax keep fp32 precision. Unlike ``torch.autocast`` the weights are
    cast once, not on every call. Modifies ``model`` in place and returns it.
    """
    skip = {id(m) for m in keep if m is not None}
    for module in model.modules():
        if isinstance(module, nn.Linear) and id(module) not in skip:
            module.to(torch.bfloat16)
            module.register_forward_pre_hook(_to_bf16)
            module.register_forward_hook(_to_fp32)
    model._rewardlab_matmul_dtype = torch.bfloat16
    return model


def compute_dtype(model: nn.Module) -> torch.dtype:
    """The dtype ``model`` computes its matmuls in: bf16 after :func:`bf16_matmuls`, else its parameters'."""
    return getattr(model, "_rewardlab_matmul_dtype", None) or next(model.parameters()).dtype
