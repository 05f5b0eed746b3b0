"""The Scorer for scalar reward models: batching, packing, precision, and input checks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from rewardlab.data.encode import ChatEncoder, EncodeError
from rewardlab.data.validate import check_conversation
from rewardlab.models.base import BaseScorer
from rewardlab.models.batching import choose_layout, forward_batches
from rewardlab.models.loading import load_reward_model
from rewardlab.models.scalar import (
    backbone_of,
    encoding_of,
    head_features,
    head_of,
    reads_last_token,
    reward_forward,
    unwrap,
)
from rewardlab.precision import bf16_matmuls, compute_dtype, resolve_dtype
from rewardlab.types import Conversation, PreferencePair


def for_scoring(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """``model`` (fp32) ready to score in ``dtype``: bf16 runs the linear layers in bf16 and keeps the
    residual stream, norms and reward head in fp32 (:func:`rewardlab.precision.bf16_matmuls`)."""
    if dtype != torch.bfloat16:
        return model.to(dtype)
    inner = unwrap(model)
    lm_head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
    return bf16_matmuls(model, keep=[head_of(model), lm_head])


def resolve_device(name: str | torch.device | None) -> torch.device:
    """``None``/``auto`` -> the first CUDA device when there is one, else the CPU; other names as written.

    A CUDA device on a machine without one is a clear error, not a failure deep inside ``.to()``."""
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {name!r} ({e})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: no CUDA device is available on this machine")
    return device


class PairScoringMixin(BaseScorer):
    """``score_pairs`` and ``compare`` for any scalar scorer with ``encoder``, ``check_length``,
    ``score_ids`` and ``score`` (the single model and the ensemble share them)."""

    def score_pairs(self, pairs: Sequence[PreferencePair]) -> tuple[torch.Tensor, torch.Tensor]:
        """Rewards of chosen and rejected responses, each ``(n,)``, in one batched pass. A text that several
        pairs share (best-of-n pairs of one instruction share their samples) is scored once."""
        index: dict[tuple[int, ...], int] = {}
        where = []
        for side in ("chosen", "rejected"):
            for p in pairs:
                enc = self.encoder.encode(p.prompt, getattr(p, side), p.id)
                self.check_length(enc.ids, p.id)
                where.append(index.setdefault(tuple(enc.ids), len(index)))
        r = self.score_ids([list(ids) for ids in index])[torch.tensor(where, dtype=torch.long)]
        return r[: len(pairs)], r[len(pairs):]

    def compare(self, prompts: Sequence[Conversation], a: Sequence[Conversation],
                b: Sequence[Conversation]) -> torch.Tensor:
        """P(a ≻ b) = σ(r_a − r_b), ``(n,)``."""
        if not len(prompts) == len(a) == len(b):
            raise ValueError("prompts, a and b must have the same length")
        convs = [[*p, *x] for p, x in zip(prompts, a, strict=True)]
        convs += [[*p, *x] for p, x in zip(prompts, b, strict=True)]
        r = self.score(convs)
        n = len(prompts)
        return torch.sigmoid(r[:n] - r[n:])


class ScalarScorer(PairScoringMixin):
    """A scalar reward model behind the :class:`rewardlab.types.Scorer` interface.

    ``score`` reads one reward per conversation; ``compare`` is σ(r_a − r_b). Scores do not depend on
    batch size, packing or padding side (within float tolerance): batches are formed by length and
    every sequence keeps its own positions and attention span.
    """

    can_score_ids = True

    def __init__(self, model: nn.Module, tokenizer, max_length: int | None = None,
                 batch_tokens: int = 8192, packing: bool | str = "auto", progress: bool = False,
                 min_prompt_tokens: int | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        if min_prompt_tokens is None:  # what the checkpoint trained with (data.min_prompt_tokens), else 32
            min_prompt_tokens = encoding_of(model).get("min_prompt_tokens", 32)
        self.encoder = ChatEncoder(tokenizer, max_length=max_length, min_prompt_tokens=min_prompt_tokens)
        self.batch_tokens = batch_tokens
        self.packing = packing
        self.progress = progress
        cfg = model.config
        self.max_positions = getattr(cfg, "max_position_embeddings", None)
        self.pad_id = cfg.pad_token_id if cfg.pad_token_id is not None else 0

    @property
    def layout(self) -> str:
        """How batches are laid out on the model's device, ``pack`` or ``pad``
        (:func:`rewardlab.models.batching.choose_layout`; ``packing="auto"`` packs where that pays)."""
        return choose_layout(unwrap(self.model), self.device, self._packing)

    @property
    def packing(self) -> bool:
        """Whether batches are packed rows (else length-sorted padded batches)."""
        return self.layout == "pack"

    @packing.setter
    def packing(self, value: bool | str) -> None:
        if value not in (True, False, "auto"):
            raise ValueError(f"packing must be True, False or 'auto', got {value!r}")
        self._packing = value

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @classmethod
    def load(cls, path: str | Path, dtype: str | torch.dtype = "float32", trust: bool = False,
             device: str | torch.device | None = None, **kwargs) -> ScalarScorer:
        """Load a reward-model directory onto ``device`` (default: CUDA when there is one, else CPU)
        to score in ``dtype`` (``auto``: bfloat16 where a measurement on ``device`` says it is faster)."""
        from rewardlab.models.checkpoint import load_tokenizer

        device = resolve_device(device)
        dtype = resolve_dtype(dtype, device)
        model = load_reward_model(path, torch.float32 if dtype == torch.bfloat16 else dtype, trust=trust)
        tok = load_tokenizer(path)
        return cls(for_scoring(model, dtype).to(device), tok, **kwargs)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype matmuls run in (bf16 scoring keeps the rest in fp32, see :func:`for_scoring`)."""
        return compute_dtype(self.model)

    def encode(self, convs: Sequence[Conversation], where: str = "conversation") -> list[list[int]]:
        """Token ids of each conversation, after the checks every input gets
        (:func:`rewardlab.data.validate.check_conversation`: a ``DataError`` names the bad field)."""
        seqs = []
        for i, conv in enumerate(convs):
            conv = check_conversation(conv, f"{where} {i}")
            ids = self.encoder.encode_conversation(conv, f"{where} {i}").ids
            self.check_length(ids, f"{where} {i}")
            seqs.append(ids)
        return seqs

    def check_length(self, ids: Sequence[int], where: str) -> None:
        if self.max_positions and len(ids) > self.max_positions:
            raise EncodeError(f"{where}: {len(ids)} tokens exceed the model's {self.max_positions} positions; "
                              "set max_length to truncate explicitly")

    @torch.inference_mode()
    def score_ids(self, seqs: Sequence[Sequence[int]]) -> torch.Tensor:
        """Rewards for tokenized sequences, ``(n,)`` float32, in input order.

        A sequence longer than the model's positions raises :class:`EncodeError` naming its index
        (positions past the table would give a score, silently wrong, or an index error)."""
        for i, s in enumerate(seqs):
            self.check_length(s, f"sequence {i}")
        out = forward_batches(seqs, lambda batch, _: reward_forward(self.model, batch), self.device,
                              layout=self.layout, pad_id=self.pad_id, batch_tokens=self.batch_tokens,
                              progress=self.progress)
        return torch.stack(out) if out else torch.empty(0)

    def score(self, convs: Sequence[Conversation]) -> torch.Tensor:
        return self.score_ids(self.encode(convs))

    @property
    def can_trace(self) -> bool:
        """A decoder reads its head at every position (encoders pool the whole sequence: no trace)."""
        return reads_last_token(self.model)

    def trace_ids(self, seqs: Sequence[Sequence[int]], prompt_lens: Sequence[int]) -> list:
        """Per-token traces: the reward of every prefix of each response (:mod:`rewardlab.models.trace`)."""
        from rewardlab.models.trace import TraceError, prefix_rewards_ids, prefix_traces

        if not self.can_trace:
            raise TraceError("per-token traces need a causal (decoder) reward model: this encoder pools the "
                             "whole sequence, so no position sees only its prefix")
        return prefix_traces(seqs, prompt_lens, prefix_rewards_ids(self, seqs))

    @torch.inference_mode()
    def features(self, seqs: Sequence[Sequence[int]]) -> torch.Tensor:
        """Backbone features the head reads, ``(n, hidden)`` float32 (for frozen-backbone training)."""
        if reads_last_token(self.model):
            def step(batch, _):
                return head_features(self.model, batch).float()
        else:
            def step(batch, _):
                return backbone_of(self.model)(input_ids=batch.input_ids, attention_mask=batch.attention_mask).pooler_output.float()
        return torch.stack(forward_batches(seqs, step, self.device, layout=self.layout, pad_id=self.pad_id,
                                           batch_tokens=self.batch_tokens))
