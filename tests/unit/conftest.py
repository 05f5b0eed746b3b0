"""Shared by the unit tests of packed and batched forwards: a tiny llama RM whose rewards are O(1),
mixed-length sequences, the reward of a sequence run alone, and the fp32 tolerance between them."""

from __future__ import annotations

import pytest
import torch

from rewardlab.models.batching import PaddedBatch
from rewardlab.models.scalar import build_reward_model, head_of, reward_forward
from tests.fp32 import forward_terms, fp32_tol

# Lengths 1 .. 33 tokens: a one-token sequence, odd lengths, and one longer than the rest together.
LENGTHS = [4, 1, 9, 17, 33, 2]


def tol(model, ref: torch.Tensor) -> dict:
    """One fp32 computation of rewards (or of the hidden states the head reads) against another order
    of it: what fp32 promises for values of ``ref``'s magnitude from the model's shape (tests/fp32.py).
    Where the two computations do the same sums, the difference should even be 0; a leak across
    sequences moves a score by far more."""
    return fp32_tol(forward_terms(model.config, max(LENGTHS)), ref)


@pytest.fixture(scope="module")
def rm(tiny_llama):
    """A linear-head RM on the tiny llama with a head scaled up so rewards are O(1), not O(0.01)."""
    from transformers import AutoTokenizer

    model = build_reward_model(str(tiny_llama), AutoTokenizer.from_pretrained(tiny_llama)).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        head_of(model).weight.normal_(0.0, 1.0)
    return model


@pytest.fixture(scope="module")
def seqs() -> list[list[int]]:
    g = torch.Generator().manual_seed(1)
    return [torch.randint(4, 60, (n,), generator=g).tolist() for n in LENGTHS]


def alone(model, seq: list[int]) -> torch.Tensor:
    """The reward of one sequence run by itself: no padding, no packing, no other sequence."""
    ids = torch.tensor([seq])
    return reward_forward(model, PaddedBatch(ids, torch.ones_like(ids)))[0]


