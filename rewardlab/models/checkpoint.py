"""What a reward-model directory records so that it loads right elsewhere, or loudly not at all.

- **MLP heads.** Stock ``transformers`` has no MLP reward head: ``AutoModelForSequenceClassification``
  would load the backbone under a fresh random linear ``score`` layer and score with it, saying so only
  in a load report. A scalar checkpoint with an MLP head therefore declares the model type
  ``rewardlab-mlp-head`` (its real type kept as ``rewardlab.model_type``) and no stock architecture:
  stock loading (``from_pretrained``, ``pipeline``, TRL) stops with "model type `rewardlab-mlp-head`
  ... does not recognize", and rewardlab's loaders read the real type back (:func:`stored_config`).
  A head that reads the **mean** of the final hidden states (``rewardlab.models.scalar.HeadConfig.pooling``)
  has no stock form either (stock classifiers read the last token): it declares ``rewardlab-mean-pooled``
  the same way, with the same effect.
  A GRM checkpoint declares the causal LM it is, which stock ``AutoModelForCausalLM`` loads exactly.
- **Adapter bases.** A LoRA adapter names the model it was trained on so that it loads on another
  machine: the embedded alias (``smollm2``), a hub id, or a local directory relative to the adapter
  (:func:`portable_base`, :func:`adapter_base`), never an absolute path of the training machine.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from rewardlab import jsonout
from rewardlab.assets import ALIASES, alias_of

META_KEY = "rewardlab"
MLP_MODEL_TYPE = "rewardlab-mlp-head"
MEAN_POOLED_MODEL_TYPE = "rewardlab-mean-pooled"
MARKED_MODEL_TYPES = (MLP_MODEL_TYPE, MEAN_POOLED_MODEL_TYPE)
_HUB_SNAPSHOT = re.compile(r"models--([^/]+)--([^/]+)/snapshots/[^/]+/?$")


def saved_kind(path: str | Path) -> str | None:
    """The model kind a checkpoint directory records (``config.json``'s ``rewardlab.kind``, or an adapter's
    ``rewardlab_adapter.json`` ``kind``); None for a plain scalar reward model or any other directory."""
    path = Path(path)
    for name, key in (("config.json", META_KEY), ("rewardlab_adapter.json", None)):
        f = path / name
        if f.exists():
            try:
                meta = json.loads(f.read_text())
            except ValueError:
                continue
            meta = (meta.get(key) or {}) if key else meta
            if meta.get("kind"):
                return meta["kind"]
    return None


def mark_mlp_checkpoint(out: Path) -> None:
    """Rewrite ``out/config.json`` so stock transformers refuses it (see the module docstring): an MLP
    head declares ``rewardlab-mlp-head``, a mean-pooled linear head ``rewardlab-mean-pooled``."""
    f = out / "config.json"
    cfg = json.loads(f.read_text())
    head = (cfg.get(META_KEY) or {}).get("head") or {}
    cfg.setdefault(META_KEY, {})["model_type"] = cfg["model_type"]
    cfg["model_type"] = MLP_MODEL_TYPE if head.get("type") == "mlp" else MEAN_POOLED_MODEL_TYPE
    cfg.pop("architectures", None)
    f.write_text(jsonout.dumps(cfg, indent=2, sort_keys=True) + "\n")


def _marked(path: str | Path) -> dict | None:
    f = Path(path) / "config.json"
    if not f.is_file():
        return None
    raw = json.loads(f.read_text())
    return raw if raw.get("model_type") in MARKED_MODEL_TYPES else None


def stored_config(path: str | Path):
    """The config of a checkpoint marked by :func:`mark_mlp_checkpoint`, with its real model type;
    ``None`` for every other path (transformers reads those itself)."""
    raw = _marked(path)
    if raw is None:
        return None
    from transformers import AutoConfig

    meta = dict(raw.get(META_KEY) or {})
    real = meta.pop("model_type", None)
    if not real:
        raise ValueError(f"{Path(path) / 'config.json'}: model_type {raw['model_type']!r} needs the real one "
                         f"under '{META_KEY}.model_type'")
    raw = {k: v for k, v in raw.items() if k != "model_type"}
    raw[META_KEY] = meta
    return AutoConfig.for_model(real, **raw)


def load_tokenizer(path: str | Path):
    """The tokenizer saved with a reward-model directory. For a marked MLP checkpoint the tokenizer
    loader, which also reads ``config.json``, would warn about the model type it does not know."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    if _marked(path) is None:
        return AutoTokenizer.from_pretrained(str(path))
    old = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return AutoTokenizer.from_pretrained(str(path))
    finally:
        hf_logging.set_verbosity(old)


def portable_base(base: str, out: Path) -> str:
    """How an adapter written to ``out`` names its base model ``base`` (a directory or a hub id): the
    embedded alias for the embedded model's directory, the hub id for a hub cache snapshot, a local
    directory relative to ``out`` (keep them side by side), anything else as given."""
    alias = alias_of(base)
    if alias:
        return alias
    where = Path(base).expanduser()
    if not where.is_dir():
        return base
    snapshot = _HUB_SNAPSHOT.search(where.resolve().as_posix())
    if snapshot:
        return f"{snapshot.group(1)}/{snapshot.group(2)}"
    return os.path.relpath(where.resolve(), out.resolve())


def adapter_base(path: Path, recorded: str) -> str:
    """The base model the adapter directory ``path`` records, as a name the loaders take: a relative
    directory is relative to ``path``; aliases, hub ids and absolute paths (older adapters) as they are."""
    if recorded in ALIASES or Path(recorded).is_absolute():
        return recorded
    local = path / recorded
    if local.is_dir():
        return str(local.resolve())
    if recorded.startswith("."):
        raise FileNotFoundError(
            f"{path}: its base model {recorded!r} (a directory relative to the adapter) is not at {local.resolve()}; "
            "keep the adapter beside its base model, or merge them into one directory (rewardlab export)")
    return recorded
