"""Frozen-backbone heads train on standardised features and are saved reading raw ones."""

from __future__ import annotations

import pytest
import torch

from rewardlab.models.scalar import HeadConfig, make_head
from rewardlab.train.data import FeatureDataset, HeadForward, feature_stats


def features(n: int = 32, hidden: int = 12, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scale = torch.ones(hidden)
    scale[3] = 400.0  # one massive dimension, as frozen LMs have
    return torch.randn(n, hidden, generator=g) * scale + 5.0


def test_stats_cover_both_sides_and_leave_constant_dimensions_alone():
    c, r = features(seed=1), features(seed=2)
    c[:, 0] = r[:, 0] = 7.0
    mean, std = feature_stats(FeatureDataset(c, r, torch.zeros(32)))
    both = torch.cat([c, r]).double()
    torch.testing.assert_close(mean, both.mean(0).float())
    assert std[0] == 1.0 and std[3] > 100


@pytest.mark.parametrize("head_type", ["linear", "mlp"])
def test_folding_keeps_every_comparison(head_type):
    torch.manual_seed(0)
    head = make_head(12, HeadConfig(head_type, [8]))
    c, r = features(seed=1), features(seed=2)
    module = HeadForward(head, *feature_stats(FeatureDataset(c, r, torch.zeros(32))))
    before = module(c) - module(r)
    before_c = module(c)
    folded = module.fold()
    raw = folded(c).squeeze(-1) - folded(r).squeeze(-1)
    # fp32: a few ulps of rewards of this size; the tolerance is far below any reward difference here
    torch.testing.assert_close(raw, before, atol=1e-4 * before.abs().max().item(), rtol=0)
    if head_type == "mlp":  # the bias takes the mean: the same rewards, not only the same differences
        torch.testing.assert_close(folded(c).squeeze(-1), before_c, atol=1e-4 * before_c.abs().max().item(), rtol=0)
    torch.testing.assert_close(module(c) - module(r), raw)  # the module itself now reads raw features
