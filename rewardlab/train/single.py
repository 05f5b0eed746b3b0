"""One reward model trained end to end: data → model → Trainer → ``final/`` + ``metrics.json``, for any
kind (:mod:`rewardlab.kinds`): the kind builds the model, lays out the batches and computes the loss."""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path

import torch
from transformers import set_seed

from rewardlab.config import ConfigError, Recipe
from rewardlab.data.encode import ChatEncoder
from rewardlab.models.scalar import HeadConfig, head_of, record_encoding, save_reward_model
from rewardlab.precision import dtype_name
from rewardlab.train.checkpoints import LogAtCheckpoints, latest_checkpoint
from rewardlab.train.data import HeadForward, frozen_features, require_margins, tokenize_pairs
from rewardlab.train.layers import apply_lora, freeze_lower_layers
from rewardlab.train.report import final_evals, run_metrics, write_json
from rewardlab.train.setup import (
    PreparedData,
    load_tokenizer,
    precision_metrics,
    prepare_data,
    training_args,
    training_dtype,
)
from rewardlab.train.trainer import RewardTrainer, pair_metrics
from rewardlab.variants import make_variant

log = logging.getLogger("rewardlab")


def train_single(kind, recipe: Recipe, data: PreparedData | None = None) -> dict:
    """One reward model of ``kind`` (a :class:`rewardlab.kinds.Kind`): build, train, save ``final/``, evaluate, write ``metrics.json``. The
    kind's hooks build the model, lay out the batches and compute the loss; nothing here depends on it."""
    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    set_seed(recipe.train.seed)
    variant = make_variant(recipe.variant.name, recipe.variant.options)
    base, tok = load_tokenizer(recipe)
    data = data or prepare_data(recipe)
    if variant.needs_margin:  # before the model loads: fail fast, with one clear line
        require_margins(data.train, variant.name, recipe.data.train or recipe.data.bon_pairs)
    model = build_model(recipe, base, tok, kind)
    dtype = training_dtype(recipe)
    log.info("training in %s%s", dtype_name(dtype), " mixed precision" if dtype == torch.bfloat16 else "")
    features = frozen_features(recipe, model, tok) if variant.frozen_backbone else None
    d = recipe.data
    encoder = ChatEncoder(tok, max_length=d.max_length, min_prompt_tokens=d.min_prompt_tokens)
    source = d.train or d.bon_pairs
    train_ds = tokenize_pairs(data.train, encoder, source)
    eval_ds = tokenize_pairs(data.eval, encoder, d.eval or f"{source} (held-out)") if data.eval else None
    train_ds, eval_ds, collator, module, grouped = kind.training_inputs(recipe, variant, model, tok, train_ds,
                                                                        eval_ds, dtype, features)
    stats = encoder.stats
    args = training_args(recipe, out, eval_ds is not None, grouped, dtype)
    trainer = RewardTrainer(
        model=module,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        data_collator=collator,
        compute_metrics=pair_metrics,
        variant=variant,
        loss=functools.partial(kind.loss, variant),
    )
    if recipe.train.save_steps:  # a resumed run needs the loss logged at its checkpoint's step
        trainer.add_callback(LogAtCheckpoints())
    resume = (
        latest_checkpoint(out / "checkpoints") if (recipe.train.resume and recipe.train.save_steps) else None
    )
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    train_seconds = time.perf_counter() - start
    metrics = run_metrics(recipe, trainer, result, train_ds, data, stats, resume, train_seconds)
    metrics["train"].update(precision_metrics(recipe, dtype))
    whole = gathered_model(trainer, model, lambda: build_model(recipe, base, tok, kind))
    if isinstance(module, HeadForward) and whole is not None:  # the saved head reads raw features
        head_of(whole).load_state_dict(module.fold().state_dict())
    if whole is not None:  # process 0
        record_encoding(whole, recipe.data.max_length, recipe.data.min_prompt_tokens)
        final = save_reward_model(whole, tok, out / "final", merge=recipe.model.merge_lora, base_model=base)
        if features is not None:  # the trained head on the cached features: no backbone pass for known texts
            features.head = head_of(whole)
        metrics.update(final_evals(final, data, out, recipe, dtype, features))
        if features is not None:
            metrics["train"]["features"] = features.cache.summary()
        write_json(out / "metrics.json", metrics)
    trainer.accelerator.wait_for_everyone()
    return metrics


def build_model(recipe: Recipe, base: str, tok, kind) -> torch.nn.Module:
    """The model ``recipe`` trains, built by ``kind`` (a :class:`rewardlab.kinds.Kind`: the variant's),
    with LoRA or the lower blocks frozen as the recipe says."""
    head = HeadConfig(type=recipe.model.head, hidden_sizes=list(recipe.model.mlp_hidden), pooling=recipe.model.pooling)
    try:
        model = kind.build_model(base, tok, head, torch.float32, recipe.model.trust_checkpoint, recipe.model.num_layers)
    except ValueError as e:
        if "model.num_layers" in str(e):  # more blocks asked for than the model has: one line, not a traceback
            raise ConfigError(str(e)) from None
        raise
    if recipe.model.lora_r:
        return apply_lora(model, recipe)
    freeze_lower_layers(model, recipe.model.train_layers)
    return model


def shards_weights(trainer: RewardTrainer) -> bool:
    """FSDP and DeepSpeed ZeRO-3 leave each process only a shard of every weight."""
    if trainer.is_fsdp_enabled:
        return True
    plugin = trainer.accelerator.state.deepspeed_plugin if trainer.is_deepspeed_enabled else None
    return plugin is not None and plugin.zero_stage == 3


def gathered_model(trainer: RewardTrainer, model: torch.nn.Module, rebuild) -> torch.nn.Module | None:
    """The trained reward model with whole weights on process 0; ``None`` on the other processes.

    DDP and ZeRO-2 keep whole weights in every process: that is ``model`` itself. Under FSDP / ZeRO-3
    every process must take part in gathering them (a collective), into a fresh copy from ``rebuild()``.
    """
    if not shards_weights(trainer):
        return model if trainer.is_world_process_zero() else None
    state = trainer.accelerator.get_state_dict(trainer.model_wrapped)
    if not trainer.is_world_process_zero():
        return None
    whole = rebuild()
    # The Trainer drives a wrapper: RewardForward keeps the model under "model.", HeadForward the head.
    target, prefix = (
        (head_of(whole), "head.") if isinstance(trainer.model, HeadForward) else (whole, "model.")
    )
    target.load_state_dict(
        {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}, strict=True
    )
    return whole
