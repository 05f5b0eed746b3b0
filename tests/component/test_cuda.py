"""The CUDA paths: every batch layout, forked pairs, the GRM reference pass, bf16 scoring and device
placement on a GPU, against the same computation on the CPU. Skipped where there is no CUDA device."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.testing import assert_close

from rewardlab.models.batching import choose_layout, make_batch, pad
from rewardlab.models.packing import flex_available, fork_pairs
from rewardlab.models.scalar import build_reward_model, head_of, reward_forward, save_reward_model
from rewardlab.models.scorer import ScalarScorer, for_scoring
from tests.conftest import synthetic_pairs
from tests.fp32 import forward_terms, fp32_atol, fp32_tol, grad_terms

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
LONGEST = 64


@pytest.fixture(scope="module")
def device() -> torch.device:
    """The GPU the tests run on: the current CUDA device (whichever index CUDA_VISIBLE_DEVICES makes it)."""
    return torch.device("cuda", torch.cuda.current_device())


@pytest.fixture(scope="module")
def rm(tiny_llama):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    model = build_reward_model(str(tiny_llama), tok).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        head_of(model).weight.copy_(torch.randn(head_of(model).weight.shape, generator=g))
    return model, tok


@pytest.fixture(scope="module")
def seqs(rm):
    model, tok = rm
    rows = synthetic_pairs(6, seed=3)
    convs = [[{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r[side]}]
             for r in rows for side in ("chosen", "rejected")]
    return ScalarScorer(model, tok).encode(convs)


def tol(model, ref):
    return fp32_tol(forward_terms(model.config, LONGEST), ref)


def on_cpu_alone(model, seqs):
    with torch.no_grad():
        return torch.stack([reward_forward(model, pad([s], 0))[0] for s in seqs])


def test_every_layout_on_the_gpu_scores_like_the_cpu(rm, seqs, device):
    model, tok = rm
    ref = on_cpu_alone(model, seqs)
    gpu = copy.deepcopy(model).to(device)
    assert choose_layout(gpu, device) == ("pack" if flex_available() else "pad")
    for packing in (True, False):
        scorer = ScalarScorer(gpu, tok, packing=packing, batch_tokens=80)  # several batches
        assert scorer.device.type == "cuda" and scorer.packing is packing
        assert_close(scorer.score_ids(seqs), ref, **tol(model, ref), msg=f"packing={packing}")


def test_forked_pairs_on_the_gpu_give_the_rewards_and_gradients_of_separate_sequences(rm, seqs, device):
    model, _ = rm
    gpu = copy.deepcopy(model).to(device).train()
    chosen, rejected = seqs[0::2], seqs[1::2]
    runs = []
    for batch in (fork_pairs(chosen, rejected), make_batch(chosen + rejected, "pack")):
        gpu.zero_grad()
        r = reward_forward(gpu, batch.to(device))
        (r * torch.linspace(-1, 1, r.numel(), device=device)).sum().backward()
        runs.append((r.detach().cpu(), head_of(gpu).weight.grad.detach().cpu().clone()))
    (forked, g_forked), (separate, g_separate) = runs
    assert_close(forked, separate, **tol(model, separate))
    assert_close(forked, on_cpu_alone(model, chosen + rejected), **tol(model, separate))
    terms = grad_terms(model.config, LONGEST, sum(map(len, seqs)))
    assert (g_forked - g_separate).abs().max() <= fp32_atol(terms, g_separate)


def test_grm_reference_pass_on_the_gpu_matches_the_cpu(tiny_llama, rm, device):
    from rewardlab.models.grm import build_grm_model, pair_response_logps

    _, tok = rm
    grm = build_grm_model(str(tiny_llama), tok).eval()
    chosen = [[2, 10, 11, 12, 3], [2, 20, 21, 3], [2, 15, 16, 17, 18, 19, 3]]
    rejected = [[2, 10, 11, 30, 31, 32, 3], [2, 22, 23, 3], [2, 15, 16, 17, 40]]
    pc, pr = [3, 2, 4], [3, 3, 4]
    cpu = pair_response_logps(grm, chosen, rejected, pc, pr)
    gpu = pair_response_logps(copy.deepcopy(grm).to(device), chosen, rejected, pc, pr)
    terms = forward_terms(grm.config, LONGEST, vocab=True)
    for a, b in zip(gpu, cpu, strict=True):
        assert_close(a, b, **fp32_tol(terms, b))


def test_bf16_scoring_on_the_gpu_keeps_the_ranking(rm, seqs, device):
    model, tok = rm
    ref = on_cpu_alone(model, seqs)
    bf16 = ScalarScorer(for_scoring(copy.deepcopy(model), torch.bfloat16).to(device), tok)
    assert bf16.dtype == torch.bfloat16
    got = bf16.score_ids(seqs)
    ranks = lambda x: x.argsort().argsort().double()  # noqa: E731
    ra, rb = ranks(got) - ranks(got).mean(), ranks(ref) - ranks(ref).mean()
    assert float((ra * rb).sum() / (ra.norm() * rb.norm())) > 0.95
    assert (got - ref).abs().max() < 0.05 * (ref.max() - ref.min())  # bf16 keeps 8 bits of mantissa


def test_a_saved_model_loads_onto_the_gpu(rm, seqs, tmp_path, device):
    model, tok = rm
    save_reward_model(model, copy.deepcopy(tok), tmp_path / "rm")
    scorer = ScalarScorer.load(tmp_path / "rm", device=device)
    assert scorer.device.type == "cuda"
    ref = on_cpu_alone(model, seqs)
    assert_close(scorer.score_ids(seqs), ref, **tol(model, ref))
