"""The same recipe under ``accelerate launch``: 2 CPU processes (DDP over gloo) with 4 pairs each give
the same per-step losses and final weights as 1 process with 8 pairs.

Equal global batches see the same pairs at every step because the length-grouped order is drawn for the
global batch from the seed and epoch alone (``LengthGroupedSampler``), and accelerate hands process
``r`` the ``r``-th per-process slice of it; DDP then averages two per-process mean losses over equal
halves, which is the mean over all 8. Only process 0 writes ``final/``, ``metrics.json`` and evaluates.

On GPUs the same command runs DeepSpeed or FSDP by pointing ``--config_file`` at
``configs/accelerate/deepspeed_zero2.yaml`` or ``configs/accelerate/fsdp.yaml`` (set ``num_processes``
to the number of GPUs); see the docstring of ``rewardlab.train.run``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig

from tests.conftest import REPO, synthetic_pairs, write_jsonl
from tests.fp32 import adam_atol, forward_terms, grad_terms, trained_loss_atol

pytestmark = [
    pytest.mark.distributed,
    pytest.mark.skipif(
        not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
        reason="needs torch.distributed with gloo",
    ),
    pytest.mark.skipif(
        shutil.which("accelerate", path=str(Path(sys.executable).parent)) is None,
        reason="needs the accelerate launcher beside the Python interpreter",
    ),
]
GLOBAL_BATCH, STEPS = 8, 4


def run(launcher: list[str], model: Path, pair_files: tuple[Path, Path], out: Path, batch: int):
    train_file, eval_file = pair_files
    cmd = [
        *launcher,
        "train",
        str(REPO / "configs" / "tiny_bt.yaml"),
        f"model.path={model}",
        f"data.train={train_file}",
        f"data.eval={eval_file}",
        f"output_dir={out}",
        f"train.batch_size={batch}",
        f"train.max_steps={STEPS}",
        "train.logging_steps=1",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=out.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    return done, json.loads((out / "metrics.json").read_text())


def losses(metrics: dict) -> list[float]:
    return [e["loss"] for e in metrics["log_history"] if "loss" in e]


def test_two_processes_match_one_with_the_same_global_batch(tiny_llama, pair_files, tmp_path):
    # 80 pairs: transformers' own length grouping would form groups of 20 for 4-pair batches but of 16
    # for 8-pair ones, and the two runs would see different pairs from step 1.
    pair_files = (write_jsonl(tmp_path / "train80.jsonl", synthetic_pairs(80, 0)), pair_files[1])
    accelerate = str(Path(sys.executable).parent / "accelerate")
    ddp = [
        accelerate,
        "launch",
        "--config_file",
        str(REPO / "configs" / "accelerate" / "ddp_cpu.yaml"),
        "--num_processes",
        "2",
        "-m",
        "rewardlab.cli.main",
    ]
    single, m1 = run(
        [sys.executable, "-m", "rewardlab.cli.main"], tiny_llama, pair_files, tmp_path / "one", GLOBAL_BATCH
    )
    multi, m2 = run(ddp, tiny_llama, pair_files, tmp_path / "two", GLOBAL_BATCH // 2)

    assert (m1["processes"], m2["processes"]) == (1, 2)
    assert len(losses(m2)) == STEPS
    # Two processes sum the batch's gradients in another order than one (DDP's all-reduce): the same
    # training in two fp32 orders, with per-step and Adam-carried tolerances (tests/fp32.py) for the
    # tiny llama's shape and batches of GLOBAL_BATCH pairs of at most max_length tokens.
    config, longest = AutoConfig.from_pretrained(tiny_llama), m1["recipe"]["data"]["max_length"]
    for step, (two, one) in enumerate(zip(losses(m2), losses(m1), strict=True), start=1):
        assert abs(two - one) <= trained_loss_atol(step, forward_terms(config, longest), one), step
    atol = adam_atol(STEPS, m1["recipe"]["train"]["lr"], grad_terms(config, longest, 2 * GLOBAL_BATCH * longest))
    a = load_file(tmp_path / "one" / "final" / "model.safetensors")
    b = load_file(tmp_path / "two" / "final" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=atol, rtol=0, msg=k)
    # Process 0 alone evaluated and reported (one summary), on the same weights.
    assert multi.stdout.count("held-out accuracy") == 1
    assert m2["eval"]["n"] == m1["eval"]["n"] == 32
    # accuracy is discrete: a pair whose rewards sit within fp32 noise of a tie may go either way
    assert abs(m2["eval"]["accuracy"] - m1["eval"]["accuracy"]) <= 1 / 32
    assert not list((tmp_path / "two").glob(".metrics.json.*"))  # no half-written leftovers
