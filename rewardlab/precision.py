"""Numeric precision: names users write (``float32``, ``bfloat16``, ``auto``) and what they resolve to.

bfloat16 is only fast where the hardware computes in it: on CPUs with AVX-512 BF16 or AMX (recent
Intel Xeons, AMD Zen 4 and later) a bf16 matmul runs about 2-3x faster than fp32, but on CPUs without
them (AVX2-only, e.g. AMD Zen 3) PyTorch emulates it and it runs about 10x *slower*. ``auto`` picks
bfloat16 where it is fast (those CPUs, and CUDA devices that support it) and float32 elsewhere.

Scoring in bfloat16 uses :func:`bf16_matmuls`: only the linear layers compute in bf16; the residual
stream, norms, attention and the reward head stay fp32. Casting the whole model instead rounds the
residual stream at every layer, and the ranking of rewards moves more. Spearman against fp32 with the
main job's trained SmolLM2 RM on 512 HH pairs on an H200 (``benchmarks/bench_score.py --model``,
see benchmarks/README.md): 0.99777 for the plain cast, 0.99904 for bf16 matmuls.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import torch
from torch import nn

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
