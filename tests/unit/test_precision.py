"""``dtype: auto`` is decided by a measurement on the device, cached per device, never by CPU flags."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rewardlab import precision


@pytest.fixture(autouse=True)
def fresh(monkeypatch, tmp_path):
    """An empty cache directory and a process that has resolved nothing yet."""
    monkeypatch.setenv("REWARDLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(precision, "_CHOICES", {})


class Timings:
    """A stand-in for :func:`precision.measure_matmuls` returning fixed rates and counting its calls."""

    def __init__(self, bf16: float, fp32: float) -> None:
        self.rates, self.calls = (bf16, fp32), 0

    def __call__(self, device="cpu", budget_s=0.5, rounds=5):
        self.calls += 1
        return self.rates


@pytest.mark.parametrize(("bf16", "fp32", "expected"), [
    (300.0, 100.0, torch.bfloat16),  # AMX-class CPU: bf16 much faster
    (173.0, 342.0, torch.float32),  # the Xeon: avx512_bf16 reported, bf16 slower
    (110.0, 100.0, torch.float32),  # faster, but not by the margin: not worth the precision
    (1.2, 41.6, torch.float32),  # emulated bf16 (AVX2 only)
])
def test_auto_takes_bfloat16_only_where_the_measurement_says_it_is_faster(monkeypatch, bf16, fp32, expected):
    timings = Timings(bf16, fp32)
    monkeypatch.setattr(precision, "measure_matmuls", timings)
    assert precision.resolve_dtype("auto", "cpu") == expected
    choice = precision.auto_choice("cpu")
    assert timings.calls == 1  # a process resolves a device once
    assert (choice.bfloat16_gflops, choice.float32_gflops, choice.basis) == (bf16, fp32, "measured")


def test_cpu_flags_never_rule_bfloat16_in(monkeypatch):
    """oneDNN says bf16 is supported (the issue's Xeon), the measurement says slower: float32."""
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    monkeypatch.setattr(precision, "measure_matmuls", Timings(173.0, 342.0))
    assert precision.resolve_dtype("auto") == torch.float32


def test_a_cached_measurement_is_not_repeated(monkeypatch, tmp_path):
    timings = Timings(300.0, 100.0)
    monkeypatch.setattr(precision, "measure_matmuls", timings)
    first = precision.auto_choice("cpu")
    monkeypatch.setattr(precision, "_CHOICES", {})  # a new process on the same machine
    again = precision.auto_choice("cpu")
    assert timings.calls == 1
    assert again.dtype == first.dtype == "bfloat16" and again.basis == "cached"
    cached = json.loads((tmp_path / "dtype_auto.json").read_text())
    assert cached[precision.device_key("cpu")]["bfloat16_gflops"] == 300.0
    line = again.describe()
    assert line.startswith("dtype auto: bfloat16 300.0 GFLOP/s vs float32 100.0 GFLOP/s on cpu: ")
    assert line.endswith(f"-> bfloat16 (cached in {tmp_path / 'dtype_auto.json'})")
    precision.auto_choice("cpu", refresh=True)
    assert timings.calls == 2


def test_the_cache_is_kept_per_device(monkeypatch, tmp_path):
    monkeypatch.setattr(precision, "measure_matmuls", Timings(300.0, 100.0))
    monkeypatch.setattr(precision, "cpu_name", lambda: "Fast CPU")
    assert precision.resolve_dtype("auto") == torch.bfloat16
    other = Timings(50.0, 100.0)
    monkeypatch.setattr(precision, "measure_matmuls", other)
    monkeypatch.setattr(precision, "cpu_name", lambda: "Slow CPU")
    assert precision.resolve_dtype("auto") == torch.float32 and other.calls == 1
    cached = json.loads((tmp_path / "dtype_auto.json").read_text())
    assert sorted(k.split(" (")[0] for k in cached) == ["cpu: Fast CPU", "cpu: Slow CPU"]
    assert all(f"torch {torch.__version__}" in k for k in cached)


def test_an_unreadable_cache_is_measured_again(monkeypatch, tmp_path):
    (tmp_path / "dtype_auto.json").write_text("{not json")
    timings = Timings(1.0, 40.0)
    monkeypatch.setattr(precision, "measure_matmuls", timings)
    assert precision.resolve_dtype("auto") == torch.float32 and timings.calls == 1
    assert precision.device_key("cpu") in json.loads((tmp_path / "dtype_auto.json").read_text())


def test_a_gpu_with_native_bfloat16_takes_it_unmeasured(monkeypatch):
    timings = Timings(1.0, 100.0)
    monkeypatch.setattr(precision, "measure_matmuls", timings)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some GPU")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: not including_emulation)
    choice = precision.auto_choice("cuda")
    assert choice.dtype == "bfloat16" and timings.calls == 0 and choice.device.startswith("cuda: Some GPU")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    monkeypatch.setattr(precision, "_CHOICES", {})
    assert precision.resolve_dtype("auto", torch.device("cuda")) == torch.float32  # emulated bf16 only


def test_the_measurement_times_real_matmuls(monkeypatch):
    monkeypatch.setattr(precision, "MATMUL_SHAPE", (16, 32, 64))
    bf16, fp32 = precision.measure_matmuls("cpu", budget_s=0.05, rounds=2)
    assert all(math.isfinite(r) and r > 0 for r in (bf16, fp32))


def test_named_dtypes_resolve_as_written():
    assert precision.resolve_dtype("bf16") == torch.bfloat16 and precision.resolve_dtype("float32") == torch.float32
    assert precision.resolve_dtype(torch.bfloat16) == torch.bfloat16
    with pytest.raises(ValueError, match="dtype must be one of auto, float32, bfloat16"):
        precision.resolve_dtype("fp16")


def test_the_dtype_verb_prints_the_measurement(monkeypatch, capsys):
    from rewardlab.cli.main import main

    timings = Timings(1.2, 41.6)
    monkeypatch.setattr(precision, "measure_matmuls", timings)
    assert main(["dtype", "--device", "cpu"]) == 0
    assert main(["dtype", "--device", "cpu", "--refresh"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("dtype auto: bfloat16 1.2 GFLOP/s vs float32 41.6 GFLOP/s on cpu: ")
    assert lines[0].endswith("-> float32 (measured now, cached in " + str(precision.cache_path()) + ")")
    assert timings.calls == 2 and len(lines) == 2
