"""Language-model regularisers for reward models that keep their LM head (GRM, Yang et al. 2024).

GRM ("Regularizing Hidden States Enables Learning Generalizable Reward Model for LLMs") trains a
reward head and the base model's LM head over the same hidden states. The LM head's loss keeps the
hidden states useful for text generation, which the Bradley-Terry loss alone distorts. Every function
takes summed response log-probabilities ``Σ_t log π(y_t | x, y_<t)`` over response tokens only (the
prompt is never scored), one number per sequence:

- ``sft``: ``−log σ(β · log π(y_c | x))``, the DPO form of supervised fine-tuning on the chosen
  response without a reference; :func:`nll_regularizer` is the plain token-mean NLL instead;
- ``dpo``: ``−log σ(β · [(log π(y_c|x) − log π_ref(y_c|x)) − (log π(y_r|x) − log π_ref(y_r|x))])``;
- ``dpo_noref``: the same with ``log π_ref = 0``.

:func:`grm_loss` mixes them with Bradley-Terry as ``(1 − α)·BT + α·L_reg``, the form of the paper's
released code. The paper writes ``BT + α'·L_reg``; the two are the same objective up to the overall
scale ``(1 − α)`` (which the learning rate absorbs) with ``α' = α / (1 − α)``: α = 0.01 is α' ≈ 0.0101.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class ResponseLogps:
    """Summed response log-probabilities of one batch of pairs, each ``(batch,)`` float32.

    ``rejected`` is ``None`` when the loss does not need it (the LM head then skips those tokens);
    ``ref_*`` are the frozen reference model's (cached before training), ``None`` without one.
    """

    chosen: torch.Tensor
    chosen_tokens: torch.Tensor
    """Response tokens scored in each chosen sequence, ``(batch,)``."""
    rejected: torch.Tensor | None = None
    ref_chosen: torch.Tensor | None = None
    ref_rejected: torch.Tensor | None = None


def token_logps(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log softmax(logits)[target]`` per row. logits: ``(k, vocab)``; targets: ``(k,)`` → ``(k,)`` float32."""
    return -F.cross_entropy(logits.float(), targets, reduction="none")


def sft_regularizer(chosen_logps: torch.Tensor, beta: float) -> torch.Tensor:
    """``mean(−log σ(β · chosen_logps))``; chosen_logps: ``(batch,)`` summed log π(y_c | x)."""
    return -F.logsigmoid(beta * chosen_logps).mean()


def nll_regularizer(chosen_logps: torch.Tensor, chosen_tokens: torch.Tensor) -> torch.Tensor:
    """Token-mean NLL of the chosen responses: ``−Σ chosen_logps / Σ chosen_tokens`` over the batch.

    chosen_logps: ``(batch,)`` summed log-probabilities; chosen_tokens: ``(batch,)`` tokens summed.
    """
    return -chosen_logps.sum() / chosen_tokens.sum().clamp(min=1).to(chosen_logps.dtype)


def dpo_regularizer(
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor | None,
    ref_rejected_logps: torch.Tensor | None,
    beta: float,
) -> torch.Tensor:
    """DPO loss ``mean(−log σ(β · [(π_c − ref_c) − (π_r − ref_r)]))``, every input ``(batch,)``
    summed log-probabilities; ``None`` references mean reference-free (``ref = 0``)."""
    logits = chosen_logps - rejected_logps
    if ref_chosen_logps is not None or ref_rejected_logps is not None:
        if ref_chosen_logps is None or ref_rejected_logps is None:
            raise ValueError("give both reference log-probabilities or neither")
        logits = logits - (ref_chosen_logps - ref_rejected_logps).to(logits.dtype)
    return -F.logsigmoid(beta * logits).mean()


def grm_loss(bt: torch.Tensor, reg: torch.Tensor | None, alpha: float) -> torch.Tensor:
    """``(1 − α)·bt + α·reg`` for α in [0, 1]; α = 0 returns ``bt`` itself (plain Bradley-Terry,
    the regulariser does not even enter the graph, so a NaN in it cannot leak into the gradients)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if alpha == 0.0:
        return bt
    if reg is None:
        raise ValueError(f"alpha={alpha} needs a regulariser value")
    return (1.0 - alpha) * bt + alpha * reg
