"""``train.ensemble=k``: train k members of one recipe with seeds seed, seed+1, ... in one command.

Members share the data and its held-out split (read and split once, with the recipe's seed); only
the seed of the head (and LoRA) initialisation and of the data order differs. Each member is a
complete run in ``output_dir/member-i/`` (``final/``, ``metrics.json``); ``output_dir/ensemble.json``
names their ``final/`` directories with ``train.ensemble_reduction`` and ``train.ensemble_lambda``,
and loads as one Scorer (:class:`rewardlab.models.ensemble.EnsembleScorer`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path

from rewardlab import jsonout
from rewardlab.config import Recipe, recipe_to_dict
from rewardlab.models.ensemble import EnsembleScorer, write_manifest
from rewardlab.train.setup import PreparedData, prepare_data

log = logging.getLogger("rewardlab")


def member_recipe(recipe: Recipe, i: int) -> Recipe:
    """Member ``i``: seed + i, its own ``output_dir/member-i``, a single model."""
    train = dataclasses.replace(recipe.train, seed=recipe.train.seed + i, ensemble=1)
    return dataclasses.replace(recipe, train=train, output_dir=str(Path(recipe.output_dir) / f"member-{i}"))


def train_ensemble(recipe: Recipe, train_member: Callable[[Recipe, PreparedData], dict]) -> dict:
    """Train the members with ``train_member(member_recipe, data)`` (one reward model: what
    :func:`rewardlab.train.run.train_reward_model` does), write ``ensemble.json`` and ``metrics.json``;
    evaluate the ensemble on the
    held-out pairs (``eval.json``). The metrics hold ``output_dir``, ``final_model`` (the ensemble
    directory), ``variant``, ``members`` (each member's metrics), ``train_seconds`` (summed), ``train``
    (``pairs``, ``steps`` and ``loss`` averaged over members, ``dtype`` and ``dtype_auto`` as in a
    member's), ``recipe`` and, with held-out pairs,
    ``eval`` of the ensemble."""
    from rewardlab.eval.pairwise import evaluate_pairs, write_results
    from rewardlab.train.report import write_json

    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = prepare_data(recipe)
    members = []
    for i in range(recipe.train.ensemble):
        log.info("ensemble member %d of %d", i + 1, recipe.train.ensemble)
        members.append(train_member(member_recipe(recipe, i), data))
    t = recipe.train
    manifest = write_manifest(out, [m["final_model"] for m in members], t.ensemble_reduction, t.ensemble_lambda)
    k = len(members)
    metrics = {
        "output_dir": str(out),
        "final_model": str(out),
        "manifest": str(manifest),
        "variant": members[0]["variant"],
        "members": members,
        "train_seconds": round(sum(m["train_seconds"] for m in members), 2),
        "train": {
            "pairs": members[0]["train"]["pairs"],
            "steps": members[0]["train"]["steps"],
            "loss": sum(m["train"]["loss"] for m in members) / k,
            "dtype": members[0]["train"]["dtype"],
            "dtype_auto": members[0]["train"]["dtype_auto"],
        },
        "recipe": recipe_to_dict(recipe),
    }
    if data.eval and _is_main_process():
        scorer = EnsembleScorer.load(out, dtype=metrics["train"]["dtype"],  # the dtype the members trained in
                                     max_length=recipe.data.max_length, batch_tokens=t.feature_batch_tokens)
        summary, rows = evaluate_pairs(scorer, data.eval, seed=t.seed)
        summary["members"] = [m.get("eval", {}).get("accuracy") for m in members]
        write_results(summary, rows, out / "eval.json")
        metrics["eval"] = summary
    if _is_main_process():
        write_json(out / "metrics.json", json.loads(jsonout.dumps(metrics, default=str)))
    return metrics


def _is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process
