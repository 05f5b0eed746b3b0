"""Bradley-Terry preference losses.

Under the Bradley-Terry model P(chosen ≻ rejected) = σ(r_c − r_r). Its negative log-likelihood, with
the usual variants:

- margin (Llama 2 style): ``−log σ(r_c − r_r − m)`` asks the gap to exceed a per-pair margin ``m``;
- label smoothing: the label is correct with probability ``1 − ε``:
  ``−(1 − ε)·log σ(Δ) − ε·log σ(−Δ)``;
- reward centering (Eisenstein et al. 2023): ``+ c·mean((r_c + r_r)²)`` keeps rewards near zero,
  since BT only identifies rewards up to a constant.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    margin: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    center_coef: float = 0.0,
) -> torch.Tensor:
    """Mean Bradley-Terry loss over a batch.

    Args:
        chosen: rewards of the preferred responses, ``(batch,)``.
        rejected: rewards of the dispreferred responses, ``(batch,)``.
        margin: optional required gap per pair, ``(batch,)``; ``None`` means 0.
        label_smoothing: ε in [0, 0.5), the assumed probability that a label is flipped.
        center_coef: c ≥ 0, weight of the reward-centering penalty.

    Returns:
        A scalar tensor.
    """
    if chosen.shape != rejected.shape or chosen.dim() != 1:
        raise ValueError(f"chosen and rejected must both be (batch,), got {tuple(chosen.shape)} "
                         f"and {tuple(rejected.shape)}")
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    delta = chosen - rejected
    if margin is not None:
        delta = delta - margin.to(delta.dtype)
    loss = -(1.0 - label_smoothing) * F.logsigmoid(delta) - label_smoothing * F.logsigmoid(-delta)
    loss = loss.mean()
    if center_coef:
        loss = loss + center_coef * center_penalty(chosen, rejected)
    return loss


def center_penalty(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """``mean((r_c + r_r)²)`` over the batch; chosen, rejected: ``(batch,)``."""
    return ((chosen + rejected) ** 2).mean()
