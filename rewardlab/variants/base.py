"""What a reward-model variant is: its options (a dataclass), its loss, and its capabilities.

Callers (trainer, CLI, evaluation) read the capability flags and never switch on a variant's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from rewardlab.registry import Registry


@dataclass
class Variant:
    """Base class of every variant. Subclasses are dataclasses whose fields are the recipe's
    ``variant.*`` options; each field's docstring is its documentation."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    frozen_backbone: ClassVar[bool] = False
    """Only the head trains; backbone features are computed once and cached."""
    needs_margin: ClassVar[bool] = False
    """Every training pair must carry a ``margin``."""

    def loss(self, chosen: torch.Tensor, rejected: torch.Tensor,
             margin: torch.Tensor | None = None) -> torch.Tensor:
        """Scalar loss from rewards of chosen and rejected responses, each ``(batch,)``."""
        raise NotImplementedError


VARIANTS: Registry[type[Variant]] = Registry("variant")


def register_variant(name: str):
    """Class decorator: register a Variant subclass under ``name`` (once)."""

    def deco(cls: type[Variant]) -> type[Variant]:
        cls.name = name
        return VARIANTS.register(name)(cls)

    return deco


def make_variant(name: str, options: dict | None = None) -> Variant:
    """Instantiate a registered variant; unknown option names raise naming the key."""
    import dataclasses
    import difflib

    cls = VARIANTS.get(name)
    options = dict(options or {})
    known = {f.name for f in dataclasses.fields(cls)}
    for key in options:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean 'variant.{close[0]}'?" if close else ""
            raise ValueError(f"variant {name!r} has no option 'variant.{key}'{hint} "
                             f"(options: {', '.join(sorted(known)) or 'none'})")
    return cls(**options)
