"""``rewardlab export``: a reward-model directory as a checkpoint that stock ``transformers`` loads
with the same scores (``AutoModelForSequenceClassification``, ``pipeline``, TRL's reward trainer).

Every scalar kind with a linear head has that form: a full scalar RM is written again (pad id, chat
template and all, see :mod:`rewardlab.models.scalar`), a LoRA adapter is merged into its base model,
a GRM loses its LM head (a LoRA GRM is merged first). What has no such form is refused with one line
that says why (:class:`ExportError`): an MLP head, an ensemble, a generative judge, and a directory
that is not a rewardlab reward model.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from torch import nn

from rewardlab.assets import resolve_model_path
from rewardlab.models.checkpoint import META_KEY, load_tokenizer


class ExportError(ValueError):
    """A directory whose kind has no stock transformers form; the message says why."""


def export_reward_model(path: str | Path, out: str | Path, trust: bool = False) -> Path:
    """Write the reward model in ``path`` to ``out`` as a plain ``AutoModelForSequenceClassification``
    checkpoint (``num_labels=1``, linear head) that gives the same scores; return ``out``."""
    from rewardlab.models.checkpoint import saved_kind
    from rewardlab.models.scalar import load_scalar_model, save_reward_model, warn_if_old_format

    path = Path(resolve_model_path(path))
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such directory")
    why = why_not_exportable(path)
    if why:
        raise ExportError(f"{path}: {why}")
    warn_if_old_format(path)
    kind = saved_kind(path)
    model = AS_CLASSIFIER[kind](path, trust) if kind else load_scalar_model(path, trust=trust)
    return save_reward_model(model, load_tokenizer(path), out)  # merges a LoRA adapter


def why_not_exportable(path: Path) -> str | None:
    """Why the directory ``path`` has no stock transformers form, or ``None`` when it has one."""
    from rewardlab.models.ensemble import is_ensemble_dir
    from rewardlab.models.judge_scorer import is_judge_dir

    if is_ensemble_dir(path):
        return ("an ensemble combines the rewards of several models (ensemble.json) and stock transformers "
                "holds one; export each member-i/ directory instead")
    if is_judge_dir(path):
        return ("a generative judge (rewardlab_judge.json) compares two responses with its LM head; it has "
                "no scalar reward head to export")
    from rewardlab.models.checkpoint import saved_kind

    kind = saved_kind(path)
    if kind and kind not in AS_CLASSIFIER:
        return (f"a reward model of kind {kind!r} has no stock transformers form that rewardlab knows; score it "
                "with rewardlab (load_scorer, rewardlab eval / score / serve)")
    meta = _meta(path)
    if meta is None:
        return ("not a rewardlab reward model (config.json has no 'rewardlab' section and there is no "
                "rewardlab_adapter.json)")
    if (meta.get("head") or {}).get("type") == "mlp":
        return ("an MLP reward head has no stock transformers form (the 'score' layer of "
                "AutoModelForSequenceClassification is one linear layer); score it with rewardlab "
                "(load_scorer, rewardlab eval / score / serve)")
    if (meta.get("head") or {}).get("pooling", "last") != "last":
        return ("a mean-pooled reward head has no stock transformers form (AutoModelForSequenceClassification "
                "reads the last token); score it with rewardlab (load_scorer, rewardlab eval / score / serve)")
    return None


def _meta(path: Path) -> dict | None:
    adapter = path / "rewardlab_adapter.json"
    if adapter.is_file():
        return json.loads(adapter.read_text())
    config = path / "config.json"
    if config.is_file():
        return json.loads(config.read_text()).get(META_KEY)
    return None


def _grm_as_classifier(path: Path, trust: bool) -> nn.Module:
    """The reward half of a GRM (backbone + reward head, LM head dropped; LoRA merged) as a
    sequence-classification model."""
    from transformers import AutoModelForSequenceClassification

    from rewardlab.models.grm import load_grm_model
    from rewardlab.models.scalar import FORMAT_VERSION, _install_head, head_config_of, quiet_transformers

    grm = load_grm_model(path, trust=trust)
    grm = grm.merge_and_unload() if hasattr(grm, "merge_and_unload") else grm
    head = head_config_of(grm.config)
    cfg = copy.deepcopy(grm.config)
    cfg.num_labels = 1
    cfg.architectures = None
    setattr(cfg, META_KEY, {"format_version": FORMAT_VERSION, "head": asdict(head)})
    with quiet_transformers():
        seq = AutoModelForSequenceClassification.from_config(cfg, dtype=next(grm.parameters()).dtype)
    _install_head(seq, head)
    getattr(seq, seq.base_model_prefix).load_state_dict(getattr(grm, grm.base_model_prefix).state_dict(), strict=True)
    seq.score.load_state_dict(grm.score.state_dict(), strict=True)
    return seq


AS_CLASSIFIER: dict[str, Callable[[Path, bool], nn.Module]] = {"grm": _grm_as_classifier}
"""Saved kind -> its reward half as a stock sequence-classification model ``(path, trust) -> model``; a plain
scalar checkpoint (no kind) is one already. A kind not listed here is not exportable."""
