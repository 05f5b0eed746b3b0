"""The fp32 tolerances of ``tests/fp32.py`` hold on the machine the suite runs on.

The tiny llama RM's rewards and weight gradients, computed in fp32 in several orders (one and two
threads, forked pairs, a packed row, right- and left-padded batches, MLP units permuted so that
``down_proj`` sums in another order), each stay within half the tolerance of the same computation in
float64, so any two of those orders (or another CPU's) are within the tolerance of each other. If a
machine's kernels round worse than the model in ``tests/fp32.py`` assumes, this test says so,
rather than a test of packing or forking failing by a hair.
"""

from __future__ import annotations

import copy

import pytest
import torch

from rewardlab.models.batching import pad
from rewardlab.models.packing import fork_pairs, pack
from rewardlab.models.scalar import build_reward_model, head_of, reward_forward
from rewardlab.models.scorer import ScalarScorer
from tests.conftest import synthetic_pairs
from tests.fp32 import forward_terms, fp32_atol, grad_terms


@pytest.fixture(scope="module")
def rm(tiny_llama):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    model = build_reward_model(str(tiny_llama), tok).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a head of a useful size: rewards O(1)
        for p in head_of(model).parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    rows = synthetic_pairs(6, seed=3)
    convs = [[{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r[s]}]
             for r in rows for s in ("chosen", "rejected")]
    seqs = ScalarScorer(model, tok).encode(convs)
    return model, seqs[0::2], seqs[1::2]


def rewards_and_grads(model, batch):
    model.zero_grad()
    r = reward_forward(model, batch)
    (r * torch.linspace(-1, 1, r.numel(), dtype=r.dtype)).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    return r.detach(), grads


def mlp_units_permuted(model, seed: int):
    """The same function with each layer's MLP units in another order, and the map back for gradients."""
    model = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    perms = {}
    with torch.no_grad():
        for i, layer in enumerate(model.model.layers):
            p = perms[i] = torch.randperm(layer.mlp.up_proj.out_features, generator=gen)
            layer.mlp.gate_proj.weight.copy_(layer.mlp.gate_proj.weight[p])
            layer.mlp.up_proj.weight.copy_(layer.mlp.up_proj.weight[p])
            layer.mlp.down_proj.weight.copy_(layer.mlp.down_proj.weight[:, p])

    def back(grads: dict) -> dict:
        out = dict(grads)
        for i, p in perms.items():
            for name, dim in (("gate_proj", 0), ("up_proj", 0), ("down_proj", 1)):
                key = f"model.layers.{i}.mlp.{name}.weight"
                out[key] = torch.empty_like(grads[key]).index_copy_(dim, p, grads[key])
        return out

    return model, back


def test_fp32_orders_stay_within_half_the_tolerance_of_float64(rm):
    model, chosen, rejected = rm
    seqs = chosen + rejected
    config, longest, tokens = model.config, max(map(len, seqs)), sum(map(len, seqs))
    exact_r, exact_g = rewards_and_grads(copy.deepcopy(model).double(), pack(seqs))
    batches = {"forked": fork_pairs(chosen, rejected), "packed": pack(seqs), "right-padded": pad(seqs, 0),
               "left-padded": pad(seqs, 0, side="left")}
    threads = torch.get_num_threads()
    try:
        for n_threads in (1, 2):
            torch.set_num_threads(n_threads)
            for seed in (None, 1):
                m, back = (model, dict) if seed is None else mlp_units_permuted(model, seed)
                for name, batch in batches.items():
                    r, g = rewards_and_grads(m, batch)
                    g, where = back(g), f"{name}, {n_threads} threads, permutation {seed}"
                    half = fp32_atol(forward_terms(config, longest), exact_r) / 2
                    assert (r.double() - exact_r).abs().max() <= half, where
                    for k, exact in exact_g.items():
                        half = fp32_atol(grad_terms(config, longest, tokens), exact) / 2
                        assert (g[k].double() - exact).abs().max() <= half, f"{k}: {where}"
    finally:
        torch.set_num_threads(threads)
