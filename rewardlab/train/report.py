"""What a training run reports: ``metrics.json`` and the final evaluation of ``final/``.

``metrics.json`` (written by :func:`rewardlab.train.run.train_reward_model` on process 0) holds:

- ``output_dir``, ``final_model`` (the ``final/`` directory), ``variant``, ``processes``;
- ``resumed_from``: the checkpoint this run continued from, or null;
- ``train_seconds``: wall time of this process's training loop;
- ``train``: ``pairs``, ``steps`` (optimizer steps), ``loss`` (mean training loss over every step of
  the run, resumed or not: :func:`rewardlab.train.checkpoints.whole_run_loss`), ``dtype`` (what
  training computed in: ``auto`` resolved), ``dtype_auto`` (with ``auto``: the measurement that chose
  it, see :class:`rewardlab.precision.AutoChoice`; else null), ``tokens``
  (of the tokenized training pairs; null for cached frozen-backbone features), ``tokens_seen`` (real
  tokens of every training batch, over all processes, epochs and resumed runs) and ``tokens_per_s``
  (tokens seen by this run / ``train_seconds``), both null for cached features; with a frozen
  backbone also ``features`` (``cache_dir``, ``model_key``, ``pooling``, and the unique sequences
  ``from_cache`` and ``computed`` by the backbone, evaluation included);
- ``log_history``: the Trainer's log, one entry per ``train.logging_steps`` and one at every saved
  checkpoint (``loss``, the mean since the previous entry, ``grad_norm``, ``learning_rate``, ``epoch``,
  ``step``), plus ``eval_*`` entries with ``eval_steps``;
- ``data``: the load report of each split; ``truncation``: what truncation did;
- ``recipe``: every recipe key as given (``train.dtype`` may say ``auto``: ``train.dtype`` above says
  what it became);
- ``eval`` (with held-out pairs): ``accuracy`` (ties count half), ``accuracy_ties_as_loss``,
  ``n``, ``ties``, ``ci95`` (resampling prompts: pairs that share one move together), ``prompts``,
  ``per_subset``, ``length`` (length alone on the same pairs:
  :func:`rewardlab.eval.pairwise.length_report`); the same is written to ``eval.json``. A frozen backbone
  is evaluated from its cached float32 features, whatever ``train.dtype``;
- ``eval_sets`` (only with further eval sets, e.g. ``ood`` from ``data.bon_pairs``): the same per
  set, also written to ``eval_<name>.json``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from rewardlab import jsonout
from rewardlab.config import recipe_to_dict
from rewardlab.eval.pairwise import evaluate_pairs, write_results
from rewardlab.models.scorer import ScalarScorer
from rewardlab.train.checkpoints import checkpoint_step, whole_run_loss
from rewardlab.types import PreferencePair

if TYPE_CHECKING:
    from rewardlab.config import Recipe
    from rewardlab.train.setup import PreparedData


def run_metrics(recipe, trainer, result, train_ds, data, stats, resume, seconds) -> dict:
    """Everything ``metrics.json`` holds but the final evaluation (see the module docstring)."""
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
            "loss": whole_run_loss(trainer.state.log_history, result.training_loss, result.global_step,
                                   checkpoint_step(resume) if resume else None),
            "tokens": int(sum(list(train_ds["length"]))) if tokenized else None,
            **tokens_seen(trainer, seconds, tokenized),
        },
        "log_history": trainer.state.log_history,
        "data": data.reports,
        "truncation": stats.to_dict(),
        "recipe": recipe_to_dict(recipe),
    }


def tokens_seen(trainer, seconds: float, tokenized: bool) -> dict:
    """Real tokens the training steps consumed (all processes, all epochs, across resumes), and the
    tokens/s of this run (tokens of this process's ``train()`` call over its wall time)."""
    if not tokenized:
        return {"tokens_seen": None, "tokens_per_s": None}
    seen = int(trainer.state.num_input_tokens_seen)
    this_run = seen - int(getattr(trainer, "_initial_num_input_tokens_seen", 0) or 0)
    return {"tokens_seen": seen, "tokens_per_s": round(this_run / seconds, 2) if seconds > 0 else None}


def write_json(path: Path, obj: dict) -> None:
    """Write then rename, so a reader (or a killed run) never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(jsonout.dumps(obj, indent=2, default=str) + "\n")
    tmp.replace(path)


def final_evals(final: Path, data: PreparedData, out: Path, recipe: Recipe, dtype: torch.dtype,
                 scorer=None) -> dict:
    """``eval`` (the held-out pairs, written to ``eval.json``) and ``eval_sets`` (each further set,
    ``eval_<name>.json``), scored by ``scorer`` or else the saved model."""
    if not data.eval and not data.extra_evals:
        return {}
    if scorer is None:
        scorer = ScalarScorer.load(  # on the GPU when there is one, as training was, in the dtype it trained in
            final,
            dtype=dtype,
            max_length=recipe.data.max_length,
            batch_tokens=recipe.train.feature_batch_tokens,
            progress=True,
        )
    results: dict = {}
    if data.eval:
        results["eval"] = _evaluate(scorer, data.eval, out / "eval.json", recipe.train.seed)
    if data.extra_evals:
        results["eval_sets"] = {name: _evaluate(scorer, pairs, out / f"eval_{name}.json", recipe.train.seed)
                                for name, pairs in data.extra_evals.items()}
    return results


def _evaluate(scorer, pairs: list[PreferencePair], path: Path, seed: int) -> dict:
    summary, rows = evaluate_pairs(scorer, pairs, seed=seed)
    write_results(summary, rows, path)
    return summary
