"""A tiny trained-looking scalar reward model on disk, shared by the audit, serve and TRL tests."""

from __future__ import annotations

from pathlib import Path

import torch


def make_tiny_rm(tiny_llama: Path, out: Path, seed: int = 0) -> Path:
    """A scalar RM directory on the tiny llama with a random head of a useful size (scores O(1))."""
    from transformers import AutoTokenizer

    from rewardlab.models.scalar import build_reward_model, head_of, save_reward_model

    if (out / "config.json").exists():
        return out
    tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    model = build_reward_model(str(tiny_llama), tok).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in head_of(model).parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return save_reward_model(model, tok, out)
