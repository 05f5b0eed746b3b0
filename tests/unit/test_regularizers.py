"""GRM's LM regularisers and their mix with Bradley-Terry, against arithmetic written out by hand.

Comparisons keep ``assert_close``'s float32 defaults (rtol 1.3e-6, about 11 ulps, and atol 1e-5): a
handful of correctly rounded fp32 operations on O(1) numbers, against float64 arithmetic, stay well
within them on any machine (see tests/fp32.py for computations long enough to need more)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from rewardlab.losses import (
    ResponseLogps,
    bradley_terry_loss,
    dpo_regularizer,
    grm_loss,
    nll_regularizer,
    sft_regularizer,
    token_logps,
)
from rewardlab.variants import make_variant


def nls(x: float) -> float:
    """−log σ(x) = log(1 + e^(−x))."""
    return math.log1p(math.exp(-x))


def test_token_logps_is_log_softmax_at_the_target():
    logits = torch.tensor([[0.0, math.log(3.0)], [1.0, 1.0]])
    # row 0: softmax = [1/4, 3/4]; row 1: [1/2, 1/2]
    assert_close(token_logps(logits, torch.tensor([1, 0])), torch.tensor([math.log(0.75), math.log(0.5)]))


def test_sft_is_minus_log_sigmoid_of_beta_times_summed_logps():
    logps = torch.tensor([-10.0, -30.0])
    expected = (nls(0.1 * -10.0) + nls(0.1 * -30.0)) / 2  # (log(1+e) + log(1+e^3)) / 2
    assert_close(sft_regularizer(logps, beta=0.1), torch.tensor(expected))
    assert expected == pytest.approx((1.3132617 + 3.0485874) / 2, abs=1e-6)


def test_nll_is_the_token_mean_over_the_batch():
    # 3 + 1 response tokens with summed log-probs -6 and -2: NLL = 8 / 4 = 2 nats per token.
    assert_close(nll_regularizer(torch.tensor([-6.0, -2.0]), torch.tensor([3.0, 1.0])), torch.tensor(2.0))


def test_dpo_with_reference():
    pc, pr = torch.tensor([-5.0, -8.0]), torch.tensor([-7.0, -6.0])
    rc, rr = torch.tensor([-6.0, -8.0]), torch.tensor([-6.0, -5.0])
    # pair 0: (−5 − −6) − (−7 − −6) = 1 + 1 = 2; pair 1: (0) − (−1) = 1
    expected = (nls(0.5 * 2.0) + nls(0.5 * 1.0)) / 2
    assert_close(dpo_regularizer(pc, pr, rc, rr, beta=0.5), torch.tensor(expected))


def test_dpo_without_reference_uses_the_policy_gap_alone():
    pc, pr = torch.tensor([-5.0, -8.0]), torch.tensor([-7.0, -6.0])
    expected = (nls(0.1 * 2.0) + nls(0.1 * -2.0)) / 2  # = log 2 + 0.01 ... symmetric pair
    assert_close(dpo_regularizer(pc, pr, None, None, beta=0.1), torch.tensor(expected))
    zeros = torch.zeros(2)
    assert_close(dpo_regularizer(pc, pr, zeros, zeros, beta=0.1), torch.tensor(expected))


def test_dpo_needs_both_references_or_neither():
    x = torch.zeros(2)
    with pytest.raises(ValueError, match="both reference"):
        dpo_regularizer(x, x, x, None, beta=0.1)


def test_grm_loss_mixes_one_minus_alpha_bt_with_alpha_reg():
    bt, reg = torch.tensor(0.7), torch.tensor(5.0)
    assert_close(grm_loss(bt, reg, 0.01), torch.tensor(0.99 * 0.7 + 0.01 * 5.0))
    assert grm_loss(bt, reg, 0.0) is bt
    assert grm_loss(bt, torch.tensor(float("nan")), 0.0) is bt  # α = 0 never touches the regulariser
    with pytest.raises(ValueError, match="alpha"):
        grm_loss(bt, reg, 1.5)


@pytest.mark.parametrize(
    ("name", "options", "reg"),
    [
        ("grm_sft", {}, nls(0.1 * -4.0)),  # mean over pairs of -log σ(β·(-4)), β default 0.1
        ("grm_sft", {"nll": True}, 4.0 / 2.0),  # -(-4 + -4) / (2 + 2) tokens
        ("grm_dpo", {}, nls(0.1 * ((-4.0 - -5.0) - (-6.0 - -6.0)))),
        ("grm_dpo_noref", {}, nls(0.1 * (-4.0 - -6.0))),
    ],
)
def test_variants_combine_bt_and_their_regulariser(name, options, reg):
    chosen, rejected = torch.tensor([1.0, 0.5]), torch.tensor([0.0, 1.0])
    lm = ResponseLogps(
        chosen=torch.tensor([-4.0, -4.0]),
        chosen_tokens=torch.tensor([2.0, 2.0]),
        rejected=torch.tensor([-6.0, -6.0]),
        ref_chosen=torch.tensor([-5.0, -5.0]),
        ref_rejected=torch.tensor([-6.0, -6.0]),
    )
    v = make_variant(name, options)
    bt = (nls(1.0) + nls(-0.5)) / 2
    assert_close(v.lm_loss(chosen, rejected, lm), torch.tensor(0.99 * bt + 0.01 * reg))
    assert v.alpha == 0.01 and v.beta == 0.1  # the paper's released defaults
    v0 = make_variant(name, {**options, "alpha": 0.0})
    # exact by construction: α = 0 weighs the regulariser by an exact zero, and 1 - α is exactly 1
    assert_close(v0.lm_loss(chosen, rejected, lm), bradley_terry_loss(chosen, rejected), rtol=0, atol=0)


def test_capabilities():
    sft, dpo, noref = (make_variant(n) for n in ("grm_sft", "grm_dpo", "grm_dpo_noref"))
    assert sft.has_lm_head and dpo.has_lm_head and noref.has_lm_head
    assert (sft.needs_reference, dpo.needs_reference, noref.needs_reference) == (False, True, False)
    assert (sft.needs_rejected_logps, dpo.needs_rejected_logps, noref.needs_rejected_logps) == (False, True, True)
    assert not make_variant("bt").has_lm_head


@pytest.mark.parametrize(("options", "match"), [({"alpha": -0.1}, "alpha"), ({"beta": 0.0}, "beta")])
def test_bad_options_name_the_key(options, match):
    with pytest.raises(ValueError, match=f"variant.{match}"):
        make_variant("grm_dpo", options)
