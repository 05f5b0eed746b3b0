"""Safe loading: weights only from safetensors, no remote code, unless the user says otherwise.

A pickle weights file (``pytorch_model.bin``, ``*.pt``, ``*.ckpt``) can execute arbitrary code when
loaded, and so can a config whose ``auto_map`` points at Python files shipped with the checkpoint.
Both are refused unless ``trust=True`` (the ``--trust-checkpoint`` flag of the CLI). A truncated or
corrupt safetensors file is reported with its path before any weights are read.

:func:`check_checkpoint` is the one gate every loader and every CLI verb passes a model through before
reading anything from it. It also turns a model that is not there into one line naming it
(:class:`ModelNotFoundError`) instead of a hub error about repo id syntax.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


class UnsafeCheckpointError(RuntimeError):
    """The checkpoint would need pickle or remote code and trust was not given."""


class CorruptCheckpointError(RuntimeError):
    """A weights file is truncated or not valid safetensors."""


class ModelNotFoundError(FileNotFoundError):
    """A model that is neither a local directory nor a hub id that can be loaded here."""


def _hub_offline() -> bool:
    from huggingface_hub import constants

    flags = (os.environ.get(k, "").upper() for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return bool(constants.HF_HUB_OFFLINE) or any(f in ("1", "ON", "YES", "TRUE") for f in flags)


def _hub_id(name: str) -> bool:
    """Whether ``name`` is meant as a hub id (``gpt2``, ``org/model``) rather than a local path: it is
    one, syntactically, and does not start like a path or sit in a directory that exists here."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if name.startswith((".", "~")) or os.path.isabs(name) or "\\" in name:
        return False
    if "/" in name and Path(name).parent.is_dir():  # runs/bt with runs/ present: a local path
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def locate_model(path: str | Path) -> None:
    """Raise :class:`ModelNotFoundError` (one line naming ``path``) unless ``path`` is a local model
    directory or a hub id that can be fetched: one in the local cache, or any when the hub is online."""
    name = str(path)
    local = Path(name).expanduser()
    if local.is_dir():
        return
    if local.exists():
        raise ModelNotFoundError(f"model directory {name} is a file, not a directory")
    if not _hub_id(name):
        raise ModelNotFoundError(f"model directory {name} does not exist")
    if _hub_offline():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(name, "config.json"), str):
            raise ModelNotFoundError(
                f"model directory {name} does not exist, and as a hub id it is not in the local cache while the "
                "hub is offline (HF_HUB_OFFLINE=1): give a model directory, or download the model first")


def _weight_files(path: Path) -> tuple[list[Path], list[Path]]:
    safe = sorted(path.glob("*.safetensors"))
    pickled = sorted(p for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES and p.is_file())
    return safe, pickled


def validate_safetensors(file: Path) -> None:
    """Check the header and that the file holds every byte the header promises."""
    size = file.stat().st_size
    with open(file, "rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise CorruptCheckpointError(f"{file}: not a safetensors file (only {size} bytes)")
        n = int.from_bytes(raw, "little")
        if n <= 0 or 8 + n > size:
            raise CorruptCheckpointError(f"{file}: truncated or corrupt safetensors header")
        try:
            header = json.loads(fh.read(n))
            end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CorruptCheckpointError(f"{file}: corrupt safetensors header ({e})") from None
        except (AttributeError, KeyError, IndexError, TypeError, ValueError):
            raise CorruptCheckpointError(f"{file}: corrupt safetensors header (no valid data_offsets)") from None
    if 8 + n + end > size:
        raise CorruptCheckpointError(
            f"{file}: truncated: the header promises {8 + n + end} bytes, the file has {size}")


def check_checkpoint(path: str | Path, trust: bool = False) -> bool:
    """Vet a checkpoint before loading it; return whether to load safetensors.

    A missing directory (or an unavailable hub id) raises :class:`ModelNotFoundError`. Hub ids are not
    inspected further here; the caller passes ``use_safetensors=not trust`` and
    ``trust_remote_code=trust`` to transformers for those.
    """
    locate_model(path)
    path = Path(path).expanduser()
    if not path.is_dir():
        return True
    config = path / "config.json"
    if config.exists() and not trust:
        try:
            cfg = json.loads(config.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CorruptCheckpointError(f"{config}: not valid JSON ({e})") from None
        if isinstance(cfg, dict) and cfg.get("auto_map"):
            raise UnsafeCheckpointError(
                f"{config}: asks for remote code (auto_map={cfg['auto_map']}); refusing to run code from a "
                "checkpoint. Pass --trust-checkpoint (trust=True) if you trust its author.")
    safe, pickled = _weight_files(path)
    for f in safe:
        validate_safetensors(f)
    if safe:
        return True
    if pickled and not trust:
        names = ", ".join(p.name for p in pickled)
        raise UnsafeCheckpointError(
            f"{path}: weights are pickle files ({names}), which can execute code when loaded; refusing. "
            "Convert them to safetensors, or pass --trust-checkpoint (trust=True) if you trust their author.")
    return not pickled
