"""Reward heads fitted on cached backbone features, with rewardlab's own head modules and BT loss.

A head reads one feature vector per response (``(n, hidden)``, standardised with the training set's
mean and standard deviation) and gives one reward. It is trained with
:func:`rewardlab.losses.bradley_terry_loss` (optionally with the pairs' gold gap as the margin, as
``bt_margin`` does) by AdamW on minibatches. The user-level knobs (learning rate, weight decay,
epochs) are chosen on a validation split of the training instructions; the chosen setting is then
refitted on every training pair. Held-out instructions are never seen before the final evaluation.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from rewardlab.losses import bradley_terry_loss
from rewardlab.models.scalar import HeadConfig, make_head

LRS = (1e-3, 1e-2)
WEIGHT_DECAYS = (0.0, 0.1)
EPOCHS = (5, 20, 60)
"""The grid: every (lr, weight decay) is trained once for max(EPOCHS) epochs and read at each of EPOCHS."""
BATCH = 64
"""Pairs per AdamW step."""
MLP_HIDDEN = [256]
"""Width of the MLP head's hidden layer (ReLU), as ``model.mlp_hidden`` would set it."""


@dataclass
class PairFeatures:
    """Features of the chosen and rejected responses, each ``(n, hidden)``, and the gold gaps ``(n,)``."""

    chosen: torch.Tensor
    rejected: torch.Tensor
    margin: torch.Tensor

    def take(self, idx: np.ndarray) -> PairFeatures:
        i = torch.as_tensor(idx, dtype=torch.long)
        return PairFeatures(self.chosen[i], self.rejected[i], self.margin[i])


def standardiser(train: PairFeatures) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation ``(hidden,)`` over the training responses (both sides)."""
    x = torch.cat([train.chosen, train.rejected])
    return x.mean(0), x.std(0).clamp(min=1e-6)


def fit(train: PairFeatures, head_type: str, lr: float, weight_decay: float, epochs: int,
        use_margin: bool = False, seed: int = 0, read_at: tuple[int, ...] = (),
        on_read=None) -> torch.nn.Module:
    """Train a fresh ``head_type`` head (``linear`` or ``mlp``) on standardised features; calls
    ``on_read(epoch, head)`` after each epoch in ``read_at``. Returns the head (standardisation
    folded in by :func:`rewards`' caller)."""
    torch.manual_seed(seed)
    head = make_head(train.chosen.shape[1], HeadConfig(head_type, list(MLP_HIDDEN)))
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    n = train.chosen.shape[0]
    for epoch in range(1, epochs + 1):
        head.train()
        for idx in torch.randperm(n, generator=gen).split(BATCH):
            rc = head(train.chosen[idx]).squeeze(-1)
            rr = head(train.rejected[idx]).squeeze(-1)
            loss = bradley_terry_loss(rc, rr, margin=train.margin[idx] if use_margin else None)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch in read_at and on_read is not None:
            head.eval()
            on_read(epoch, head)
    return head.eval()


@torch.no_grad()
def outcomes(head: torch.nn.Module, data: PairFeatures) -> np.ndarray:
    """1 right, 0.5 tie, 0 wrong per pair, ``(n,)``."""
    from rewardlab.eval.pairwise import pair_outcomes

    return pair_outcomes(head(data.chosen).squeeze(-1), head(data.rejected).squeeze(-1))


def choose(train: PairFeatures, val: PairFeatures, head_type: str, use_margin: bool = False,
           seed: int = 0) -> tuple[dict, list[dict]]:
    """The grid on (train, val): the setting with the best validation accuracy (ties: fewer epochs,
    then the smaller lr) and every setting's validation accuracy."""
    grid = []
    for lr, wd in itertools.product(LRS, WEIGHT_DECAYS):
        def read(epoch, head, lr=lr, wd=wd):
            grid.append({"lr": lr, "weight_decay": wd, "epochs": epoch,
                         "val_accuracy": float(outcomes(head, val).mean())})

        fit(train, head_type, lr, wd, max(EPOCHS), use_margin, seed, EPOCHS, read)
    best = max(grid, key=lambda g: (round(g["val_accuracy"], 6), -g["epochs"], -g["lr"]))
    return best, grid


def fit_and_evaluate(train: PairFeatures, val_idx: np.ndarray, evals: dict[str, PairFeatures],
                     head_type: str, use_margin: bool = False, seed: int = 0) -> dict:
    """Standardise, choose the setting on the validation instructions, refit on every training pair
    and return ``choice``, ``grid`` and ``outcomes`` (per eval set, ``(n,)``)."""
    mean, std = standardiser(train)

    def z(d: PairFeatures) -> PairFeatures:
        return PairFeatures((d.chosen - mean) / std, (d.rejected - mean) / std, d.margin)

    ztrain = z(train)
    fit_idx = np.setdiff1d(np.arange(train.chosen.shape[0]), val_idx)
    best, grid = choose(ztrain.take(fit_idx), ztrain.take(val_idx), head_type, use_margin, seed)
    head = fit(ztrain, head_type, best["lr"], best["weight_decay"], best["epochs"], use_margin, seed)
    return {"choice": best, "grid": grid, "outcomes": {k: outcomes(head, z(v)) for k, v in evals.items()}}
