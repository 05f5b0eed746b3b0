"""What a reward-model variant is: its options (a dataclass), its loss, and its capabilities.

Callers (trainer, CLI, evaluation) read the capability flags and never switch on a variant's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from rewardlab.losses.regularizers import ResponseLogps
from rewardlab.registry import Registry


@dataclass
class Variant:
    """Base class of every variant. Subclasses are dataclasses whose fields are the recipe's
    ``variant.*`` options; each field's docstring is its documentation."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    kind: ClassVar[str] = "scalar"
    """The reward-model kind this variant is an option of (:mod:`rewardlab.kinds`)."""
    frozen_backbone: ClassVar[bool] = False
    """Only the head trains; backbone features are computed once and cached."""
    needs_margin: ClassVar[bool] = False
    """Every training pair must carry a ``margin``."""
    has_lm_head: ClassVar[bool] = False
    """The model keeps the base model's LM head beside the reward head (GRM); training computes
    response log-probabilities and calls :meth:`lm_loss` instead of :meth:`loss`."""
    needs_rejected_logps: ClassVar[bool] = False
    """With ``has_lm_head``: the loss needs log-probabilities of the rejected responses too."""
    needs_reference: ClassVar[bool] = False
    """With ``has_lm_head``: the loss needs the initial model's log-probabilities, computed once
    before training and cached with the dataset."""
    is_generative: ClassVar[bool] = False
    """A pairwise judge (GenRM, CoT-GenRM): trains the causal LM on judge prompts through
    :meth:`judge_loss` and saves a judge directory (``rewardlab_judge.json``), not a reward head."""
    self_improving: ClassVar[bool] = False
    """With ``is_generative``: trained by the STaR loop (``rewardlab star``) on its own rationales."""
    CAPABILITIES: ClassVar[tuple[str, ...]] = ("frozen_backbone", "needs_margin", "has_lm_head", "needs_rejected_logps",
                                               "needs_reference", "is_generative", "self_improving")
    """The capability flags above, by name (what ``rewardlab variants`` shows)."""

    def loss(self, chosen: torch.Tensor, rejected: torch.Tensor,
             margin: torch.Tensor | None = None) -> torch.Tensor:
        """Scalar loss from rewards of chosen and rejected responses, each ``(batch,)``."""
        raise NotImplementedError

    def judge_loss(self, logps: ResponseLogps) -> torch.Tensor:
        """Scalar loss of ``is_generative`` variants from summed target log-probabilities: of the target
        (verdict or rationale) in ``chosen``; with ``needs_rejected_logps`` a worse rationale in ``rejected``."""
        raise NotImplementedError

    def lm_loss(self, chosen: torch.Tensor, rejected: torch.Tensor, logps: ResponseLogps,
                margin: torch.Tensor | None = None) -> torch.Tensor:
        """Scalar loss of ``has_lm_head`` variants: rewards ``(batch,)`` each, plus response log-probs."""
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
