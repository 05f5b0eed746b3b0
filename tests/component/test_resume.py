"""A run killed (SIGKILL) after a few steps and started again with the same command ends with the same
weights, bit for bit, and the same training loss as a run that was never interrupted; a damaged
newest checkpoint is passed over for the previous one, with one line saying so.

The killed run is the real CLI in its own process, paused by ``pause_at_step.py`` at step 11 so the kill
lands at a known point: after ``checkpoint-10`` is complete and one more step has been taken (and lost).
Step 10 is in the second epoch (8 steps an epoch), so resuming must replay that epoch's data order, the
RNG state (LoRA dropout is on) and the optimizer and schedule state exactly. The loss is logged every
3 steps, so the checkpoint at step 10 falls between two regular log entries.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
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
        "train.logging_steps=3",
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


@pytest.fixture(scope="module")
def straight(tiny_llama, pair_files, tmp_path_factory) -> Path:
    """The run never interrupted."""
    whole = tmp_path_factory.mktemp("resume") / "whole"
    cli(tiny_llama, pair_files, whole)
    return whole


def same_run(a: Path, b: Path) -> None:
    """``b`` ended as ``a`` did: the same per-step losses, mean loss and final weights."""
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    assert mb["train"]["steps"] == ma["train"]["steps"] == STEPS
    # The whole run's mean: the same fp32 step losses, summed in float64 in another grouping.
    assert mb["train"]["loss"] == pytest.approx(ma["train"]["loss"], rel=1e-12)
    assert losses(mb) == losses(ma)  # the logged losses, the replayed steps included
    # Exact by construction: the same operations in the same order (one thread, the same data order,
    # RNG, optimizer and schedule state restored from the checkpoint).
    wa, wb = load_file(a / "final" / "model.safetensors"), load_file(b / "final" / "model.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{k}: max diff {(wa[k] - wb[k]).abs().max()}"


def test_killed_run_resumes_to_the_same_weights_and_loss(straight, tiny_llama, pair_files, tmp_path):
    killed = tmp_path / "killed"
    kill_after_step(tiny_llama, pair_files, killed, KILL_AFTER)
    assert not (killed / "final").exists() and not (killed / "metrics.json").exists()
    ckpts = sorted(p.name for p in (killed / "checkpoints").glob("checkpoint-*"))
    assert ckpts == ["checkpoint-10", "checkpoint-8"]  # save_total_limit=2; step 11 was lost

    cli(tiny_llama, pair_files, killed)  # the same command again

    resumed = json.loads((killed / "metrics.json").read_text())
    assert json.loads((straight / "metrics.json").read_text())["resumed_from"] is None
    assert resumed["resumed_from"] == str(killed / "checkpoints" / "checkpoint-10")
    same_run(straight, killed)


def test_a_truncated_checkpoint_is_passed_over_for_the_previous_one(straight, tiny_llama, pair_files, tmp_path):
    """The finished run again: it would resume from checkpoint-12 (nothing left to train); with that
    checkpoint's weights cut short it resumes from checkpoint-10 and says so in one line."""
    again = tmp_path / "again"
    shutil.copytree(straight, again)
    (again / "metrics.json").unlink()
    weights = next((again / "checkpoints" / "checkpoint-12").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    done = cli(tiny_llama, pair_files, again)

    assert "Traceback" not in done.stderr and "SafetensorError" not in done.stderr
    warned = [line for line in done.stderr.splitlines() if "checkpoint-12" in line]
    assert len(warned) == 1, done.stderr[-3000:]
    assert f"{weights.name}: truncated" in warned[0] and "resuming from checkpoint-10 instead" in warned[0]
    resumed = json.loads((again / "metrics.json").read_text())
    assert resumed["resumed_from"] == str(again / "checkpoints" / "checkpoint-10")
    same_run(straight, again)


def test_the_whole_run_loss_counts_every_step_before_the_checkpoint():
    from rewardlab.train.checkpoints import whole_run_loss

    # Steps 1-4 logged as 1.0 (step 1) and 0.5 (mean of 2-4), the checkpoint at step 4; this run took
    # steps 5-6 at a mean of 0.2: (1.0 + 3 * 0.5 + 2 * 0.2) / 6.
    log = [{"loss": 1.0, "step": 1}, {"loss": 0.5, "step": 4}, {"eval_loss": 9.0, "step": 4},
           {"loss": 0.2, "step": 6}]
    assert whole_run_loss(log, 0.2, 6, 4) == pytest.approx((1.0 + 3 * 0.5 + 2 * 0.2) / 6)
    assert whole_run_loss(log, 0.7, 6, None) == 0.7  # not resumed: the Trainer's mean is the run's
    assert whole_run_loss(log[:2], 0.0, 4, 4) == pytest.approx((1.0 + 3 * 0.5) / 4)  # nothing left to train


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
