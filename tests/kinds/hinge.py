"""A reward-model kind defined outside rewardlab, in this one file: a scalar reward model with its own head
(a tanh bottleneck, ``hidden → 8 → 1``) trained with a hinge loss, ``max(0, m − (r_chosen − r_rejected))``.

It registers the kind and its variant when imported; ``REWARDLAB_PLUGINS=tests/kinds/hinge.py`` makes every
command import it. Nothing else in rewardlab names it (tests/e2e/test_new_kind.py drives it)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rewardlab.kinds import register_kind
from rewardlab.kinds.scalar import ScalarKind
from rewardlab.models.scalar import META_KEY, build_reward_model, load_scalar_model
from rewardlab.variants import Variant, register_variant


class TanhHead(nn.Sequential):
    def __init__(self, hidden: int) -> None:
        super().__init__(nn.Linear(hidden, 8), nn.Tanh(), nn.Linear(8, 1))


@register_variant("hinge")
@dataclass
class Hinge(Variant):
    kind = "hinge"
    description = "hinge loss on a tanh-bottleneck head (a kind defined in tests/kinds/hinge.py)"
    margin: float = 1.0
    """The reward gap below which a pair still costs loss."""

    def loss(self, chosen: torch.Tensor, rejected: torch.Tensor, margin: torch.Tensor | None = None) -> torch.Tensor:
        return torch.relu(self.margin - (chosen - rejected)).mean()


@register_kind
class HingeKind(ScalarKind):
    name = "hinge"

    def build_model(self, base, tok, head, dtype, trust, num_layers=0):
        model = build_reward_model(base, tok, head, dtype, trust, num_layers)
        model.score = TanhHead(model.config.get_text_config().hidden_size).to(dtype)
        setattr(model.config, META_KEY, {**getattr(model.config, META_KEY), "kind": self.name})
        return model

    @staticmethod
    def load(path, dtype, trust):
        return load_scalar_model(path, dtype, trust, head=TanhHead)
