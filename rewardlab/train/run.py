"""``train_reward_model(recipe)``: data → model → Trainer → ``final/`` + ``metrics.json``.

The same recipe runs in one process or several. ``accelerate launch`` starts one process per device
and the Trainer wraps the model in DDP (or DeepSpeed / FSDP when the accelerate config says so);
``train.batch_size`` is per process, so the global batch is batch_size x grad_accum x processes.
Only process 0 writes ``final/``, ``metrics.json`` and runs the final evaluation::

    # 2 CPU processes over gloo (what the tests run), or one process per GPU over NCCL
    accelerate launch --config_file configs/accelerate/ddp_cpu.yaml -m rewardlab.cli.main train R.yaml
    # GPUs: DeepSpeed ZeRO-2 (optimizer state and gradients sharded) or FSDP (parameters sharded too);
    # set num_processes in the file to the number of GPUs
    accelerate launch --config_file configs/accelerate/deepspeed_zero2.yaml -m rewardlab.cli.main train R.yaml
    accelerate launch --config_file configs/accelerate/fsdp.yaml -m rewardlab.cli.main train R.yaml

``torchrun --nproc_per_node N -m rewardlab.cli.main train R.yaml`` works as well (plain DDP).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from transformers import set_seed

from rewardlab.config import ConfigError, Recipe
from rewardlab.data.encode import ChatEncoder
from rewardlab.models.scalar import (
    HeadConfig,
    RewardForward,
    build_reward_model,
    head_of,
    record_encoding,
    save_reward_model,
    unwrap,
)
from rewardlab.precision import dtype_name
from rewardlab.train.checkpoints import LogAtCheckpoints, latest_checkpoint
from rewardlab.train.data import (
    FeatureCollator,
    HeadForward,
    PairCollator,
    feature_dataset,
    feature_stats,
    frozen_features,
    require_margins,
    tokenize_pairs,
    training_layout,
)
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
from rewardlab.variants import VARIANTS, Variant, make_variant

log = logging.getLogger("rewardlab")


def _datasets(recipe: Recipe, variant: Variant, model, tok, data: PreparedData, dtype: torch.dtype,
              features=None):
    """Train/eval datasets, collator, the module the Trainer drives, and the encoder stats.

    ``features`` (a frozen backbone, :func:`rewardlab.train.data.frozen_features`): the head trains
    alone on the cached features of both sides."""
    d = recipe.data
    encoder = ChatEncoder(tok, max_length=d.max_length, min_prompt_tokens=d.min_prompt_tokens)
    source = d.train or d.bon_pairs
    train_ds = tokenize_pairs(data.train, encoder, source)
    eval_ds = tokenize_pairs(data.eval, encoder, d.eval or f"{source} (held-out)") if data.eval else None
    if variant.has_lm_head:
        from rewardlab.train.grm import lm_datasets

        train_ds, eval_ds, collator, module = lm_datasets(recipe, variant, model, train_ds, eval_ds, dtype)
        return (train_ds, eval_ds, collator, module, encoder.stats, recipe.train.group_by_length)
    if features is not None:
        for p in unwrap(model).parameters():
            p.requires_grad_(False)
        head = head_of(model)
        for p in head.parameters():
            p.requires_grad_(True)
        train_features = feature_dataset(features, train_ds)
        return (
            train_features,
            feature_dataset(features, eval_ds) if eval_ds else None,
            FeatureCollator(variant.needs_margin),
            HeadForward(head, *feature_stats(train_features)),
            encoder.stats,
            False,
        )
    fork = recipe.train.fork_prompts and recipe.model.pooling == "last"  # a mean needs each side's own prompt
    collator = PairCollator(training_layout(model, recipe.train.packing, fork), model.config.pad_token_id or 0,
                            variant.needs_margin)
    return (train_ds, eval_ds, collator, RewardForward(model), encoder.stats, recipe.train.group_by_length)


def train_reward_model(recipe: Recipe, data: PreparedData | None = None) -> dict:
    """Train, save ``output_dir/final`` and ``output_dir/metrics.json``; return the metrics.

    ``data``: pairs already loaded and split (what ensemble members share); ``None`` reads the recipe's.
    With ``train.ensemble`` > 1 the members are trained instead, see :mod:`rewardlab.train.ensemble`.

    With ``train.save_steps`` and ``train.resume`` (the default), a rerun into the same ``output_dir``
    continues from the newest checkpoint whose files are whole (a damaged newer one is passed over, with a
    warning: :func:`rewardlab.train.checkpoints.latest_checkpoint`) and ends with the same weights and
    ``train.loss`` as an uninterrupted run. What ``metrics.json`` holds: :mod:`rewardlab.train.report`.
    """
    if recipe.train.ensemble > 1:
        from rewardlab.train.ensemble import train_ensemble

        return train_ensemble(recipe, train_reward_model)
    kind = VARIANTS.get(recipe.variant.name)
    if kind.is_generative and kind.self_improving:  # a judge trained on its own rationales
        from rewardlab.train.star import run_star

        return run_star(recipe)
    if kind.is_generative:  # a judge: GenRM SFT
        from rewardlab.train.judge import train_judge_model

        return train_judge_model(recipe)
    return _train_one(recipe, data)


def _train_one(recipe: Recipe, data: PreparedData | None) -> dict:
    """One scalar or GRM reward model: build, train, save ``final/``, evaluate, write ``metrics.json``."""
    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    set_seed(recipe.train.seed)
    variant = make_variant(recipe.variant.name, recipe.variant.options)
    base, tok = load_tokenizer(recipe)
    data = data or prepare_data(recipe)
    if variant.needs_margin:  # before the model loads: fail fast, with one clear line
        require_margins(data.train, variant.name, recipe.data.train or recipe.data.bon_pairs)
    model = _build_model(recipe, base, tok)
    dtype = training_dtype(recipe)
    log.info("training in %s%s", dtype_name(dtype), " mixed precision" if dtype == torch.bfloat16 else "")
    features = frozen_features(recipe, model, tok) if variant.frozen_backbone else None
    train_ds, eval_ds, collator, module, stats, grouped = _datasets(recipe, variant, model, tok, data, dtype,
                                                                    features)
    args = training_args(recipe, out, eval_ds is not None, grouped, dtype)
    trainer = RewardTrainer(
        model=module,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        data_collator=collator,
        compute_metrics=pair_metrics,
        variant=variant,
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
    whole = gathered_model(trainer, model, lambda: _build_model(recipe, base, tok))
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


def _build_model(recipe: Recipe, base: str, tok) -> torch.nn.Module:
    from rewardlab.variants import VARIANTS

    head = HeadConfig(type=recipe.model.head, hidden_sizes=list(recipe.model.mlp_hidden), pooling=recipe.model.pooling)
    if VARIANTS.get(recipe.variant.name).has_lm_head:  # keeps the LM head (GRM)
        from rewardlab.models.grm import build_grm_model

        build = build_grm_model
    else:
        build = build_reward_model
    layers = {"num_layers": recipe.model.num_layers} if recipe.model.num_layers else {}
    try:
        model = build(base, tok, head, torch.float32, recipe.model.trust_checkpoint, **layers)
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
