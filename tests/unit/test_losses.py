"""Bradley-Terry losses against arithmetic written out by hand.

Comparisons keep ``assert_close``'s float32 defaults (rtol 1.3e-6, about 11 ulps, and atol 1e-5): a
handful of correctly rounded fp32 operations on O(1) numbers, against float64 arithmetic, stay well
within them on any machine (see tests/fp32.py for computations long enough to need more)."""

import math

import pytest
import torch
from torch.testing import assert_close

from rewardlab.losses import bradley_terry_loss, center_penalty


def _logsig(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_plain_bt_matches_hand_computation():
    c, r = torch.tensor([1.0, 0.5]), torch.tensor([0.0, 1.5])
    # deltas 1.0 and -1.0: -log σ(1) = 0.313262, -log σ(-1) = 1.313262
    expected = (-_logsig(1.0) - _logsig(-1.0)) / 2
    assert_close(bradley_terry_loss(c, r), torch.tensor(expected))
    assert_close(torch.tensor(expected), torch.tensor((0.3132617 + 1.3132617) / 2), atol=1e-6, rtol=0)


def test_margin_shifts_the_gap():
    c, r, m = torch.tensor([2.0]), torch.tensor([0.0]), torch.tensor([1.5])
    assert_close(bradley_terry_loss(c, r, margin=m), torch.tensor(-_logsig(0.5)))


def test_label_smoothing_mixes_both_directions():
    c, r, eps = torch.tensor([1.0]), torch.tensor([0.0]), 0.1
    expected = -(0.9 * _logsig(1.0) + 0.1 * _logsig(-1.0))
    assert_close(bradley_terry_loss(c, r, label_smoothing=eps), torch.tensor(expected))


def test_center_penalty_adds_mean_square_of_sums():
    c, r = torch.tensor([1.0, 2.0]), torch.tensor([0.0, -1.0])
    # sums 1 and 1 -> penalty 1.0; deltas 1 and 3
    assert_close(center_penalty(c, r), torch.tensor(1.0))
    expected = (-_logsig(1.0) - _logsig(3.0)) / 2 + 0.01 * 1.0
    assert_close(bradley_terry_loss(c, r, center_coef=0.01), torch.tensor(expected))


def test_gradient_of_plain_bt_is_sigmoid_of_minus_delta():
    c = torch.tensor([0.3], requires_grad=True)
    r = torch.tensor([0.1], requires_grad=True)
    bradley_terry_loss(c, r).backward()
    s = 1 / (1 + math.exp(0.2))  # σ(-0.2)
    assert_close(c.grad, torch.tensor([-s]))
    assert_close(r.grad, torch.tensor([s]))


def test_bad_shapes_and_smoothing_raise():
    with pytest.raises(ValueError, match="batch"):
        bradley_terry_loss(torch.zeros(2, 1), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="label_smoothing"):
        bradley_terry_loss(torch.zeros(2), torch.zeros(2), label_smoothing=0.5)
