"""How close two float32 computations of the same quantity can be required to be.

Every numeric tolerance in the suite that compares fp32 results of one computation done two ways
(packed / padded / forked / one by one rows, batch sizes, stock transformers against rewardlab, a
saved and reloaded model, another CPU, thread count or a GPU) comes from here, not from a round
constant: fp32 sums in another order differ in the last bits, and how many bits depends on how many
terms were summed and how large they were. (``1e-5`` failed on AVX-512 Xeons for a gradient whose
largest entry was 0.52: another blocking of the same sums moved it by 6.4e-6.)

The model (Higham and Mary, "A New Approach to Probabilistic Rounding Error Analysis", SIAM J. Sci.
Comput. 41(5), 2019): each addition or multiplication rounds with a relative error of at most
u = 2^-24, and those errors behave as independent, zero-mean random variables. A result built from
N rounded operations of terms of magnitude S then deviates from the exact value by a sum of N such
errors: with probability at least 1 - 2 exp(-λ²/2), by at most λ·√N·u·S. Two orders of the same
computation each stay within that, so they differ by at most λ·√N·eps·S (eps = 2u = 1.19e-7).

- N, the terms summed along the way from input to result, is counted from the model's shape by
  :func:`forward_terms` (a reward or log-probability) and :func:`grad_terms` (a weight gradient).
- S is the magnitude of the compared tensor: its largest absolute value.
- λ = :data:`SIGMAS` = 10, which the model says is exceeded with probability below 4e-22.

This is not a rigorous bound through a network's nonlinearities (norms and softmax can amplify
an error), so ``tests/component/test_fp32_tolerance.py`` checks it on every machine the suite runs
on: the tiny models' fp32 rewards and gradients, computed in several orders (thread counts, packed
and padded batches, forked pairs, permuted hidden units), stay within half of it of float64. On an
AMD EPYC (Zen 3, AVX2) the gradient of ``test_forked_pairs_give_the_rewards_and_gradients_of_
separate_sequences`` deviates by 8.1e-6 of its largest entry against a tolerance of 4.4e-5, and the
6.4e-6 / 0.52 = 1.2e-5 seen on an AVX-512 Xeon is within it too.

Two trainings that differ only in fp32 order (forked pairs or not, one process or two) drift apart
step by step; :func:`trained_loss_atol` and :func:`adam_atol` carry the per-step bounds through a
few Adam steps to first order.

Comparisons that are exact by construction (the same operations in the same order on the same
inputs: a reloaded checkpoint, a resumed run) stay exact, and say so where they are made.
"""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close

EPS = torch.finfo(torch.float32).eps
"""Spacing of fp32 numbers at 1 (2^-23): twice the unit roundoff u."""

SIGMAS = 10.0
"""λ: how many standard deviations of the random-rounding model a tolerance allows."""


def forward_terms(config, seq_len: int, vocab: bool = False) -> int:
    """N for an output of a transformer ``config`` (llama- or BERT-style) over ``seq_len`` tokens.

    The reductions one value passes through in each layer: the norm's mean of squares (hidden), a q,
    k or v projection (hidden), an attention score (head dim), the softmax normaliser and the weighted
    sum of values (seq_len each), the output projection (hidden), the second norm (hidden), and the
    MLP's projections (hidden, then intermediate). Then the final norm and the reward head (hidden
    each). ``vocab``: the output is a log-probability, which adds the LM head (hidden) and the
    log-softmax normaliser (vocabulary), summed over up to ``seq_len`` response tokens."""
    hidden, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    head_dim = getattr(config, "head_dim", None) or hidden // config.num_attention_heads
    per_layer = 5 * hidden + head_dim + 2 * seq_len + inter
    n = layers * per_layer + 2 * hidden
    if vocab:
        n += hidden + config.vocab_size + seq_len
    return n


def grad_terms(config, seq_len: int, tokens: int) -> int:
    """N for a weight gradient: the backward pass goes back along the forward's path, and a weight's
    gradient sums a contribution from every one of the batch's ``tokens``."""
    return 2 * forward_terms(config, seq_len) + tokens


def magnitude(x: torch.Tensor | float) -> float:
    """S: the largest absolute value (of a tensor or a number)."""
    return float(x.detach().abs().max()) if isinstance(x, torch.Tensor) else abs(float(x))


def fp32_atol(terms: int, scale: torch.Tensor | float) -> float:
    """λ·√N·eps·S: how far apart two fp32 orders of a computation of ``terms`` terms can be, for
    results of the magnitude of ``scale`` (see the module docstring)."""
    return SIGMAS * math.sqrt(terms) * EPS * magnitude(scale)


def fp32_tol(terms: int, scale: torch.Tensor | float) -> dict[str, float]:
    """:func:`fp32_atol` as ``assert_close`` / ``allclose`` keyword arguments (``rtol`` 0: the error
    scales with the magnitude of the summed terms, not with each entry)."""
    return {"atol": fp32_atol(terms, scale), "rtol": 0.0}


def assert_fp32_close(actual: torch.Tensor, expected: torch.Tensor, terms: int, msg: str | None = None) -> None:
    """``actual`` is ``expected`` computed in another order, within :func:`fp32_atol` of ``expected``'s
    magnitude."""
    assert_close(actual, expected, **fp32_tol(terms, expected), msg=msg)


ADAM_SMALLEST = 1e-2
"""The smallest gradient coordinate, relative to its tensor's largest, whose fp32 error :func:`adam_atol`
bounds: smaller ones barely move their weight, and their rounding shrinks with their own terms."""


def adam_atol(steps: int, lr: float, terms: int) -> float:
    """How far apart two fp32 orders of one Adam training (``steps`` steps at learning rate ``lr``, weight
    gradients of ``terms`` terms) may leave a weight.

    Adam divides each gradient coordinate by its running magnitude, so a relative error r in a
    coordinate's gradient changes that step's update by about 2·r·lr (to first order: the first and
    second moments both move). A coordinate at :data:`ADAM_SMALLEST` of its tensor's largest gradient has
    r up to fp32_atol(terms, 1) / ADAM_SMALLEST; the steps' errors add."""
    return 2 * steps * lr * fp32_atol(terms, 1.0) / ADAM_SMALLEST


def trained_loss_atol(step: int, terms: int, loss: float) -> float:
    """How far apart two fp32 orders of one training may log the loss of step ``step`` (1-based).

    Step 1 runs on the same weights: one forward's fp32 error (:func:`fp32_atol` of ``terms`` terms at
    the loss's magnitude; the loss moves less than the rewards it is computed from). Every step before
    moved the weights by fp32 errors of the same relative size, which to first order adds as much
    again: an estimate, not a bound. (Forked against separate pairs on the tiny llama, 6 steps: the
    logged losses differ by at most 6e-8, against 1.2e-4 here.)"""
    return step * fp32_atol(terms, loss)
