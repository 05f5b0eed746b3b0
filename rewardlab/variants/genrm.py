"""Generative reward models (Mahan et al. 2024): judges trained on preferences, then on their own reasoning.

- ``genrm``: SFT of the causal LM on the judge prompt with the preferred response's indicator token
  as the target, both orders of every pair (``rewardlab train``).
- ``star_sft``: CoT-GenRM by STaR: sample k rationales per training pair and order, keep those whose
  verdict matches the label, SFT on them, repeat (``rewardlab star``).
- ``star_rationalizer``: STaR plus rationalization: for an input with no correct rationale, sample one
  with the correct answer given as a hint and add it, without the hint, to the SFT set.
- ``star_dpo``: STaR-DPO: pairs (correct rationale, wrong rationale) of the same input, trained with
  the DPO loss against the model that generated them.

The zero-shot LLM-as-a-judge needs no training: ``rewardlab eval --model smollm2 --judge indicator``
(or ``--judge cot``). See :mod:`rewardlab.models.judge_scorer` for how each kind judges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from rewardlab.losses import ResponseLogps, dpo_regularizer, nll_regularizer
from rewardlab.variants.base import Variant, register_variant


@dataclass
class _Judge(Variant):
    kind = "judge"
    is_generative = True
    method: ClassVar[str] = "indicator"
    """How the trained judge judges: ``indicator`` or ``cot`` (see JudgeSettings.method)."""
    prompt: str = "default"
    """Judge prompt format: ``default`` (indicators 1/2), ``ab`` (A/B), or a YAML/JSON file of its fields."""

    def __post_init__(self) -> None:
        from rewardlab.models.judge import judge_prompt

        judge_prompt(self.prompt)  # a bad name or file fails when the recipe loads

    def judge_loss(self, logps: ResponseLogps) -> torch.Tensor:
        # SFT: token-mean NLL of the targets (the verdict token, or rationale + verdict).
        return nll_regularizer(logps.chosen, logps.chosen_tokens)


@register_variant("genrm")
@dataclass
class GenRM(_Judge):
    description = "GenRM: SFT on the judge prompt, target = the preferred response's indicator token (both orders)"


@dataclass
class _Star(_Judge):
    self_improving = True
    method: ClassVar[str] = "cot"
    rationalize: ClassVar[bool] = False
    """Inputs with no correct rationale get one generated with the correct answer as a hint."""
    iterations: int = 2
    """STaR iterations: generate rationales, filter by the label, train; repeat."""
    k: int = 4
    """Rationales sampled per training pair and order (and per order when judging)."""
    temperature: float = 0.7
    """Sampling temperature of the rationales (also the judge's, when evaluating)."""
    max_new_tokens: int = 128
    """Longest rationale, in tokens."""
    backend: str = "auto"
    """Generation backend: ``transformers``, ``vllm`` (GPU, when installed) or ``auto``."""
    restart: bool = True
    """Each iteration fine-tunes the initial model on the rationales of the latest one (as STaR does);
    false continues from the latest model."""
    sample_cache: str = ""
    """A directory keeping the first iteration's samples (drawn from the initial model), reused by any run
    with the same base model, pairs and sampling settings: STaR variants compared side by side sample once."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.iterations < 1 or self.k < 1 or self.max_new_tokens < 1:
            raise ValueError("variant.iterations, variant.k and variant.max_new_tokens must be >= 1")
        if self.temperature < 0:
            raise ValueError(f"variant.temperature must be >= 0, got {self.temperature}")
        if self.backend not in ("auto", "transformers", "vllm"):
            raise ValueError(f"variant.backend must be auto, transformers or vllm, got {self.backend!r}")


@register_variant("star_sft")
@dataclass
class StarSFT(_Star):
    description = "CoT-GenRM by STaR: SFT on the model's own rationales whose verdict matches the label"


@register_variant("star_rationalizer")
@dataclass
class StarRationalizer(_Star):
    description = "STaR + rationalizer: inputs with no correct rationale get one generated with the answer as a hint"
    rationalize = True


@register_variant("star_dpo")
@dataclass
class StarDPO(_Star):
    description = "STaR-DPO: DPO on (correct, wrong) rationale pairs of the same input"
    needs_rejected_logps = True
    needs_reference = True
    beta: float = 0.1
    """β of the DPO loss −log σ(β·[(log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l))])."""
    restart: bool = False
    """DPO continues from the latest model (its own reference)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta <= 0:
            raise ValueError(f"variant.beta must be > 0, got {self.beta}")

    def judge_loss(self, logps: ResponseLogps) -> torch.Tensor:
        if logps.rejected is None or logps.ref_chosen is None or logps.ref_rejected is None:
            raise ValueError("star_dpo needs policy and reference log-probabilities of both rationales")
        return dpo_regularizer(logps.chosen, logps.rejected, logps.ref_chosen, logps.ref_rejected, self.beta)
