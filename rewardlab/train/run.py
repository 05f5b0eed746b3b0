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

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoTokenizer, TrainingArguments, set_seed

from rewardlab import jsonout
from rewardlab.assets import resolve_model_path
from rewardlab.config import ConfigError, Recipe, recipe_to_dict
from rewardlab.data import load_pairs, split_pairs
from rewardlab.data.encode import ChatEncoder
from rewardlab.eval.pairwise import evaluate_pairs, write_results
from rewardlab.models.safety import ModelNotFoundError, check_checkpoint
from rewardlab.models.scalar import (
    HeadConfig,
    RewardForward,
    build_reward_model,
    head_of,
    save_reward_model,
    unwrap,
)
from rewardlab.models.scorer import ScalarScorer
from rewardlab.precision import resolve_dtype
from rewardlab.train.data import (
    FeatureCollator,
    FeatureDataset,
    HeadForward,
    PairCollator,
    require_margins,
    tokenize_pairs,
    training_packs,
)
from rewardlab.train.layers import apply_lora, freeze_lower_layers
from rewardlab.train.trainer import RewardTrainer, pair_metrics
from rewardlab.types import PreferencePair
from rewardlab.variants import VARIANTS, Variant, make_variant

log = logging.getLogger("rewardlab")


@dataclass
class PreparedData:
    train: list[PreferencePair]
    eval: list[PreferencePair]
    reports: dict


def prepare_data(recipe: Recipe) -> PreparedData:
    d = recipe.data
    train, rep = load_pairs(d.train, format=d.format, lenient=d.lenient, limit=d.train_limit or None)
    reports = {"train": rep.to_dict()}
    evals: list[PreferencePair] = []
    if d.eval:
        evals, erep = load_pairs(d.eval, format=d.format, lenient=d.lenient, limit=d.eval_size or None)
        reports["eval"] = erep.to_dict()
    elif d.eval_size:
        train, evals = split_pairs(train, eval_size=d.eval_size, seed=recipe.train.seed)
    for name, r in reports.items():
        log.info("data %s: %s", name, r)
    return PreparedData(train, evals, reports)


def _complete(ckpt: Path) -> bool:
    """The Trainer writes trainer_state.json last; a process killed while writing it leaves bad JSON."""
    if not ckpt.name.split("-")[-1].isdigit():
        return False
    try:
        json.loads((ckpt / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return True


def latest_checkpoint(ckpt_dir: Path) -> str | None:
    """The newest ``checkpoint-N`` that finished writing (its trainer_state.json reads back)."""
    done = [p for p in ckpt_dir.glob("checkpoint-*") if _complete(p)]
    if not done:
        return None
    return str(max(done, key=lambda p: int(p.name.split("-")[-1])))


def training_args(recipe: Recipe, out: Path, has_eval: bool, group_by_length: bool) -> TrainingArguments:
    t = recipe.train
    return TrainingArguments(
        output_dir=str(out / "checkpoints"),
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.lr,
        weight_decay=t.weight_decay,
        warmup_steps=t.warmup_ratio,
        lr_scheduler_type=t.scheduler,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps or -1,
        seed=t.seed,
        data_seed=t.seed,
        bf16=resolve_dtype(t.dtype, "cuda" if torch.cuda.is_available() else "cpu") == torch.bfloat16,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if (has_eval and t.eval_steps) else "no",
        eval_steps=t.eval_steps or None,
        save_strategy="steps" if t.save_steps else "no",
        save_steps=t.save_steps or 500,
        save_total_limit=t.save_total_limit,
        train_sampling_strategy="group_by_length" if group_by_length else "random",
        remove_unused_columns=False,
        report_to="none",
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
    )


def _load_tokenizer(recipe: Recipe) -> tuple[str, object]:
    base = resolve_model_path(recipe.model.path)
    where = f"model.path={recipe.model.path!r}"
    try:
        check_checkpoint(base, recipe.model.trust_checkpoint)  # before anything is read from it
    except ModelNotFoundError as e:
        raise ConfigError(f"{where}: {e}") from None
    try:
        tok = AutoTokenizer.from_pretrained(base, trust_remote_code=recipe.model.trust_checkpoint)
    except OSError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(
            f"{where}: cannot load a model from {base!r} ({first}); "
            "expected a local model directory, a cached hub id, or smollm2 / minilm"
        ) from None
    return base, tok


def _datasets(recipe: Recipe, variant: Variant, model, tok, data: PreparedData):
    """Train/eval datasets, collator, the module the Trainer drives, and the encoder stats."""
    d = recipe.data
    encoder = ChatEncoder(tok, max_length=d.max_length, min_prompt_tokens=d.min_prompt_tokens)
    train_ds = tokenize_pairs(data.train, encoder, d.train)
    eval_ds = tokenize_pairs(data.eval, encoder, d.eval or f"{d.train} (held-out)") if data.eval else None
    if variant.has_lm_head:
        from rewardlab.train.grm import lm_datasets

        train_ds, eval_ds, collator, module = lm_datasets(recipe, variant, model, train_ds, eval_ds)
        return (train_ds, eval_ds, collator, module, encoder.stats, recipe.train.group_by_length)
    if variant.frozen_backbone:
        scorer = ScalarScorer(
            model,
            tok,
            batch_tokens=recipe.train.feature_batch_tokens,
            packing="auto" if recipe.train.packing else False,
            progress=True,
        )

        def feats(ds):
            f = scorer.features(list(ds["chosen_ids"]) + list(ds["rejected_ids"]))
            n = len(ds)
            return FeatureDataset(f[:n], f[n:], torch.tensor(list(ds["margin"]), dtype=torch.float32))

        for p in unwrap(model).parameters():
            p.requires_grad_(False)
        head = head_of(model)
        for p in head.parameters():
            p.requires_grad_(True)
        return (
            feats(train_ds),
            feats(eval_ds) if eval_ds else None,
            FeatureCollator(variant.needs_margin),
            HeadForward(head),
            encoder.stats,
            False,
        )
    collator = PairCollator(training_packs(model, recipe.train.packing), model.config.pad_token_id or 0,
                            variant.needs_margin, fork=recipe.train.fork_prompts)
    return (train_ds, eval_ds, collator, RewardForward(model), encoder.stats, recipe.train.group_by_length)


def train_reward_model(recipe: Recipe, data: PreparedData | None = None) -> dict:
    """Train, save ``output_dir/final`` and ``output_dir/metrics.json``; return the metrics.

    ``data``: pairs already loaded and split (what ensemble members share); ``None`` reads the recipe's.
    With ``train.ensemble`` > 1 the members are trained instead, see :mod:`rewardlab.train.ensemble`.

    With ``train.save_steps`` and ``train.resume`` (the default), a rerun into the same ``output_dir``
    continues from the newest complete checkpoint and ends with the same weights as an uninterrupted
    run. ``metrics.json`` holds:

    - ``output_dir``, ``final_model`` (the ``final/`` directory), ``variant``, ``processes``;
    - ``resumed_from``: the checkpoint this run continued from, or null;
    - ``train_seconds``: wall time of this process's training loop;
    - ``train``: ``pairs``, ``steps`` (optimizer steps), ``loss`` (mean training loss), ``tokens``
      (of the tokenized training pairs; null for cached frozen-backbone features), ``tokens_seen`` (real
      tokens of every training batch, over all processes, epochs and resumed runs) and ``tokens_per_s``
      (tokens seen by this run / ``train_seconds``), both null for cached features;
    - ``log_history``: the Trainer's log, one entry per ``train.logging_steps`` (``loss``,
      ``grad_norm``, ``learning_rate``, ``epoch``, ``step``), plus ``eval_*`` entries with ``eval_steps``;
    - ``data``: the load report of each split; ``truncation``: what truncation did;
    - ``recipe``: every recipe key as used;
    - ``eval`` (with held-out pairs): ``accuracy`` (ties count half), ``accuracy_ties_as_loss``,
      ``n``, ``ties``, ``ci95``, ``per_subset``; the same is written to ``eval.json``.
    """
    if recipe.train.ensemble > 1:
        from rewardlab.train.ensemble import train_ensemble

        return train_ensemble(recipe)
    if VARIANTS.get(recipe.variant.name).is_generative:  # a judge: GenRM SFT or the STaR loop
        from rewardlab.train.judge import train_judge_model

        return train_judge_model(recipe)
    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    set_seed(recipe.train.seed)
    variant = make_variant(recipe.variant.name, recipe.variant.options)
    base, tok = _load_tokenizer(recipe)
    data = data or prepare_data(recipe)
    if variant.needs_margin:  # before the model loads: fail fast, with one clear line
        require_margins(data.train, variant.name, recipe.data.train)
    model = _build_model(recipe, base, tok)
    train_ds, eval_ds, collator, module, stats, grouped = _datasets(recipe, variant, model, tok, data)
    args = training_args(recipe, out, eval_ds is not None, grouped)
    trainer = RewardTrainer(
        model=module,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        data_collator=collator,
        compute_metrics=pair_metrics,
        variant=variant,
    )
    resume = (
        latest_checkpoint(out / "checkpoints") if (recipe.train.resume and recipe.train.save_steps) else None
    )
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    train_seconds = time.perf_counter() - start
    metrics = _metrics(recipe, trainer, result, train_ds, data, stats, resume, train_seconds)
    whole = gathered_model(trainer, model, lambda: _build_model(recipe, base, tok))
    if whole is not None:  # process 0
        final = save_reward_model(whole, tok, out / "final", merge=recipe.model.merge_lora, base_model=base)
        if data.eval:
            metrics["eval"] = _final_eval(final, data.eval, out, recipe)
        _write_json(out / "metrics.json", metrics)
    trainer.accelerator.wait_for_everyone()
    return metrics


def _metrics(recipe, trainer, result, train_ds, data, stats, resume, seconds) -> dict:
    """Everything ``metrics.json`` holds but the final evaluation (see :func:`train_reward_model`)."""
    out = Path(recipe.output_dir)
    tokenized = hasattr(train_ds, "column_names")  # cached frozen-backbone features are not
    return {
        "output_dir": str(out),
        "final_model": str(out / "final"),
        "variant": trainer.variant.name,
        "processes": trainer.args.world_size,
        "resumed_from": resume,
        "train_seconds": round(seconds, 2),
        "train": {
            "pairs": len(train_ds),
            "steps": result.global_step,
            "loss": result.training_loss,
            "tokens": int(sum(list(train_ds["length"]))) if tokenized else None,
            **_tokens_seen(trainer, seconds, tokenized),
        },
        "log_history": trainer.state.log_history,
        "data": data.reports,
        "truncation": stats.to_dict(),
        "recipe": recipe_to_dict(recipe),
    }


def _tokens_seen(trainer, seconds: float, tokenized: bool) -> dict:
    """Real tokens the training steps consumed (all processes, all epochs, across resumes), and the
    tokens/s of this run (tokens of this process's ``train()`` call over its wall time)."""
    if not tokenized:
        return {"tokens_seen": None, "tokens_per_s": None}
    seen = int(trainer.state.num_input_tokens_seen)
    this_run = seen - int(getattr(trainer, "_initial_num_input_tokens_seen", 0) or 0)
    return {"tokens_seen": seen, "tokens_per_s": round(this_run / seconds, 2) if seconds > 0 else None}


def _build_model(recipe: Recipe, base: str, tok) -> torch.nn.Module:
    from rewardlab.variants import VARIANTS

    head = HeadConfig(type=recipe.model.head, hidden_sizes=list(recipe.model.mlp_hidden))
    if VARIANTS.get(recipe.variant.name).has_lm_head:  # keeps the LM head (GRM)
        from rewardlab.models.grm import build_grm_model

        build = build_grm_model
    else:
        build = build_reward_model
    model = build(base, tok, head, torch.float32, recipe.model.trust_checkpoint)
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


def _write_json(path: Path, obj: dict) -> None:
    """Write then rename, so a reader (or a killed run) never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(jsonout.dumps(obj, indent=2, default=str) + "\n")
    tmp.replace(path)


def _final_eval(final: Path, pairs: list[PreferencePair], out: Path, recipe: Recipe) -> dict:
    scorer = ScalarScorer.load(  # on the GPU when there is one; dtype "auto" resolves for that device
        final,
        dtype=recipe.train.dtype,
        max_length=recipe.data.max_length,
        batch_tokens=recipe.train.feature_batch_tokens,
        progress=True,
    )
    summary, rows = evaluate_pairs(scorer, pairs, seed=recipe.train.seed)
    write_results(summary, rows, out / "eval.json")
    return summary
