"""Pure loss functions (torch only); trainers, evaluation and the server reuse them."""

from rewardlab.losses.bradley_terry import bradley_terry_loss, center_penalty
from rewardlab.losses.regularizers import (
    ResponseLogps,
    dpo_regularizer,
    grm_loss,
    nll_regularizer,
    sft_regularizer,
    token_logps,
)

__all__ = [
    "ResponseLogps",
    "bradley_terry_loss",
    "center_penalty",
    "dpo_regularizer",
    "grm_loss",
    "nll_regularizer",
    "sft_regularizer",
    "token_logps",
]
