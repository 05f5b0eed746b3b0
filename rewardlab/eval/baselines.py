"""Null baselines and length control: how much of an accuracy a length heuristic would get by itself.

Length is the number of characters of the judged response (the text of its messages joined), which
needs no tokenizer and is the same for every model. ``prefer the longer`` wins a pair when the chosen
response is longer, loses when shorter; equal lengths are ties (reported, and counted half in
``accuracy`` and as a loss in ``accuracy_ties_as_loss``, as in :mod:`rewardlab.eval.pairwise`).

**Length-controlled accuracy** asks whether a model is right when length does not help: pairs are
binned by the relative length difference ``(len_c − len_r) / max(len_c, len_r)`` and accuracy is
reported per bin; the single number ``length_controlled_accuracy`` is the mean of the accuracy on pairs
where the chosen response is longer and the accuracy on pairs where it is shorter. A pure length
heuristic (either direction) scores exactly 0.5 on it, whatever the data's length balance.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from rewardlab.types import Conversation, PreferencePair

DEFAULT_BIN_EDGES = (-1.0, -0.5, -0.2, -0.05, 0.05, 0.2, 0.5, 1.0)
"""Edges of the relative length-difference bins; the middle bin holds pairs of about equal length."""


def response_length(conv: Conversation) -> int:
    """Characters in a response's messages."""
    return sum(len(m.get("content", "")) for m in conv)


def lengths(pairs: Sequence[PreferencePair]) -> tuple[np.ndarray, np.ndarray]:
    """``(n,)`` chosen and rejected response lengths in characters."""
    return (np.array([response_length(p.chosen) for p in pairs], dtype=float),
            np.array([response_length(p.rejected) for p in pairs], dtype=float))


def _block(o: np.ndarray) -> dict:
    return {"accuracy": float(o.mean()) if o.size else None,
            "accuracy_ties_as_loss": float((o == 1).mean()) if o.size else None,
            "n": int(o.size), "ties": int((o == 0.5).sum())}


def length_outcomes(pairs: Sequence[PreferencePair], rule: str) -> np.ndarray:
    """``(n,)`` outcomes of ``prefer_longer`` or ``prefer_shorter``: 1 right, 0.5 equal lengths, 0 wrong."""
    lc, lr = lengths(pairs)
    if rule not in ("prefer_longer", "prefer_shorter"):
        raise ValueError(f"unknown length rule {rule!r}")
    wins = lc > lr if rule == "prefer_longer" else lc < lr
    return np.where(lc == lr, 0.5, wins.astype(float))


def length_baselines(pairs: Sequence[PreferencePair]) -> dict:
    """``prefer_longer`` and ``prefer_shorter`` overall and per subset (``accuracy``, ties, n)."""
    longer, shorter = length_outcomes(pairs, "prefer_longer"), length_outcomes(pairs, "prefer_shorter")
    groups: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(pairs):
        groups[p.subset or p.source or "all"].append(i)
    out = {}
    for name, o in (("prefer_longer", longer), ("prefer_shorter", shorter)):
        out[name] = {**_block(o), "per_subset": {k: _block(o[idx]) for k, idx in sorted(groups.items())}}
    return out


def length_controlled(pairs: Sequence[PreferencePair], outcomes: np.ndarray,
                      edges: Sequence[float] = DEFAULT_BIN_EDGES) -> dict:
    """Accuracy per relative length-difference bin and the length-controlled accuracy (see module doc).

    ``outcomes`` ``(n,)``: 1 right, 0.5 tie, 0 wrong, in the order of ``pairs``.
    """
    lc, lr = lengths(pairs)
    rel = np.where(np.maximum(lc, lr) > 0, (lc - lr) / np.maximum(np.maximum(lc, lr), 1), 0.0)
    edges = np.asarray(edges, dtype=float)
    which = np.clip(np.searchsorted(edges, rel, side="right") - 1, 0, len(edges) - 2)
    bins = []
    for b in range(len(edges) - 1):
        o = outcomes[which == b]
        bins.append({"range": [float(edges[b]), float(edges[b + 1])], **_block(o)})
    longer, shorter = outcomes[lc > lr], outcomes[lc < lr]
    parts = [float(x.mean()) for x in (longer, shorter) if x.size]
    return {"bins": bins, "length_controlled_accuracy": float(np.mean(parts)) if len(parts) == 2 else None,
            "accuracy_chosen_longer": float(longer.mean()) if longer.size else None,
            "accuracy_chosen_shorter": float(shorter.mean()) if shorter.size else None,
            "n_chosen_longer": int(longer.size), "n_chosen_shorter": int(shorter.size),
            "n_equal_length": int((lc == lr).sum()), "length_unit": "characters"}
