"""GRM: a Bradley-Terry reward head next to the base model's LM head, with an LM regulariser.

Yang et al. 2024, "Regularizing Hidden States Enables Learning Generalizable Reward Model for LLMs".
A reward head trained alone distorts the shared hidden states; keeping the LM head and adding a
text-generation loss on the same states keeps them general. The training loss is

    (1 − α) · BT(r_c, r_r) + α · L_reg

with α (``variant.alpha``, default 0.01) and β (``variant.beta``, default 0.1) as in the paper's
released code. The paper writes ``BT + α'·L_reg``: the same objective scaled by ``1 − α`` with
``α' = α / (1 − α)``. α = 0 is plain Bradley-Terry, bit for bit. See
:mod:`rewardlab.losses.regularizers` for the regularisers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rewardlab.losses import (
    ResponseLogps,
    bradley_terry_loss,
    dpo_regularizer,
    grm_loss,
    nll_regularizer,
    sft_regularizer,
)
from rewardlab.variants.base import Variant, register_variant


@dataclass
class _GRM(Variant):
    kind = "grm"
    has_lm_head = True
    alpha: float = 0.01
    """Weight of the LM regulariser in (1 − α)·BT + α·L_reg, in [0, 1]; 0 is plain Bradley-Terry."""
    beta: float = 0.1
    """β of the regulariser: scale of the summed response log-probabilities inside −log σ(β·...)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"variant.alpha must be in [0, 1], got {self.alpha}")
        if self.beta <= 0:
            raise ValueError(f"variant.beta must be > 0, got {self.beta}")

    def regularizer(self, logps: ResponseLogps) -> torch.Tensor:
        raise NotImplementedError

    def lm_loss(self, chosen, rejected, logps: ResponseLogps, margin=None) -> torch.Tensor:
        bt = bradley_terry_loss(chosen, rejected)
        if self.alpha == 0.0:
            return bt
        return grm_loss(bt, self.regularizer(logps), self.alpha)


@register_variant("grm_sft")
@dataclass
class GRMSFT(_GRM):
    description = "GRM with an SFT regulariser on the chosen response: −log σ(β·Σ log π(y_c|x))"
    nll: bool = False
    """Use the plain token-mean NLL of the chosen response instead of −log σ(β·Σ log π(y_c|x))."""

    def regularizer(self, logps: ResponseLogps) -> torch.Tensor:
        if self.nll:
            return nll_regularizer(logps.chosen, logps.chosen_tokens)
        return sft_regularizer(logps.chosen, self.beta)


@register_variant("grm_dpo")
@dataclass
class GRMDPO(_GRM):
    description = "GRM with a DPO regulariser of the LM head against the initial model (cached)"
    needs_rejected_logps = True
    needs_reference = True

    def regularizer(self, logps: ResponseLogps) -> torch.Tensor:
        if logps.rejected is None or logps.ref_chosen is None or logps.ref_rejected is None:
            raise ValueError("grm_dpo needs policy and reference log-probabilities of both responses")
        return dpo_regularizer(logps.chosen, logps.rejected, logps.ref_chosen, logps.ref_rejected, self.beta)


@register_variant("grm_dpo_noref")
@dataclass
class GRMDPONoRef(_GRM):
    description = "GRM with a reference-free DPO regulariser: −log σ(β·(Σ log π(y_c) − Σ log π(y_r)))"
    needs_rejected_logps = True

    def regularizer(self, logps: ResponseLogps) -> torch.Tensor:
        if logps.rejected is None:
            raise ValueError("grm_dpo_noref needs log-probabilities of the rejected responses")
        return dpo_regularizer(logps.chosen, logps.rejected, None, None, self.beta)
