"""GRM reward models: the base causal LM with its LM head kept, plus a reward head (``score``).

One forward pass over the backbone gives both the reward (the reward head at each sequence's last
real token, as for scalar models) and the LM head's log-probabilities of the response tokens. The LM
head only runs at the positions that predict a response token, so the prompt costs no vocabulary
projection. In packed batches a sequence's first token is never predicted from the previous
sequence's last one: log-probabilities stay within segment boundaries.

A checkpoint is an HF directory of the causal LM (safetensors) whose weights include ``score.*`` and
whose ``config.json`` says ``rewardlab: {kind: grm, head: ...}``. It reloads for further training
(both heads); :func:`rewardlab.models.export.export_reward_model` writes a plain
sequence-classification model (reward head only) that stock ``AutoModelForSequenceClassification``
loads with the same scores.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from rewardlab.assets import resolve_model_path
from rewardlab.losses.regularizers import token_logps
from rewardlab.models.batching import (
    Batch,
    PackedBatch,
    batch_from_inputs,
    choose_layout,
    forward_batches,
    hidden_states,
)
from rewardlab.models.checkpoint import adapter_base, saved_kind
from rewardlab.models.packing import enable_packing, pack_forked
from rewardlab.models.safety import check_checkpoint
from rewardlab.models.scalar import (
    FORMAT_VERSION,
    META_KEY,
    HeadConfig,
    _load_prefixed,
    backbone_of,
    choose_pad_id,
    head_config_of,
    make_head,
    quiet_transformers,
    record_encoding,
    set_pad,
    unwrap,
)

KIND = "grm"


def is_grm_config(config) -> bool:
    return (getattr(config, META_KEY, None) or {}).get("kind") == KIND


def is_grm_dir(path: str | Path) -> bool:
    """True when ``path`` holds a GRM checkpoint (full model, or LoRA adapter of one)."""
    return saved_kind(path) == KIND


def _causal_lm(path: str, dtype: torch.dtype, trust: bool) -> nn.Module:
    from transformers import AutoModelForCausalLM

    use_safe = check_checkpoint(path, trust)
    with quiet_transformers():  # the checkpoint's score.* weights are not the causal LM's: loaded below
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=trust,
                                                     use_safetensors=use_safe if use_safe else None)
    if model.get_output_embeddings() is None:
        raise ValueError(f"{path}: {type(model).__name__} has no LM head; GRM needs a causal LM")
    return model


def build_grm_model(base: str, tokenizer, head: HeadConfig | None = None,
                    dtype: torch.dtype = torch.float32, trust: bool = False) -> nn.Module:
    """A GRM on ``base``: a fresh reward head on a causal LM, or, when ``base`` is a GRM checkpoint,
    that checkpoint with its trained reward head (to train further; ``head`` is then ignored)."""
    path = resolve_model_path(base)
    model = _causal_lm(path, dtype, trust)
    saved = dict(getattr(model.config, META_KEY, None) or {})
    if is_grm_config(model.config):
        head = head_config_of(model.config)
        model.score = make_head(model.config.get_text_config().hidden_size, head).to(dtype)
        _load_prefixed(model, Path(path), "score.")
    else:
        head = head or HeadConfig()
        model.score = _fresh_head(model, head).to(dtype)
        model.config.pad_token_id = choose_pad_id(tokenizer)
        set_pad(tokenizer, model.config.pad_token_id)
    meta = {"format_version": FORMAT_VERSION, "kind": KIND, "head": asdict(head)}
    if saved.get("encoding"):  # a GRM checkpoint's truncation settings stay with it
        meta["encoding"] = saved["encoding"]
    setattr(model.config, META_KEY, meta)
    enable_packing(model)
    return model


def _fresh_head(model: nn.Module, head: HeadConfig) -> nn.Module:
    """A new head; a linear one is initialised as transformers initialises its ``score`` layer."""
    layer = make_head(model.config.get_text_config().hidden_size, head)
    if head.type == "linear":
        std = getattr(model.config.get_text_config(), "initializer_range", 0.02)
        nn.init.normal_(layer.weight, std=std)
    return layer


def load_grm_model(path: str | Path, dtype: torch.dtype = torch.float32, trust: bool = False) -> nn.Module:
    """Load a GRM directory (full model, or LoRA adapter + both heads) in eval mode."""
    from transformers import AutoTokenizer

    path = Path(resolve_model_path(path))
    if (path / "adapter_config.json").exists():
        from peft import PeftModel

        check_checkpoint(path, trust)
        meta = json.loads((path / "rewardlab_adapter.json").read_text())
        tok = AutoTokenizer.from_pretrained(str(path))
        base = build_grm_model(adapter_base(path, meta["base_model"]), tok, HeadConfig(**meta["head"]), dtype, trust)
        if meta.get("encoding"):
            record_encoding(base, **meta["encoding"])
        return PeftModel.from_pretrained(base, str(path)).eval()
    return build_grm_model(str(path), None, dtype=dtype, trust=trust).eval()


def lm_head_of(model: nn.Module) -> nn.Module:
    return unwrap(model).get_output_embeddings()


def grm_forward(model: nn.Module, batch: Batch,
                response_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rewards, summed response log-probabilities and scored tokens per sequence, each ``(n,)`` float32.

    ``response_mask`` has the shape of ``batch.input_ids`` (``(1, T)`` packed, ``(n, L)`` padded): 1 on
    the response tokens to score. Token ``t`` is scored as ``log π(x_t | x_<t)`` from the hidden state
    at ``t − 1`` of the same sequence: never a sequence's first token, never a padding position.
    """
    hidden = hidden_states(backbone_of(model), batch)
    n = hidden.num_sequences
    scored = response_mask.reshape(-1).bool().clone()
    if hidden.valid is not None:
        scored = scored & hidden.valid
    scored[hidden.starts] = False  # a first token has no predecessor in its own sequence
    tgt = scored.nonzero().squeeze(-1)
    rewards = unwrap(model).score(hidden.at_last()).squeeze(-1).float()
    lp = token_logps(lm_head_of(model)(hidden.flat[tgt - 1]), batch.input_ids.reshape(-1)[tgt])
    seg = hidden.seg[tgt]
    logps = torch.zeros(n, dtype=torch.float32, device=lp.device).index_add(0, seg, lp.float())
    count = torch.zeros(n, dtype=torch.float32, device=lp.device).index_add(0, seg, torch.ones_like(lp, dtype=torch.float32))
    return rewards, logps, count


class GRMForward(nn.Module):
    """Module whose ``forward`` returns ``(rewards, logps, tokens)``: what the Trainer drives for GRM."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, response_mask, position_ids=None, cu_seqlens=None, attention_mask=None,
                **_) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return grm_forward(self.model, batch_from_inputs(input_ids, position_ids, cu_seqlens, attention_mask),
                           response_mask)


def response_mask_for(lengths: list[int], prompt_lens: list[int], packed_layout: bool) -> torch.Tensor:
    """1 on response tokens: ``(1, Σ lengths)`` for a packed batch, ``(n, max length)`` right-padded."""
    if packed_layout:
        return torch.cat([torch.arange(n) >= p for n, p in zip(lengths, prompt_lens, strict=True)]).long()[None]
    width = max(lengths)
    col = torch.arange(width)[None]
    n, p = torch.tensor(lengths)[:, None], torch.tensor(prompt_lens)[:, None]
    return ((col >= p) & (col < n)).long()


@torch.inference_mode()
def response_logps(model: nn.Module, seqs: list[list[int]], prompt_lens: list[int],
                   batch_tokens: int = 8192, packing: bool = True,
                   autocast_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Summed response log-probabilities ``(n,)`` float32 of ``seqs`` under ``model`` (no gradients).

    What the reference cache holds: run once with the initial model before training. Sequences are
    batched by length (packed when the model supports it), so the result does not depend on the
    batch composition beyond float noise. ``autocast_dtype`` matches mixed-precision training.
    """
    device = next(model.parameters()).device
    inner = unwrap(model)
    layout = choose_layout(inner, device, packing)

    def step(batch, group):
        mask = response_mask_for([len(seqs[i]) for i in group], [prompt_lens[i] for i in group],
                                 isinstance(batch, PackedBatch))
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            return grm_forward(model, batch, mask.to(device))[1]

    with eval_mode(model):
        out = forward_batches(seqs, step, device, layout=layout, pad_id=inner.config.pad_token_id or 0,
                              batch_tokens=batch_tokens)
    return torch.stack(out).float() if out else torch.empty(0)


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """``model`` in eval mode (no dropout) inside the block, its former mode restored after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _shares_prompt(a: list[int], b: list[int], pa: int, pb: int) -> bool:
    return 0 < pa == pb and len(a) > pa and len(b) > pb and a[:pa] == b[:pb]


@torch.inference_mode()
def pair_response_logps(model: nn.Module, chosen: list[list[int]], rejected: list[list[int]],
                        chosen_prompt_lens: list[int], rejected_prompt_lens: list[int],
                        batch_tokens: int = 8192, packing: bool = True,
                        autocast_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed response log-probabilities of both sides of each pair, two ``(n,)`` float32 tensors.

    Where the chosen and rejected sequences of a pair start with the same prompt tokens (the usual
    case) and the model packs, the prompt runs once for both responses (forked packing); HH prompts
    are most of a pair's tokens. Other pairs go through :func:`response_logps` as two sequences. The
    numbers agree with :func:`response_logps` up to float noise.
    """
    n = len(chosen)
    pc, pr = list(chosen_prompt_lens), list(rejected_prompt_lens)
    device = next(model.parameters()).device
    forkable = choose_layout(unwrap(model), device, packing, fork=True) == "fork"
    shared = [i for i in range(n) if forkable and _shares_prompt(chosen[i], rejected[i], pc[i], pr[i])]
    is_shared = set(shared)
    rest = [i for i in range(n) if i not in is_shared]
    out_c, out_r = torch.empty(n, dtype=torch.float32), torch.empty(n, dtype=torch.float32)
    if rest:
        lp = response_logps(model, [chosen[i] for i in rest] + [rejected[i] for i in rest],
                            [pc[i] for i in rest] + [pr[i] for i in rest], batch_tokens, packing, autocast_dtype)
        out_c[rest], out_r[rest] = lp[:len(rest)], lp[len(rest):]
    if not shared:
        return out_c, out_r
    backbone, lm_head = backbone_of(model), lm_head_of(model)

    def build(group):
        idx = [shared[g] for g in group]
        return pack_forked([chosen[i][:pc[i]] for i in idx], [chosen[i][pc[i]:] for i in idx],
                           [rejected[i][pr[i]:] for i in idx])

    def step(fb, group):
        src, seg = [], []  # the row index predicting each response token, and its (pair, side)
        for j, (s, p, a, b) in enumerate(fb.forks):
            src += range(s + p - 1, s + p + a - 1)
            src += [s + p - 1, *range(s + p + a, s + p + a + b - 1)]
            seg += [2 * j] * a + [2 * j + 1] * b
        tgt = torch.cat([torch.arange(s + p, s + p + a + b) for s, p, a, b in fb.forks]).to(device)
        src_t, seg_t = torch.tensor(src, device=device), torch.tensor(seg, device=device)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            h = hidden_states(backbone, fb).flat
            lp = token_logps(lm_head(h[src_t]), fb.input_ids[0, tgt])
        sums = torch.zeros(2 * len(group), dtype=torch.float32, device=device).index_add(0, seg_t, lp.float())
        return sums.reshape(-1, 2)  # (pairs, [chosen, rejected])

    sizes = [len(chosen[i]) + len(rejected[i]) - pr[i] for i in shared]
    with eval_mode(model):
        got = forward_batches(shared, step, device, lengths=sizes, build=build, batch_tokens=batch_tokens)
    both = torch.stack(got)
    out_c[shared], out_r[shared] = both[:, 0], both[:, 1]
    return out_c, out_r
