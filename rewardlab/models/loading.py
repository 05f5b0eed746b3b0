"""One loader for reward-model checkpoints, keyed on the kind the checkpoint records.

``config.json["rewardlab"]["kind"]`` (or an adapter's ``rewardlab_adapter.json`` ``kind``) names it:
none is the plain scalar reward model (:func:`rewardlab.models.scalar.load_scalar_model`), ``grm`` the
GRM, whose causal LM loads with both heads and scores with its reward head
(:func:`rewardlab.models.grm.load_grm_model`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from rewardlab.assets import resolve_model_path
from rewardlab.models.checkpoint import saved_kind
from rewardlab.models.grm import KIND as GRM_KIND
from rewardlab.models.grm import load_grm_model
from rewardlab.models.scalar import load_scalar_model, warn_if_old_format

LOADERS: dict[str, Callable[[Path, torch.dtype, bool], nn.Module]] = {
    "scalar": load_scalar_model,
    GRM_KIND: load_grm_model,
}
"""Saved kind -> its loader ``(path, dtype, trust) -> model in eval mode``; a kind registered from outside
(:mod:`rewardlab.kinds`, ``REWARDLAB_PLUGINS``) adds its own through :func:`register_loader`."""


def register_loader(kind: str, loader: Callable[[Path, torch.dtype, bool], nn.Module]) -> None:
    """Load checkpoints that record ``kind`` with ``loader``; a kind has one loader."""
    if kind in LOADERS and LOADERS[kind] is not loader:
        raise ValueError(f"a loader for checkpoints of kind {kind!r} is already registered")
    LOADERS[kind] = loader


def load_reward_model(path: str | Path, dtype: torch.dtype = torch.float32, trust: bool = False) -> nn.Module:
    """Load a trained reward-model directory of any saved kind, in eval mode."""
    from rewardlab.plugins import load_plugins

    load_plugins()  # kinds added from outside register their loaders when imported
    path = Path(resolve_model_path(path))
    warn_if_old_format(path)
    kind = saved_kind(path) or "scalar"
    if kind not in LOADERS:
        raise ValueError(f"{path}: its checkpoint records kind {kind!r}, which is not a reward model with a "
                         f"reward head; kinds that load here: {', '.join(sorted(LOADERS))}")
    return LOADERS[kind](path, dtype, trust)
