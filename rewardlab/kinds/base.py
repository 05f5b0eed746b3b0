"""What a reward-model kind is: one class that builds its model, lays out its training batches, computes
its loss from the variant's, and loads its checkpoints. ``config.json["rewardlab"]["kind"]`` names the
kind of a saved model; variants (``rewardlab.variants``) are the registered options of a kind
(``Variant.kind``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from rewardlab.models.loading import register_loader
from rewardlab.models.scalar import HeadConfig
from rewardlab.registry import Registry


class Kind:
    """Base of every kind; the single-model training loop (:func:`rewardlab.train.single.train_single`)
    calls these hooks and nothing kind-specific."""

    name: ClassVar[str] = ""

    def build_model(self, base: str, tok, head: HeadConfig, dtype: torch.dtype, trust: bool,
                    num_layers: int = 0) -> nn.Module:
        """A fresh model on ``base`` (a directory, hub id or alias) whose config records this kind."""
        raise NotImplementedError

    def training_inputs(self, recipe, variant, model: nn.Module, tok, train_ds, eval_ds, dtype: torch.dtype,
                        features=None) -> tuple:
        """``(train, eval, collator, module, group_by_length)``: the datasets (tokenised pairs), the collator
        of their batches and the module the Trainer drives."""
        raise NotImplementedError

    def loss(self, variant, module: nn.Module, inputs: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(chosen rewards, rejected rewards, loss)`` of one batch from ``module(**inputs)``."""
        raise NotImplementedError

    def load(self, path: Path, dtype: torch.dtype, trust: bool) -> nn.Module:
        """A saved model of this kind, in eval mode, ready to score."""
        raise NotImplementedError

    def train(self, recipe, data=None) -> dict:
        """Train one model of this kind from ``recipe``: the shared single-model loop by default."""
        from rewardlab.train.single import train_single

        return train_single(self, recipe, data)


KINDS: Registry[Kind] = Registry("reward-model kind")


def register_kind(cls: type[Kind]) -> type[Kind]:
    """Class decorator: register one instance of ``cls`` under ``cls.name``, and its loader for checkpoints
    that record that kind (:func:`rewardlab.models.loading.load_reward_model`)."""
    kind = cls()
    KINDS.register(cls.name)(kind)
    if type(kind).load is not Kind.load:
        register_loader(cls.name, kind.load)
    return cls
