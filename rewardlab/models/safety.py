"""Safe loading: weights only from safetensors, no remote code, unless the user says otherwise.

A pickle weights file (``pytorch_model.bin``, ``*.pt``, ``*.ckpt``) can execute arbitrary code when
loaded, and so can a config whose ``auto_map`` points at Python files shipped with the checkpoint.
Both are refused unless ``trust=True`` (the ``--trust-checkpoint`` flag of the CLI). A truncated or
corrupt safetensors file is reported with its path before any weights are read.
"""

from __future__ import annotations

import json
from pathlib import Path

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


class UnsafeCheckpointError(RuntimeError):
    """The checkpoint would need pickle or remote code and trust was not given."""


class CorruptCheckpointError(RuntimeError):
    """A weights file is truncated or not valid safetensors."""


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
    """Vet a local checkpoint directory before loading it; return whether to load safetensors.

    Hub ids (paths that do not exist locally) are not inspected here; the caller passes
    ``use_safetensors=not trust`` and ``trust_remote_code=trust`` to transformers for those.
    """
    path = Path(path)
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
