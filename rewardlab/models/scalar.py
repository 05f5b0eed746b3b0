"""Scalar reward models: ``AutoModelForSequenceClassification`` with ``num_labels=1``.

The reward is read at the last real token of each sequence (decoder-only models: the last token of
the conversation as its chat template renders it, see :mod:`rewardlab.data.encode`), or from the
model's own pooled output (encoders such as BERT/MiniLM, which pool the first token). Heads are the
stock linear layer (so a trained model loads with plain transformers and gives the same scores) or
an MLP with 1-2 hidden ReLU layers; rewardlab records the head in ``config.json`` under ``rewardlab``.
A checkpoint has one pad id, in ``config.json`` and in its tokenizer, that real text never contains
(:func:`choose_pad_id`), so stock pooling of padded batches reads the same token.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from rewardlab import jsonout
from rewardlab.assets import resolve_model_path
from rewardlab.models.batching import (
    Batch,
    ForkedBatch,
    Hidden,
    PackedBatch,
    batch_from_inputs,
    hidden_states,
)
from rewardlab.models.checkpoint import (
    META_KEY,
    adapter_base,
    mark_mlp_checkpoint,
    portable_base,
    stored_config,
)
from rewardlab.models.packing import enable_packing
from rewardlab.models.safety import check_checkpoint

log = logging.getLogger("rewardlab")

POOLINGS = ("last", "mean")
"""What a reward head can read (:attr:`HeadConfig.pooling`)."""

FORMAT_VERSION = 2
"""What a checkpoint's scores mean. 2: the reward is read at the last token of the chat template's
rendering (SmolLM2: the ``\n`` after ``<|im_end|>``), where stock tools read it; 1 (older rewardlab): at
the turn terminator itself, so a version-1 head scored at the new position gives other numbers."""


@dataclass
class HeadConfig:
    """The reward head on top of the backbone's final hidden state."""

    type: str = "linear"
    """``linear`` (stock transformers layer, loads anywhere) or ``mlp``."""
    hidden_sizes: list[int] = field(default_factory=lambda: [256])
    """Widths of the MLP's hidden layers (1 or 2 of them); ignored for ``linear``."""
    pooling: str = "last"
    """What the head reads: ``last``, the final hidden state at the last real token (what stock
    transformers reads), or ``mean``, the final hidden states averaged over every real token, prompt and
    response (decoders only; no stock form, like an MLP head)."""

    def __post_init__(self) -> None:
        if self.type not in ("linear", "mlp"):
            raise ValueError(f"head.type must be 'linear' or 'mlp', got {self.type!r}")
        if self.type == "mlp" and not 1 <= len(self.hidden_sizes) <= 2:
            raise ValueError(f"head.hidden_sizes must list 1 or 2 widths, got {self.hidden_sizes}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"head.pooling must be one of {POOLINGS}, got {self.pooling!r}")

    @property
    def stock_readable(self) -> bool:
        """Whether stock ``AutoModelForSequenceClassification`` computes this head's reward: a linear
        layer over the last token."""
        return self.type == "linear" and self.pooling == "last"


def make_head(hidden: int, cfg: HeadConfig) -> nn.Module:
    if cfg.type == "linear":
        return nn.Linear(hidden, 1, bias=False)
    layers: list[nn.Module] = []
    width = hidden
    for h in cfg.hidden_sizes:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def unwrap(model: nn.Module) -> nn.Module:
    """The transformers model inside a peft or DDP wrapper (LoRA layers stay active)."""
    model = getattr(model, "module", model)
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def reads_last_token(model: nn.Module) -> bool:
    """Decoder-style classifiers (a ``score`` head over every position) read the last real token."""
    return hasattr(unwrap(model), "score")


def head_of(model: nn.Module) -> nn.Module:
    inner = unwrap(model)
    return inner.score if hasattr(inner, "score") else inner.classifier


def backbone_of(model: nn.Module) -> nn.Module:
    inner = unwrap(model)
    return getattr(inner, inner.base_model_prefix)


def head_input(model: nn.Module, hidden: Hidden) -> torch.Tensor:
    """What a decoder's reward head reads from ``hidden``, ``(n, hidden)``: its pooling (the last token,
    or the mean over each sequence's real tokens; forked pairs share their prompt, so they have no mean)."""
    if pooling_of(model) == "mean":
        return hidden.mean()
    return hidden.at_last()


def pooling_of(model: nn.Module) -> str:
    """The pooling the model's reward head reads (``last`` for every checkpoint that does not say)."""
    return head_config_of(unwrap(model).config).pooling


def head_features(model: nn.Module, batch: Batch) -> torch.Tensor:
    """What a decoder's reward head reads, ``(n, hidden)`` (``(2n,)`` rows for ``n`` forked pairs)."""
    return head_input(model, hidden_states(backbone_of(model), batch))


def reward_forward(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Rewards, ``(n,)`` float32, for a packed or padded batch (``(2n,)`` for ``n`` forked pairs)."""
    if reads_last_token(model):
        return head_of(model)(head_features(model, batch)).squeeze(-1).float()
    if isinstance(batch, PackedBatch | ForkedBatch):
        raise ValueError("this model cannot take packed batches (encoder); use padded batches")
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, 0].float()


class RewardForward(nn.Module):
    """Module whose ``forward`` returns rewards: what the Trainer (and DDP) wraps during training."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, position_ids=None, cu_seqlens=None, attention_mask=None, forks=None,
                **_) -> torch.Tensor:
        return reward_forward(self.model, batch_from_inputs(input_ids, position_ids, cu_seqlens, attention_mask, forks))


@contextlib.contextmanager
def quiet_transformers():
    """Silence load reports about the freshly initialised head (expected when building an RM)."""
    from transformers.utils import logging as hf_logging

    old = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(old)


def template_ids(tokenizer) -> set[int]:
    """The ids a probe conversation is encoded with: every token the chat template writes itself."""
    from rewardlab.data.encode import ChatEncoder

    probe = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
             {"role": "user", "content": "Thanks"}, {"role": "assistant", "content": "Bye."}]
    try:
        return set(ChatEncoder(tokenizer).encode_conversation(probe).ids)
    except Exception:  # a template that cannot render the probe (roles it refuses): nothing to avoid
        return set()


def choose_pad_id(tokenizer) -> int:
    """The pad id of a reward model: not EOS or BOS, and never written by the chat template, so stock
    pooling (the rightmost token that is not pad) finds the token rewardlab reads. The tokenizer's
    own pad when it qualifies, else its unk token (SmolLM2 pads with its turn terminator
    ``<|im_end|>``: it gets ``<|endoftext|>``, id 0), else the lowest id that qualifies."""
    taken = {tokenizer.eos_token_id, tokenizer.bos_token_id} | template_ids(tokenizer)
    for cand in (tokenizer.pad_token_id, tokenizer.unk_token_id):
        if cand is not None and cand not in taken:
            return cand
    return next(i for i in range(len(tokenizer)) if i not in taken)


def set_pad(tokenizer, pad_id: int) -> None:
    """Make ``pad_id`` the tokenizer's pad token (it is saved with the tokenizer)."""
    if tokenizer.pad_token_id != pad_id:
        tokenizer.pad_token = tokenizer.convert_ids_to_tokens(pad_id)


def _from_pretrained(path: str, dtype: torch.dtype, trust: bool, num_layers: int = 0, **kw):
    from transformers import AutoConfig, AutoModelForSequenceClassification

    use_safe = check_checkpoint(path, trust)
    config = stored_config(path)  # an MLP-head checkpoint hides its model type from stock loaders
    if num_layers:
        config = config or AutoConfig.from_pretrained(path, num_labels=1, trust_remote_code=trust)
        truncate_layers(config, num_layers, path)
    with quiet_transformers():
        return AutoModelForSequenceClassification.from_pretrained(
            path, **({"config": config} if config is not None else {"num_labels": 1}), dtype=dtype,
            use_safetensors=use_safe if use_safe else None, trust_remote_code=trust, **kw)


def _install_head(model: nn.Module, head: HeadConfig) -> None:
    if head.pooling != "last" and not hasattr(model, "score"):
        raise ValueError(f"{head.pooling} pooling needs a decoder-style classifier; {type(model).__name__} "
                         "pools its own")
    if head.type == "linear":
        return
    if not hasattr(model, "score"):
        raise ValueError(f"MLP heads need a decoder-style classifier; {type(model).__name__} pools its own")
    dtype = model.score.weight.dtype
    model.score = make_head(model.config.get_text_config().hidden_size, head).to(dtype)


def truncate_layers(config, num_layers: int, where: str) -> None:
    """Keep the first ``num_layers`` transformer blocks of ``config`` (in place); loading then reads only
    their weights, and the final hidden state is block ``num_layers``'s output (through the model's final
    norm, for decoders that have one)."""
    text = config.get_text_config()
    total = getattr(text, "num_hidden_layers", None)
    if total is None:
        raise ValueError(f"{where}: its config has no num_hidden_layers, so model.num_layers cannot truncate it")
    if not 1 <= num_layers <= total:
        raise ValueError(f"model.num_layers={num_layers}: {where} has {total} blocks; choose 1..{total} (0: all)")
    text.num_hidden_layers = num_layers
    if getattr(text, "layer_types", None):  # per-block attention kinds (sliding / full) follow the blocks
        text.layer_types = list(text.layer_types)[:num_layers]


def build_reward_model(base: str, tokenizer, head: HeadConfig | None = None,
                       dtype: torch.dtype = torch.float32, trust: bool = False, num_layers: int = 0) -> nn.Module:
    """A fresh scalar RM on ``base`` (local dir, hub id, or an embedded alias) with a new head, on the
    first ``num_layers`` blocks of ``base`` (0: all; :func:`truncate_layers`).
    ``tokenizer``'s pad becomes the model's (:func:`choose_pad_id`)."""
    head = head or HeadConfig()
    model = _from_pretrained(resolve_model_path(base), dtype, trust, num_layers)
    model.config.pad_token_id = choose_pad_id(tokenizer)
    set_pad(tokenizer, model.config.pad_token_id)
    _install_head(model, head)
    meta = {"format_version": FORMAT_VERSION, "head": asdict(head)}
    if num_layers:  # recorded for adapters, whose base must be cut the same way (a full model's config says it)
        meta["num_layers"] = num_layers
    setattr(model.config, META_KEY, meta)
    enable_packing(model)
    return model


def record_encoding(model: nn.Module, max_length: int | None, min_prompt_tokens: int) -> None:
    """Record in ``model``'s config the truncation it trained with (``data.max_length``,
    ``data.min_prompt_tokens``), saved with the checkpoint and read back when it scores."""
    config = unwrap(model).config
    meta = dict(getattr(config, META_KEY, None) or {})
    meta["encoding"] = {"max_length": max_length, "min_prompt_tokens": min_prompt_tokens}
    setattr(config, META_KEY, meta)


def encoding_of(model: nn.Module) -> dict:
    """The truncation a checkpoint recorded (:func:`record_encoding`); empty when it recorded none."""
    return dict((getattr(unwrap(model).config, META_KEY, None) or {}).get("encoding") or {})


def head_config_of(config) -> HeadConfig:
    meta = getattr(config, META_KEY, None) or {}
    return HeadConfig(**meta.get("head", {}))


def load_scalar_model(path: str | Path, dtype: torch.dtype = torch.float32, trust: bool = False,
                      head: Callable[[int], nn.Module] | None = None) -> nn.Module:
    """Load a trained scalar RM directory (full model, or LoRA adapter with its head). Any saved kind,
    GRM included: :func:`rewardlab.models.loading.load_reward_model`. ``head(hidden_size)`` builds a reward
    head of another shape (a kind's own), whose ``score.*`` weights are then read from the checkpoint."""
    path = Path(resolve_model_path(path))
    if (path / "adapter_config.json").exists():
        return _load_adapter(path, dtype, trust)
    model = _from_pretrained(str(path), dtype, trust)
    config = head_config_of(model.config)
    if head is not None:
        model.score = head(model.config.get_text_config().hidden_size).to(dtype)
        _load_prefixed(model, path, "score.")
    elif config.type != "linear":
        _install_head(model, config)
        _load_prefixed(model, path, "score.")
    enable_packing(model)
    return model.eval()


def warn_if_old_format(path: Path) -> None:
    """Say so when a checkpoint was trained to be read elsewhere than where it is scored now."""
    try:
        meta = json.loads((path / "config.json").read_text()).get(META_KEY) or {}
    except (OSError, ValueError):
        return  # an adapter (its base's config is its own) or no rewardlab checkpoint: nothing to say
    version = meta.get("format_version", FORMAT_VERSION)
    if version < FORMAT_VERSION:
        log.warning("%s: saved in checkpoint format %s, whose head learned the reward at the turn terminator; "
                    "rewardlab now reads it at the chat template's last token, where stock tools do, so its "
                    "scores differ from the ones it trained with: retrain it (or continue training from it)",
                    path, version)


def _load_prefixed(model: nn.Module, path: Path, prefix: str) -> None:
    from safetensors import safe_open

    state = {}
    for f in sorted(path.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as fh:
            state.update({k[len(prefix):]: fh.get_tensor(k) for k in fh.keys() if k.startswith(prefix)})  # noqa: SIM118
    if not state:
        raise ValueError(f"{path}: no '{prefix}*' weights found for the MLP head")
    model.score.load_state_dict(state, strict=True)


def _load_adapter(path: Path, dtype: torch.dtype, trust: bool) -> nn.Module:
    from peft import PeftModel
    from transformers import AutoTokenizer

    check_checkpoint(path, trust)  # vet the adapter before spending time on its base model
    meta = json.loads((path / "rewardlab_adapter.json").read_text())
    tok = AutoTokenizer.from_pretrained(str(path))
    base = build_reward_model(adapter_base(path, meta["base_model"]), tok, HeadConfig(**meta["head"]), dtype, trust,
                              meta.get("num_layers", 0))
    if meta.get("encoding"):
        record_encoding(base, **meta["encoding"])
    model = PeftModel.from_pretrained(base, str(path))
    return model.eval()


def save_reward_model(model: nn.Module, tokenizer, out: str | Path, merge: bool = True,
                      base_model: str | None = None) -> Path:
    """Write an HF directory (safetensors). A LoRA model is merged unless ``merge=False``, in which
    case the adapter, the head and the base model's name are written so it can be reloaded or merged.

    Merging folds the LoRA weights into ``model``'s own base layers (in place); its scores are unchanged.
    ``base_model`` defaults to the path peft recorded for the adapter; it is recorded portably
    (:func:`rewardlab.models.checkpoint.portable_base`). The tokenizer is saved with the model's pad
    id; an MLP-head model is saved so that stock transformers refuses it (see
    :mod:`rewardlab.models.checkpoint`).
    """
    out = Path(out)
    model = getattr(model, "module", model)
    adapter = hasattr(model, "peft_config") and not merge
    if adapter:
        base_model = base_model or model.peft_config[model.active_adapter].base_model_name_or_path
        if not base_model:
            raise ValueError("saving a LoRA adapter (merge=False) needs base_model: the directory or hub id "
                             "of the model it was trained on")
    out.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "merge_and_unload") and merge:
        model = model.merge_and_unload()
    inner = unwrap(model)
    if inner.config.pad_token_id is not None:
        set_pad(tokenizer, inner.config.pad_token_id)
    meta = getattr(inner.config, META_KEY, None) or {}
    if adapter:
        _save_adapter(model, out, portable_base(base_model, out), meta.get("kind"))
    else:
        model.save_pretrained(out, safe_serialization=True)
        if not HeadConfig(**meta.get("head", {})).stock_readable and not meta.get("kind"):
            mark_mlp_checkpoint(out)
    tokenizer.save_pretrained(out)
    return out


def _save_adapter(model: nn.Module, out: Path, base: str, kind: str | None) -> None:
    """The peft adapter and ``rewardlab_adapter.json`` (base model, head, kind), both naming ``base``
    rather than the training machine's path (peft saves with the real one first: it reads its config)."""
    model.save_pretrained(out, safe_serialization=True)
    f = out / "adapter_config.json"
    config = json.loads(f.read_text())
    config["base_model_name_or_path"] = base
    f.write_text(jsonout.dumps(config, indent=2, sort_keys=True) + "\n")
    meta = {"base_model": base, "head": asdict(head_config_of(unwrap(model).config))}
    layers = (getattr(unwrap(model).config, META_KEY, None) or {}).get("num_layers")
    if layers:  # the base is rebuilt on its first blocks only
        meta["num_layers"] = layers
    if kind:  # a model kind other than the plain scalar RM (e.g. grm) loads through its own builder
        meta["kind"] = kind
    if encoding_of(model):
        meta["encoding"] = encoding_of(model)
    (out / "rewardlab_adapter.json").write_text(jsonout.dumps(meta, indent=2) + "\n")
