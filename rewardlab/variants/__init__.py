"""Reward-model variants, registered by name. Importing this package registers them all."""

from rewardlab.variants import bradley_terry, genrm, grm  # noqa: F401  (registers bt, ..., genrm, star_*, grm_sft, ...)
from rewardlab.variants.base import VARIANTS, Variant, make_variant, register_variant

__all__ = ["VARIANTS", "Variant", "make_variant", "register_variant"]
