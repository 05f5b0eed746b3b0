"""What every results JSON records so a number can be traced and rerun: model, data hash, template,
the dtype each model computed in, rewardlab version, seed."""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path


def data_hash(source: str | Path) -> str | None:
    """``sha256:<hex>`` of a data file (of every file, in name order, for a directory); ``None`` for a
    dataset id that is not a local path."""
    path = Path(source)
    if not path.exists():
        return None
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(block)
    return "sha256:" + h.hexdigest()


def template_of(scorer) -> dict:
    """The chat template a scorer renders conversations with: ``sha256`` of its text (or ``None`` when
    the tokenizer has none and rewardlab's plain rendering is used), and the truncation limit."""
    tok = scorer.tokenizer
    if tok is None:  # ensembles keep theirs on the encoder
        tok = getattr(scorer.encoder, "tok", None)
    text = getattr(tok, "chat_template", None) if tok is not None else None
    if isinstance(text, dict):
        text = "\n".join(f"{k}:{v}" for k, v in sorted(text.items()))
    enc = scorer.encoder
    return {"chat_template_sha256": hashlib.sha256(text.encode()).hexdigest() if text else None,
            "max_length": getattr(enc, "max_length", None)}


def dtype_of(scorer) -> str:
    """The dtype a scorer computed in, by name (``auto`` resolved: what it loaded as)."""
    from rewardlab.precision import dtype_name

    return dtype_name(scorer.dtype)


def provenance(models: dict[str, str], data: dict[str, str], seed: int, scorers: dict | None = None,
               **extra) -> dict:
    """The ``provenance`` block of a results JSON. ``models`` and ``data`` map a name to a path or id;
    ``scorers`` maps a name to its loaded Scorer: their chat templates (``templates``) and the dtype each
    computed in (``dtypes``, never ``auto``) are recorded."""
    import torch
    import transformers

    from rewardlab import __version__

    out = {
        "rewardlab_version": __version__,
        "models": dict(models),
        "data": {name: {"source": str(src), "hash": data_hash(src)} for name, src in data.items()},
        "seed": seed,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }
    if scorers:
        out["templates"] = {name: template_of(s) for name, s in scorers.items()}
        out["dtypes"] = {name: dtype_of(s) for name, s in scorers.items()}
    out.update(extra)
    return out
