"""Training inputs of variants with an LM head (GRM): response masks and the reference cache.

The DPO regulariser compares the LM head with the initial model. That reference is never held as a
second copy of the model: its summed response log-probabilities are computed once, before the first
update, in one inference pass over the tokenized pairs, and stored as dataset columns
(``ref_chosen_logps``, ``ref_rejected_logps``) that the collator hands to the loss.
"""

from __future__ import annotations

import logging
import time

import torch

from rewardlab.models.grm import GRMForward, pair_response_logps
from rewardlab.models.scalar import unwrap
from rewardlab.train.data import PairCollator, training_layout
from rewardlab.variants import Variant

log = logging.getLogger("rewardlab")


def add_reference_logps(ds, model: torch.nn.Module, batch_tokens: int = 8192, packing: bool = True,
                        autocast_dtype: torch.dtype | None = None):
    """``ds`` with ``ref_chosen_logps`` / ``ref_rejected_logps`` columns: summed response log-probabilities
    under ``model`` as it is now (call it before training, so it is the initial model). A pair's shared
    prompt runs once for both responses."""
    with _without_identity_adapters(model):
        c, r = pair_response_logps(model, list(ds["chosen_ids"]), list(ds["rejected_ids"]),
                                   list(ds["chosen_prompt_len"]), list(ds["rejected_prompt_len"]), batch_tokens,
                                   packing, autocast_dtype)
    return ds.add_column("ref_chosen_logps", c.tolist()).add_column("ref_rejected_logps", r.tolist())


def _without_identity_adapters(model: torch.nn.Module):
    """Bypass LoRA adapters that are still at their initialisation (every ``lora_B`` zero, so they add
    exactly nothing): the reference pass then skips their cost. Adapters
    that already learned something (a resumed or loaded adapter) stay on."""
    import contextlib

    if not hasattr(model, "disable_adapter"):
        return contextlib.nullcontext()
    lora_b = [p for name, p in model.named_parameters() if "lora_B" in name]
    dora = any(getattr(cfg, "use_dora", False) for cfg in getattr(model, "peft_config", {}).values())
    if not lora_b or dora or any(bool(p.detach().any()) for p in lora_b):
        return contextlib.nullcontext()
    return model.disable_adapter()


def lm_datasets(recipe, variant: Variant, model: torch.nn.Module, train_ds, eval_ds, dtype: torch.dtype):
    """Datasets (with the reference cache when the variant needs one), collator and the module the
    Trainer drives, for a variant with ``has_lm_head``. Returns ``(train, eval, collator, module)``.

    ``dtype``: the training dtype (``train.dtype`` resolved for the training device); the reference pass
    runs under the same autocast as training."""
    from accelerate import PartialState

    layout = training_layout(model, recipe.train.packing)
    packing = layout == "pack"
    if variant.needs_reference:
        model.to(PartialState().device)  # where the Trainer will train it
        autocast = torch.bfloat16 if dtype == torch.bfloat16 else None
        start = time.perf_counter()
        kw = {"batch_tokens": recipe.train.feature_batch_tokens, "packing": packing, "autocast_dtype": autocast}
        train_ds = add_reference_logps(train_ds, model, **kw)
        if eval_ds is not None and recipe.train.eval_steps:  # the Trainer evaluates the loss too
            eval_ds = add_reference_logps(eval_ds, model, **kw)
        log.info("reference log-probabilities cached in %.1f s", time.perf_counter() - start)
    collator = PairCollator(
        layout,
        unwrap(model).config.pad_token_id or 0,
        variant.needs_margin,
        response_mask="both" if variant.needs_rejected_logps else "chosen",
        with_reference=variant.needs_reference,
    )
    return train_ds, eval_ds, collator, GRMForward(model)
