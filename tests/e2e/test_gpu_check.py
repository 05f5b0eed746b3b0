"""``benchmarks/gpu_check.sh --dry-run``: the GPU check's every step at tiny sizes, on this machine, so a
change on the CPU side cannot silently break the script that measures the GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import requires_shared

REPO = Path(__file__).resolve().parents[2]
HH = REPO.parent / "shared" / "data" / "hh-rlhf-harmless" / "test.jsonl.gz"


@requires_shared(HH)
@pytest.mark.slow
def test_gpu_check_dry_run_runs_every_step(tmp_path, smollm2_tokenizer_dir):
    pytest.importorskip("trl")
    out = tmp_path / "gpu"
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("REWARDLAB_CACHE", None)
    run = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--dry-run", "--out", str(out)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dry_run"] is True
    steps = {s["step"]: s["exit"] for s in summary["steps"]}
    assert set(steps) >= {"model_135m", "attention", "attention_bf16", "score_135m", "train_bf16_lora",
                          "train_fp32_full", "tests"}, steps
    failed = {k: v for k, v in steps.items() if v != 0}
    assert not failed, "\n".join((out / f"{k}.log").read_text()[-2000:] for k in failed)
    figures = {f["what"]: f["value"] for f in summary["figures"]}
    for what in ("training bf16 + LoRA, tokens/s vs TRL", "training fp32 full, tokens/s vs TRL",
                 "scoring 135M fp32 vs naive", "scoring 135M bf16 vs naive"):
        assert figures[what] is not None and figures[what] > 0, what
    assert figures["scoring 1.1B bf16 MFU"] is None  # the 1.1B model is not built in a dry run
    assert summary["tests"]["tests"] > 0 and summary["tests"]["failures"] == summary["tests"]["errors"] == 0
    attention = json.loads((out / "attention.json").read_text())["engines"]
    assert attention["padded sdpa"]["max_abs_diff_vs_per_sequence"] < 1e-4
