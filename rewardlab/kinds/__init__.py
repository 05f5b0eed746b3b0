"""Reward-model kinds, one module each: ``scalar`` (a reward head on an LM: the Bradley-Terry family),
``grm`` (the reward head beside the kept LM head, regularised by a text-generation loss) and ``judge``
(generative judges: GenRM, STaR). A new kind is one module that subclasses :class:`Kind` and registers
itself (:func:`register_kind`); ``REWARDLAB_PLUGINS`` imports one from outside the package."""

from __future__ import annotations

from rewardlab.kinds import grm, judge, scalar  # noqa: E402,F401  (the built-in kinds register themselves)
from rewardlab.kinds.base import KINDS, Kind, register_kind

__all__ = ["KINDS", "Kind", "kind_of", "register_kind"]


def kind_of(variant_name: str) -> Kind:
    """The kind a registered variant trains (``Variant.kind``)."""
    from rewardlab.plugins import load_plugins
    from rewardlab.variants import VARIANTS

    load_plugins()
    return KINDS.get(VARIANTS.get(variant_name).kind)
