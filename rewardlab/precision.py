"""Numeric precision: names users write (``float32``, ``bfloat16``, ``auto``) and what they resolve to.

bfloat16 is only fast where the hardware computes in it: on CPUs with AVX-512 BF16 or AMX (recent
Intel Xeons, AMD Zen 4 and later) a bf16 matmul runs about 2-3x faster than fp32, but on CPUs without
them (AVX2-only, e.g. AMD Zen 3) PyTorch emulates it and it runs about 10x *slower*. ``auto`` picks
bfloat16 where it is fast (those CPUs, and CUDA devices that support it) and float32 elsewhere.
"""

from __future__ import annotations

import functools

import torch

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
CHOICES = ("auto", "float32", "bfloat16")
"""The names the CLI and recipes offer (``fp32``/``bf16`` are accepted as aliases)."""


@functools.cache
def bf16_is_fast(device: str = "cpu") -> bool:
    """Whether bfloat16 matmuls run natively (not emulated) on ``device`` (``"cpu"`` or ``"cuda"``)."""
    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def resolve_dtype(name: str | torch.dtype, device: str = "cpu") -> torch.dtype:
    """``auto`` -> bfloat16 where it is fast on ``device``, else float32; other names as written."""
    if isinstance(name, torch.dtype):
        return name
    if name == "auto":
        return torch.bfloat16 if bf16_is_fast(device) else torch.float32
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(CHOICES)}, got {name!r}")
    return DTYPES[name]


def dtype_name(dtype: torch.dtype) -> str:
    return {torch.float32: "float32", torch.bfloat16: "bfloat16"}.get(dtype, str(dtype).removeprefix("torch."))
