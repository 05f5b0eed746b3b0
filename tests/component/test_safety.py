"""Safe loading: pickle weights and remote code are refused without trust; corrupt files are named."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

from rewardlab.models.loading import load_reward_model
from rewardlab.models.packing import pack
from rewardlab.models.safety import CorruptCheckpointError, UnsafeCheckpointError, check_checkpoint
from rewardlab.models.scalar import (
    build_reward_model,
    head_of,
    reward_forward,
    save_reward_model,
)
from rewardlab.models.scorer import ScalarScorer

SEQS = [[5, 6, 7, 3], [8, 9, 3]]


class BoobyTrap:
    """Unpickling this writes ``marker``: what a malicious ``pytorch_model.bin`` could do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


def write_trap(path: Path, marker: Path) -> Path:
    with open(path, "wb") as fh:
        pickle.dump({"model.embed_tokens.weight": BoobyTrap(marker)}, fh)
    return path


@pytest.fixture(scope="module")
def saved_rm(tiny_llama, tmp_path_factory) -> Path:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    model = build_reward_model(str(tiny_llama), tok)
    with torch.no_grad():
        head_of(model).weight.normal_(0.0, 1.0)
    return save_reward_model(model, tok, tmp_path_factory.mktemp("rm"))


def copy_without_weights(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.suffix != ".safetensors":
            shutil.copy(f, dst / f.name)
    return dst


def scores(model) -> torch.Tensor:
    with torch.no_grad():
        return reward_forward(model, pack(SEQS))


def test_the_booby_trap_is_live(tmp_path):
    """Control: plain unpickling does run the payload, so its absence below means it was never loaded."""
    marker = tmp_path / "control"
    with open(write_trap(tmp_path / "trap.bin", marker), "rb") as fh:
        pickle.load(fh)  # noqa: S301
    assert marker.read_text() == "pwned"


def test_pickle_weights_are_refused_before_anything_is_unpickled(saved_rm, tmp_path):
    d = copy_without_weights(saved_rm, tmp_path / "ckpt")
    marker = tmp_path / "marker"
    write_trap(d / "pytorch_model.bin", marker)
    with pytest.raises(UnsafeCheckpointError, match=r"pickle files \(pytorch_model.bin\)"):
        load_reward_model(d)
    with pytest.raises(UnsafeCheckpointError, match="trust-checkpoint"):
        ScalarScorer.load(d)
    from transformers import AutoTokenizer

    with pytest.raises(UnsafeCheckpointError):  # as the base of a new RM, too
        build_reward_model(str(d), AutoTokenizer.from_pretrained(str(d)))
    assert not marker.exists()


def test_safetensors_win_over_a_pickle_next_to_them(saved_rm, tmp_path):
    d = tmp_path / "both"
    shutil.copytree(saved_rm, d)
    marker = tmp_path / "marker"
    write_trap(d / "pytorch_model.bin", marker)
    assert check_checkpoint(d) is True
    # exact by construction: the same weights, bit for bit, through the same operations
    assert_close(scores(load_reward_model(d)), scores(load_reward_model(saved_rm)), atol=0, rtol=0)
    assert not marker.exists()


def test_trusted_pickle_weights_load(saved_rm, tmp_path):
    from safetensors.torch import load_file

    d = copy_without_weights(saved_rm, tmp_path / "bin")
    torch.save(load_file(str(saved_rm / "model.safetensors")), d / "pytorch_model.bin")
    with pytest.raises(UnsafeCheckpointError):
        load_reward_model(d)
    assert check_checkpoint(d, trust=True) is False  # tells the loader not to insist on safetensors
    assert_close(  # exact by construction: the same tensors, pickled instead of safetensors
        scores(load_reward_model(d, trust=True)), scores(load_reward_model(saved_rm)), atol=0, rtol=0
    )


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_trust_still_leaves_torch_weights_only_unpickling_in_charge(saved_rm, tmp_path):
    """With trust our check steps aside; transformers' weights-only torch.load still rejects the trap."""
    d = copy_without_weights(saved_rm, tmp_path / "trusted-trap")
    marker = tmp_path / "marker"
    write_trap(d / "pytorch_model.bin", marker)
    with pytest.raises((pickle.UnpicklingError, OSError, RuntimeError)) as info:
        load_reward_model(d, trust=True)
    assert not isinstance(info.value, UnsafeCheckpointError)  # the refusal is torch's, not ours
    assert not marker.exists()


def test_remote_code_is_refused(saved_rm, tmp_path):
    d = tmp_path / "remote"
    shutil.copytree(saved_rm, d)
    marker = tmp_path / "marker"
    (d / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('pwned')\n")
    cfg = json.loads((d / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForSequenceClassification": "modeling_evil.EvilModel"}
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsafeCheckpointError, match=r"config.json: asks for remote code \(auto_map="):
        load_reward_model(d)
    assert not marker.exists()


def test_truncated_safetensors_is_named(saved_rm, tmp_path):
    d = tmp_path / "cut"
    shutil.copytree(saved_rm, d)
    f = d / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        CorruptCheckpointError,
        match=rf"{f}: truncated: the header promises {len(data)} bytes, "
        rf"the file has {len(data) // 2}",
    ):
        load_reward_model(d)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x01\x02", "not a safetensors file"),
        ((10**6).to_bytes(8, "little") + b"{}", "truncated or corrupt safetensors header"),
        ((4).to_bytes(8, "little") + b"\xff\xfe{}", "corrupt safetensors header"),
        ((2).to_bytes(8, "little") + b"[]", "corrupt safetensors header"),
        ((30).to_bytes(8, "little") + b'{"w": {"dtype": "F32"}}'.ljust(30), "corrupt safetensors header"),
    ],
)
def test_corrupt_safetensors_headers_are_named(saved_rm, tmp_path, content, message):
    d = tmp_path / "bad"
    shutil.copytree(saved_rm, d)
    (d / "model.safetensors").write_bytes(content)
    with pytest.raises(CorruptCheckpointError, match=message) as info:
        load_reward_model(d)
    assert str(d / "model.safetensors") in str(info.value)


def test_pickled_lora_adapter_is_refused(tiny_llama, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    model = get_peft_model(
        build_reward_model(str(tiny_llama), tok),
        LoraConfig(task_type="SEQ_CLS", r=2, target_modules=["q_proj"], modules_to_save=["score"]),
    )
    out = save_reward_model(model, tok, tmp_path / "adapter", merge=False, base_model=str(tiny_llama))
    (out / "adapter_model.safetensors").unlink()
    marker = tmp_path / "marker"
    write_trap(out / "adapter_model.bin", marker)
    with pytest.raises(UnsafeCheckpointError, match="adapter_model.bin"):
        load_reward_model(out)
    assert not marker.exists()
