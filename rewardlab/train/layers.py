"""Which parts of the backbone train: LoRA adapters, and ``model.train_layers`` (only the last N blocks)."""

from __future__ import annotations

import logging

import torch

from rewardlab.config import ConfigError, Recipe

log = logging.getLogger("rewardlab")


def apply_lora(model, recipe: Recipe, task_type: str = "SEQ_CLS"):
    """Wrap ``model`` in LoRA adapters as ``model.lora_*`` and ``model.train_layers`` say; a reward head
    (``score``) is trained in full. ``task_type`` is peft's: ``SEQ_CLS`` for reward models,
    ``CAUSAL_LM`` for judges and policies."""
    from peft import LoraConfig, get_peft_model

    m = recipe.model
    targets = (
        "all-linear" if m.lora_targets == "all-linear" else [s.strip() for s in m.lora_targets.split(",")]
    )
    top = top_layers(model, m.train_layers)
    if top is not None and targets == "all-linear":  # peft takes a layer subset only with named targets
        targets = sorted({name.rsplit(".", 1)[-1] for name, mod in blocks_of(model).named_modules()
                          if isinstance(mod, torch.nn.Linear)})
    cfg = LoraConfig(
        task_type=task_type,
        r=m.lora_r,
        lora_alpha=m.lora_alpha,
        lora_dropout=m.lora_dropout,
        target_modules=targets,
        modules_to_save=["score"] if hasattr(model, "score") else None,
        layers_to_transform=top,
    )
    return get_peft_model(model, cfg)


def blocks_of(model) -> torch.nn.ModuleList:
    """The transformer blocks: the ModuleList with ``config.num_hidden_layers`` entries."""
    n = getattr(model.config, "num_hidden_layers", None)
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return module
    raise ConfigError(f"model.train_layers: cannot find the {n} transformer blocks of {type(model).__name__}")


def top_layers(model, n: int) -> list[int] | None:
    """Indices of the last ``n`` blocks, or ``None`` for all of them."""
    total = model.config.num_hidden_layers
    if not n or n >= total:
        return None
    return list(range(total - n, total))


def freeze_lower_layers(model, n: int) -> None:
    """Full fine-tuning of the last ``n`` blocks only: everything before them stops requiring grad."""
    top = top_layers(model, n)
    if top is None:
        return
    blocks = blocks_of(model)
    keep = {id(p) for i in top for p in blocks[i].parameters()}
    after = False  # parameters registered after the blocks (final norm, heads) keep training
    for param in model.parameters():
        if id(param) in keep:
            after = True
            continue
        if not after:
            param.requires_grad_(False)
    log.info("training the last %d of %d blocks", n, len(blocks))
