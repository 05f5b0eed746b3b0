"""Pure loss functions (torch only); trainers, evaluation and the server reuse them."""

from rewardlab.losses.bradley_terry import bradley_terry_loss, center_penalty

__all__ = ["bradley_terry_loss", "center_penalty"]
