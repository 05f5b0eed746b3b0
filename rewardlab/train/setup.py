"""What every trainer of rewardlab shares: the recipe's data, the training device and dtype, the
Trainer's arguments, the base model's tokenizer and the precision fields of ``metrics.json``.

Scalar and GRM training (:mod:`rewardlab.train.run`), ensembles, judges and the STaR loop build on these.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoTokenizer, TrainingArguments

from rewardlab.assets import resolve_model_path
from rewardlab.config import ConfigError, Recipe
from rewardlab.data import load_pairs, split_pairs
from rewardlab.models.safety import ModelNotFoundError, check_checkpoint
from rewardlab.precision import auto_choice, dtype_name, resolve_dtype
from rewardlab.types import PreferencePair

log = logging.getLogger("rewardlab")


@dataclass
class PreparedData:
    train: list[PreferencePair]
    eval: list[PreferencePair]
    reports: dict
    extra_evals: dict[str, list[PreferencePair]] = field(default_factory=dict)
    """Further named eval sets (``data.bon_pairs``: ``ood``), reported under ``eval_sets``."""


def prepare_data(recipe: Recipe) -> PreparedData:
    d = recipe.data
    if d.bon_pairs:
        return _bon_pair_data(recipe)
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


def training_device() -> torch.device:
    """Where this process trains: its GPU when there is one (the Trainer's choice), else the CPU."""
    from accelerate import PartialState

    return PartialState().device if torch.cuda.is_available() else torch.device("cpu")


def _bon_pair_data(recipe: Recipe) -> PreparedData:
    from rewardlab.data.bon_pairs import training_splits

    d = recipe.data
    train, heldout, ood, report = training_splits(
        d.bon_pairs, d.train_limit or None, d.eval_size or None, d.bon_train_instructions or None,
        d.bon_eval_instructions or None, min_gap=d.bon_min_gap,
        heldout_fraction=d.bon_heldout_fraction, id_sources=d.bon_id_sources, ood_sources=d.bon_ood_sources,
        seed=d.bon_split_seed)
    return PreparedData(train, heldout, {"bon_pairs": report}, {"ood": ood} if ood else {})


def training_dtype(recipe: Recipe) -> torch.dtype:
    """What ``train.dtype`` means on :func:`training_device`; ``auto`` is measured there (once per machine,
    see :func:`rewardlab.precision.auto_choice`). Every process calls it: the first process of each
    machine measures and caches while the others wait, then they read its answer, so all agree."""
    from accelerate import PartialState

    with PartialState().local_main_process_first():
        return resolve_dtype(recipe.train.dtype, training_device())


def training_args(recipe: Recipe, out: Path, has_eval: bool, group_by_length: bool,
                  dtype: torch.dtype | None = None) -> TrainingArguments:
    """The Trainer's arguments; ``dtype``: the resolved training dtype (default :func:`training_dtype`)."""
    t = recipe.train
    dtype = dtype or training_dtype(recipe)
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
        bf16=dtype == torch.bfloat16,
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


def load_tokenizer(recipe: Recipe) -> tuple[str, object]:
    """The base model's path (aliases resolved, vetted by :func:`rewardlab.models.safety.check_checkpoint`)
    and its tokenizer; a path that is no model is a :class:`ConfigError` naming ``model.path``."""
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


def precision_metrics(recipe: Recipe, dtype: torch.dtype) -> dict:
    """``dtype``: what training computed in; ``dtype_auto``: what ``auto`` measured (null when a dtype
    was named)."""
    auto = auto_choice(training_device()).to_dict() if recipe.train.dtype == "auto" else None
    return {"dtype": dtype_name(dtype), "dtype_auto": auto}
