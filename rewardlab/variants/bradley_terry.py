"""Bradley-Terry scalar reward models and their known variants."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rewardlab.losses import bradley_terry_loss
from rewardlab.variants.base import Variant, register_variant


@register_variant("bt")
@dataclass
class BradleyTerry(Variant):
    description = "Bradley-Terry: -log σ(r_chosen - r_rejected)"
    center_coef: float = 0.0
    """Weight of the reward-centering penalty mean((r_c + r_r)^2); 0 disables it."""

    def loss(self, chosen, rejected, margin=None) -> torch.Tensor:
        return bradley_terry_loss(chosen, rejected, center_coef=self.center_coef)


@register_variant("bt_margin")
@dataclass
class BradleyTerryMargin(BradleyTerry):
    description = "Bradley-Terry with a per-pair margin: -log σ(r_c - r_r - scale·m)"
    needs_margin = True
    margin_scale: float = 1.0
    """Multiplier applied to each pair's margin before it enters the loss."""

    def loss(self, chosen, rejected, margin=None) -> torch.Tensor:
        if margin is None:
            raise ValueError("variant bt_margin needs a margin for every pair")
        return bradley_terry_loss(chosen, rejected, margin=self.margin_scale * margin,
                                  center_coef=self.center_coef)


@register_variant("bt_label_smoothing")
@dataclass
class BradleyTerryLabelSmoothing(BradleyTerry):
    description = "Bradley-Terry with label smoothing ε (labels flipped with probability ε)"
    label_smoothing: float = 0.1
    """ε in [0, 0.5): assumed probability that a preference label is wrong."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError(f"variant.label_smoothing must be in [0, 0.5), got {self.label_smoothing}")

    def loss(self, chosen, rejected, margin=None) -> torch.Tensor:
        return bradley_terry_loss(chosen, rejected, label_smoothing=self.label_smoothing,
                                  center_coef=self.center_coef)


@register_variant("bt_frozen")
@dataclass
class BradleyTerryFrozen(BradleyTerry):
    description = "Bradley-Terry on a frozen backbone: only the head trains, on cached features"
    frozen_backbone = True
