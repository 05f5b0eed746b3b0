"""How an adapter names its base model (portably), and how that name is read back."""

from __future__ import annotations

import pytest

from rewardlab.models.checkpoint import adapter_base, portable_base


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A rewardlab cache holding a (fake) converted SmolLM2 directory."""
    monkeypatch.setenv("REWARDLAB_CACHE", str(tmp_path / "cache"))
    smol = tmp_path / "cache" / "smollm2-135m-instruct"
    smol.mkdir(parents=True)
    (smol / "config.json").write_text("{}")
    return smol


def test_the_embedded_model_is_recorded_by_its_alias(cache, tmp_path):
    out = tmp_path / "run" / "final"
    assert portable_base(str(cache), out) == "smollm2"
    assert adapter_base(out, "smollm2") == "smollm2"  # resolved by the loaders, on any machine


def test_a_hub_cache_snapshot_is_recorded_by_its_hub_id(tmp_path):
    snap = tmp_path / "hf" / "hub" / "models--HuggingFaceTB--SmolLM2-135M-Instruct" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    assert portable_base(str(snap), tmp_path / "out") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    hub_id = "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert portable_base(hub_id, tmp_path / "out") == hub_id


def test_a_local_directory_is_recorded_relative_to_the_adapter(tmp_path):
    base, out = tmp_path / "models" / "base", tmp_path / "runs" / "x" / "final"
    base.mkdir(parents=True)
    out.mkdir(parents=True)
    assert portable_base(str(base), out) == "../../../models/base"
    assert adapter_base(out, "../../../models/base") == str(base.resolve())
    assert adapter_base(out, str(base)) == str(base)  # an older adapter's absolute path still loads
    with pytest.raises(FileNotFoundError, match="keep the adapter beside its base model"):
        adapter_base(out, "../../elsewhere")
