"""Resuming: which checkpoint a rerun continues from, and the training loss of the whole run.

A run killed while writing a checkpoint, or a disk that filled up, can leave a checkpoint that looks
finished but holds a truncated weights file. Such a checkpoint is passed over for the previous good
one, with one line saying so, instead of failing deep inside the loader.
"""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path

from transformers import TrainerCallback

from rewardlab.models.safety import CorruptCheckpointError, validate_safetensors

log = logging.getLogger("rewardlab")

TORCH_SUFFIXES = (".pt", ".pth", ".bin")
"""Files the Trainer writes with ``torch.save`` (optimizer, scheduler, RNG state, arguments): zip archives."""


def checkpoint_step(ckpt: str | Path) -> int | None:
    """``N`` of a ``checkpoint-N`` directory; ``None`` for any other name."""
    tail = Path(ckpt).name.split("-")[-1]
    return int(tail) if Path(ckpt).name.startswith("checkpoint-") and tail.isdigit() else None


def checkpoint_problem(ckpt: Path) -> str | None:
    """Why ``ckpt`` cannot be resumed from, or ``None`` when every file it holds is whole.

    The Trainer writes ``trainer_state.json`` last, so unreadable JSON there means a process died while
    saving. Weights must hold every byte their safetensors header promises, and ``torch.save`` archives
    must end in their zip directory (a truncated file loses it). Nothing is loaded: this reads headers."""
    try:
        json.loads((ckpt / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return "trainer_state.json is missing or incomplete"
    for f in sorted(ckpt.glob("*.safetensors")):
        try:
            validate_safetensors(f)
        except CorruptCheckpointError as e:
            return str(e).replace(str(f), f.name, 1)
    for f in sorted(p for p in ckpt.iterdir() if p.suffix in TORCH_SUFFIXES):
        if not zipfile.is_zipfile(f):
            return f"{f.name}: truncated or corrupt (not a complete torch.save archive)"
    return None


def latest_checkpoint(ckpt_dir: Path) -> str | None:
    """The newest ``checkpoint-N`` in ``ckpt_dir`` that can be resumed from (see :func:`checkpoint_problem`).

    A newer checkpoint passed over is reported in one warning naming it, what is wrong with it and the
    checkpoint used instead (or that training starts over); it is overwritten when training reaches
    its step again."""
    found = sorted((p for p in Path(ckpt_dir).glob("checkpoint-*") if checkpoint_step(p) is not None),
                   key=checkpoint_step, reverse=True)
    problems = [(p, checkpoint_problem(p)) for p in found]
    good = next((p for p, why in problems if why is None), None)
    instead = f"resuming from {good.name} instead" if good else "no good checkpoint is left: training starts over"
    for ckpt, why in problems:
        if ckpt == good:
            break
        log.warning("checkpoint %s cannot be resumed from (%s); %s", ckpt, why, instead)
    return str(good) if good else None


class LogAtCheckpoints(TrainerCallback):
    """Log the training loss at every step a checkpoint is saved, whatever ``logging_steps`` says.

    The Trainer only keeps the losses of the steps it logged, and a checkpoint keeps the log: with an
    entry at each checkpoint's step, a resumed run knows the loss of every step before it
    (:func:`whole_run_loss`). Runs after the Trainer's own flow callback, which decides on saving."""

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save:
            control.should_log = True
        return control


def whole_run_loss(log_history: list[dict], this_run_loss: float, global_step: int,
                   resumed_at: int | None) -> float:
    """The mean training loss over every optimizer step of the run, across resumes.

    The Trainer's ``training_loss`` averages only the steps of this process's ``train()`` call. Each
    ``loss`` entry of the log history is the mean over the steps since the previous entry, so the steps
    up to the resumed checkpoint are the log's, and the rest are ``this_run_loss`` times their number.
    A checkpoint without a log entry at its own step (written before :class:`LogAtCheckpoints`) leaves
    the steps between its last entry and the checkpoint unknown: the mean is over the known steps."""
    if not resumed_at:
        return this_run_loss
    before, last = 0.0, 0
    for entry in log_history:
        if "loss" in entry and entry.get("step", 0) <= resumed_at:
            before += entry["loss"] * (entry["step"] - last)
            last = entry["step"]
    after = global_step - resumed_at
    known = last + after
    return (before + this_run_loss * after) / known if known else this_run_loss
