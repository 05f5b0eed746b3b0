"""A run killed (SIGKILL) after a few steps and started again with the same command ends with the same
weights, bit for bit, as a run that was never interrupted.

The killed run is the real CLI in its own process, paused by ``pause_at_step.py`` at step 11 so the kill
lands at a known point: after ``checkpoint-10`` is complete and one more step has been taken (and lost).
Step 10 is in the second epoch (8 steps an epoch), so resuming must replay that epoch's data order, the
RNG state (LoRA dropout is on) and the optimizer and schedule state exactly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from tests.conftest import REPO

PAUSE_SCRIPT = Path(__file__).with_name("pause_at_step.py")
STEPS, SAVE_EVERY, KILL_AFTER = 12, 2, 11


def command(script: list[str], model: Path, pair_files: tuple[Path, Path], out: Path) -> list[str]:
    train_file, _ = pair_files
    return [
        sys.executable,
        *script,
        "train",
        str(REPO / "configs" / "tiny_bt.yaml"),
        f"model.path={model}",
        f"data.train={train_file}",
        "data.eval=",
        f"output_dir={out}",
        f"train.max_steps={STEPS}",
        f"train.save_steps={SAVE_EVERY}",
        "model.lora_r=4",
        "model.lora_dropout=0.1",
    ]


def env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        **extra,
    }


def cli(model, pair_files, out) -> subprocess.CompletedProcess:
    cmd = command(["-m", "rewardlab.cli.main"], model, pair_files, out)
    done = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def kill_after_step(model, pair_files, out: Path, step: int) -> None:
    marker = out.parent / f"{out.name}.paused"
    cmd = command([str(PAUSE_SCRIPT)], model, pair_files, out)
    proc = subprocess.Popen(
        cmd,
        env=env(REWARDLAB_PAUSE_STEP=str(step), REWARDLAB_PAUSE_FILE=str(marker)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert proc.poll() is None, f"the run ended before step {step}: {proc.stderr.read()[-3000:]}"
        assert time.monotonic() < deadline, f"no step {step} within 240 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    proc.stderr.close()


def losses(metrics: dict) -> list[float]:
    return [e["loss"] for e in metrics["log_history"] if "loss" in e]


def test_killed_run_resumes_to_the_same_weights(tiny_llama, pair_files, tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    cli(tiny_llama, pair_files, whole)

    kill_after_step(tiny_llama, pair_files, killed, KILL_AFTER)
    assert not (killed / "final").exists() and not (killed / "metrics.json").exists()
    ckpts = sorted(p.name for p in (killed / "checkpoints").glob("checkpoint-*"))
    assert ckpts == ["checkpoint-10", "checkpoint-8"]  # save_total_limit=2; step 11 was lost

    cli(tiny_llama, pair_files, killed)  # the same command again

    resumed = json.loads((killed / "metrics.json").read_text())
    straight = json.loads((whole / "metrics.json").read_text())
    assert straight["resumed_from"] is None
    assert resumed["resumed_from"] == str(killed / "checkpoints" / "checkpoint-10")
    assert resumed["train"]["steps"] == straight["train"]["steps"] == STEPS
    assert losses(resumed) == losses(straight)  # per-step losses, the replayed steps 11-12 included
    a = load_file(whole / "final" / "model.safetensors")
    b = load_file(killed / "final" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k}: max diff {(a[k] - b[k]).abs().max()}"


def test_length_grouped_order_depends_on_seed_and_epoch_only():
    from rewardlab.train.data import LengthGroupedSampler

    lengths = [(i * 37) % 23 + 5 for i in range(80)]
    first = LengthGroupedSampler(lengths, group_size=8, seed=0)
    epoch0 = list(first)
    first.set_epoch(1)
    epoch1 = list(first)
    assert sorted(epoch0) == sorted(epoch1) == list(range(80))
    assert epoch0 != epoch1
    torch.manual_seed(123)  # the global RNG (consumed by dropout, say) plays no part
    fresh = LengthGroupedSampler(lengths, group_size=8, seed=0)
    fresh.set_epoch(1)  # a resumed process starts straight in epoch 1
    assert list(fresh) == epoch1
