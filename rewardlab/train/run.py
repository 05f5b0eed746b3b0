"""``train_reward_model(recipe)``: data → model → Trainer → ``final/`` + ``metrics.json``."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoTokenizer, TrainingArguments, set_seed

from rewardlab.assets import resolve_model_path
from rewardlab.config import Recipe, recipe_to_dict
from rewardlab.data import load_pairs, split_pairs
from rewardlab.data.encode import ChatEncoder
from rewardlab.eval.pairwise import evaluate_pairs, write_results
from rewardlab.models.scalar import (
    HeadConfig,
    RewardForward,
    build_reward_model,
    head_of,
    save_reward_model,
    unwrap,
)
from rewardlab.models.scorer import ScalarScorer
from rewardlab.train.data import FeatureCollator, FeatureDataset, HeadForward, PairCollator, tokenize_pairs
from rewardlab.train.trainer import RewardTrainer, pair_metrics
from rewardlab.types import PreferencePair
from rewardlab.variants import Variant, make_variant

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


def latest_checkpoint(ckpt_dir: Path) -> str | None:
    """The newest ``checkpoint-N`` that finished writing (its trainer_state.json exists)."""
    done = [p for p in ckpt_dir.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
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
        bf16=t.dtype == "bfloat16",
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


def _apply_lora(model, recipe: Recipe):
    from peft import LoraConfig, get_peft_model

    m = recipe.model
    targets = "all-linear" if m.lora_targets == "all-linear" else [s.strip() for s in m.lora_targets.split(",")]
    cfg = LoraConfig(task_type="SEQ_CLS", r=m.lora_r, lora_alpha=m.lora_alpha, lora_dropout=m.lora_dropout,
                     target_modules=targets, modules_to_save=["score"] if hasattr(model, "score") else None)
    return get_peft_model(model, cfg)


def _datasets(recipe: Recipe, variant: Variant, model, tok, data: PreparedData):
    """Train/eval datasets, collator, the module the Trainer drives, and the encoder stats."""
    encoder = ChatEncoder(tok, max_length=recipe.data.max_length, min_prompt_tokens=recipe.data.min_prompt_tokens)
    train_ds = tokenize_pairs(data.train, encoder, variant.needs_margin)
    eval_ds = tokenize_pairs(data.eval, encoder) if data.eval else None
    if variant.frozen_backbone:
        scorer = ScalarScorer(model, tok, batch_tokens=recipe.train.feature_batch_tokens,
                              packing=recipe.train.packing, progress=True)

        def feats(ds):
            f = scorer.features(list(ds["chosen_ids"]) + list(ds["rejected_ids"]))
            n = len(ds)
            return FeatureDataset(f[:n], f[n:], torch.tensor(list(ds["margin"]), dtype=torch.float32))

        for p in unwrap(model).parameters():
            p.requires_grad_(False)
        head = head_of(model)
        for p in head.parameters():
            p.requires_grad_(True)
        return (feats(train_ds), feats(eval_ds) if eval_ds else None,
                FeatureCollator(variant.needs_margin), HeadForward(head), encoder.stats, False)
    scorer_packing = recipe.train.packing and ScalarScorer(model, tok).packing
    collator = PairCollator(scorer_packing, model.config.pad_token_id or 0, variant.needs_margin)
    return (train_ds, eval_ds, collator, RewardForward(model), encoder.stats, recipe.train.group_by_length)


def train_reward_model(recipe: Recipe) -> dict:
    """Train, save ``output_dir/final`` and ``output_dir/metrics.json``; return the metrics."""
    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    set_seed(recipe.train.seed)
    variant = make_variant(recipe.variant.name, recipe.variant.options)
    base = resolve_model_path(recipe.model.path)
    tok = AutoTokenizer.from_pretrained(base, trust_remote_code=recipe.model.trust_checkpoint)
    data = prepare_data(recipe)
    head = HeadConfig(type=recipe.model.head, hidden_sizes=list(recipe.model.mlp_hidden))
    model = build_reward_model(base, tok, head, torch.float32, recipe.model.trust_checkpoint)
    if recipe.model.lora_r:
        model = _apply_lora(model, recipe)
    train_ds, eval_ds, collator, module, stats, grouped = _datasets(recipe, variant, model, tok, data)
    args = training_args(recipe, out, eval_ds is not None, grouped)
    trainer = RewardTrainer(model=module, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                            data_collator=collator, compute_metrics=pair_metrics, variant=variant)
    resume = latest_checkpoint(out / "checkpoints") if (recipe.train.resume and recipe.train.save_steps) else None
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    train_seconds = time.perf_counter() - start
    final = save_reward_model(model, tok, out / "final", merge=recipe.model.merge_lora, base_model=base)
    metrics = {
        "output_dir": str(out), "final_model": str(final), "variant": variant.name,
        "resumed_from": resume, "train_seconds": round(train_seconds, 2),
        "train": {"pairs": len(train_ds), "steps": result.global_step, "loss": result.training_loss,
                  "tokens": int(sum(list(train_ds["length"]))) if hasattr(train_ds, "column_names") else None},
        "log_history": trainer.state.log_history, "data": data.reports, "truncation": stats.to_dict(),
        "recipe": recipe_to_dict(recipe),
    }
    if data.eval:
        metrics["eval"] = _final_eval(final, data.eval, out, recipe)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str) + "\n")
    return metrics


def _final_eval(final: Path, pairs: list[PreferencePair], out: Path, recipe: Recipe) -> dict:
    dtype = "bfloat16" if recipe.train.dtype == "bfloat16" else "float32"
    scorer = ScalarScorer.load(final, dtype=dtype, max_length=recipe.data.max_length,
                               batch_tokens=recipe.train.feature_batch_tokens, progress=True)
    summary, rows = evaluate_pairs(scorer, pairs, seed=recipe.train.seed)
    write_results(summary, rows, out / "eval.json")
    return summary
