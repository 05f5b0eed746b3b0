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

from rewardlab.config import Recipe
from rewardlab.kinds import kind_of
from rewardlab.train.setup import PreparedData, prepare_data

__all__ = ["prepare_data", "train_reward_model"]


def train_reward_model(recipe: Recipe, data: PreparedData | None = None) -> dict:
    """Train, save ``output_dir/final`` and ``output_dir/metrics.json``; return the metrics.

    ``data``: pairs already loaded and split (what ensemble members share); ``None`` reads the recipe's.
    The variant's kind trains it (:mod:`rewardlab.kinds`); with ``train.ensemble`` > 1 the members are
    trained instead, see :mod:`rewardlab.train.ensemble`.

    With ``train.save_steps`` and ``train.resume`` (the default), a rerun into the same ``output_dir``
    continues from the newest checkpoint whose files are whole (a damaged newer one is passed over, with a
    warning: :func:`rewardlab.train.checkpoints.latest_checkpoint`) and ends with the same weights and
    ``train.loss`` as an uninterrupted run. What ``metrics.json`` holds: :mod:`rewardlab.train.report`.
    """
    if recipe.train.ensemble > 1:
        from rewardlab.train.ensemble import train_ensemble

        return train_ensemble(recipe, train_reward_model)
    return kind_of(recipe.variant.name).train(recipe, data)
