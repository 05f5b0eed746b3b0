"""Per-token traces: one forward pass equals re-scoring every prefix; DPO per-token rewards add up."""

from __future__ import annotations

import pytest
import torch

from rewardlab.audit.trace import TraceError, can_trace, token_trace, trace_ids
from rewardlab.models.scalar import build_reward_model, head_of
from rewardlab.models.scorer import ScalarScorer
from rewardlab.models.trace import rescored_prefixes
from tests.component.test_scalar_model import perturb_, tokenizer_of
from tests.fp32 import forward_terms, fp32_atol, fp32_tol

LONGEST = 64
"""No conversation here is longer."""

CONVS = [
    [{"role": "user", "content": "what is the capital of france ?"},
     {"role": "assistant", "content": "paris is the capital . it is very good and really great"}],
    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello ! how are you ?"}],
    [{"role": "user", "content": "please help me"}, {"role": "assistant", "content": "no"}],
]


@pytest.fixture(scope="module")
def scorer(tiny_llama):
    tok = tokenizer_of(tiny_llama)
    model = build_reward_model(str(tiny_llama), tok).eval()
    perturb_(head_of(model), seed=0)
    return ScalarScorer(model, tok)


@pytest.mark.parametrize("packing", [True, False])
def test_trace_equals_prefix_rescoring(scorer, packing):
    scorer.packing, old = packing, scorer.packing
    try:
        traces = token_trace(scorer, CONVS)
        for t in traces:
            slow = rescored_prefixes(scorer, t.ids, start=t.prompt_len + 1)
            assert t.values.shape == slow.shape == (len(t.ids) - t.prompt_len,)
            # one forward reading every position against a forward per prefix: fp32 orders (tests/fp32.py)
            assert (t.values - slow).abs().max().item() <= fp32_atol(forward_terms(scorer.model.config, LONGEST), slow)
            assert len(t.tokens) == len(t.values)
    finally:
        scorer.packing = old


def test_trace_last_value_is_the_score(scorer):
    traces = token_trace(scorer, CONVS)
    scores = scorer.score(CONVS)  # another fp32 order of the same rewards (tests/fp32.py)
    torch.testing.assert_close(torch.tensor([t.reward for t in traces]), scores,
                               **fp32_tol(forward_terms(scorer.model.config, LONGEST), scores))
    t = traces[0]
    # The contributions telescope: their fp32 sum rounds once per term, at the values' magnitude.
    torch.testing.assert_close(t.contributions.sum(), t.values[-1] - t.start,
                               **fp32_tol(len(t.contributions), torch.cat([t.values, t.start.reshape(1)])))


def test_encoder_has_no_trace(tiny_bert):
    from transformers import AutoTokenizer

    from rewardlab.models.scalar import build_reward_model as brm

    tok = AutoTokenizer.from_pretrained(str(tiny_bert))
    s = ScalarScorer(brm(str(tiny_bert), tok), tok)
    assert not can_trace(s)
    with pytest.raises(TraceError, match="causal"):
        trace_ids(s, [[2, 5, 6, 3]], [1])


def test_dpo_token_rewards_sum_to_the_implicit_reward(tiny_llama):
    from rewardlab.models.implicit import DPOImplicitScorer
    from rewardlab.models.lm import load_causal_lm
    from tests.conftest import make_tiny_llama

    policy, tok = load_causal_lm(tiny_llama)
    ref_dir = make_tiny_llama(tiny_llama.parent / "ref-for-trace", seed=1)
    ref, _ = load_causal_lm(ref_dir)
    s = DPOImplicitScorer(policy, tok, ref, beta=0.5)
    assert can_trace(s)
    traces = token_trace(s, CONVS)
    assert all(t.kind == "token_reward" for t in traces)
    # Per-token against summed log-probabilities, batched differently: fp32 orders of two models' summed
    # log-probabilities (tests/fp32.py), of the magnitude of beta * log pi.
    logps = DPOImplicitScorer(policy, tok, beta=0.5, reduction="sum").score(CONVS)
    atol = 2 * fp32_atol(forward_terms(policy.config, LONGEST, vocab=True), logps)
    torch.testing.assert_close(torch.tensor([t.reward for t in traces]), s.score(CONVS), atol=atol, rtol=0)
