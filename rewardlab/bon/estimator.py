"""The unbiased best-of-n estimator, its bootstrap interval, KL_bon and the Gao et al. fit.

Given N candidates with proxy scores ``s`` and gold values ``g``, best-of-n draws n of them uniformly at
random without replacement and keeps the one the proxy scores highest. Averaging over *all* C(N, n)
subsets (not one prefix of the list) has a closed form through order statistics: sort the candidates by
proxy score, rank 0 the lowest; candidate of rank i is the best of a subset exactly when the subset holds
it and n − 1 of the i candidates ranked below it, so

    P(rank i is chosen | n) = C(i, n − 1) / C(N, n),

and E[value of the choice] = Σ_i P(i) · value_i, for the proxy score and for the gold value alike.

Ties in the proxy score are broken deterministically: among equal scores the candidate that comes
*first* in the list wins (what ``numpy.argmax`` does on a subset kept in list order). That makes the
ranking a total order — equal scores are ranked by descending list position — and the formula exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def kl_bon(n: int | np.ndarray) -> np.ndarray:
    """KL(best-of-n policy ‖ base policy) = log n − (n − 1)/n (nats), the usual analytic value."""
    n = np.asarray(n, dtype=float)
    return np.log(n) - (n - 1) / n


def best_of_n_weights(N: int, n: int) -> np.ndarray:
    """``(N,)`` probabilities that the candidate of proxy rank i (0 = lowest) is best of a random n-subset."""
    if not 1 <= n <= N:
        raise ValueError(f"n must be in 1..{N}, got {n}")
    total = math.comb(N, n)
    return np.array([math.comb(i, n - 1) / total for i in range(N)])


def proxy_order(proxy: np.ndarray) -> np.ndarray:
    """Indices sorting candidates from worst to best; equal scores: the later list position ranks lower."""
    proxy = np.asarray(proxy, dtype=float)
    return np.lexsort((-np.arange(proxy.size), proxy))


def per_prompt_values(proxy: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``(N,)``: entry n−1 is E[``values`` of the proxy's best-of-n choice] over all size-n subsets.

    ``proxy`` and ``values`` are ``(N,)`` (``values`` may be the proxy itself, a gold score, or a win
    indicator). Cost O(N²) per prompt from the weights; N is small (≤ a few dozen).
    """
    proxy, values = np.asarray(proxy, dtype=float), np.asarray(values, dtype=float)
    if proxy.shape != values.shape or proxy.ndim != 1:
        raise ValueError(f"proxy and values must be (N,) of one length, got {proxy.shape} and {values.shape}")
    N = proxy.size
    sorted_values = values[proxy_order(proxy)]
    return np.array([best_of_n_weights(N, n) @ sorted_values for n in range(1, N + 1)])


def _bootstrap(matrix: np.ndarray, n_boot: int, seed: int, level: float) -> np.ndarray:
    """``(2, K)`` percentile interval of the column means of ``matrix`` ``(P, K)``, resampling rows."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, matrix.shape[0], size=(n_boot, matrix.shape[0]))
    means = np.stack([matrix[i].mean(axis=0) for i in idx])  # (n_boot, K)
    return np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2], axis=0)


def expected_best_of_n(
    proxy: Sequence[np.ndarray],
    gold: Sequence[np.ndarray] | None = None,
    win_threshold: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """The best-of-n curve over prompts, n = 1..N.

    ``proxy[p]`` and ``gold[p]`` are ``(N,)`` arrays for prompt p (every prompt has the same N).
    Returns ``n``, ``kl`` (KL_bon), ``proxy`` and ``gold`` (means over prompts of the per-prompt
    expectation, with ``*_ci`` percentile bootstrap intervals over prompts), ``gold_win_rate`` (the
    expected fraction of prompts whose choice has gold > ``win_threshold``) when a threshold is given, and
    ``oracle_*`` (the same curves when the gold value itself picks: the best any proxy could do).
    """
    sizes = {np.asarray(x).size for x in proxy}
    if len(sizes) != 1:
        raise ValueError(f"every prompt needs the same number of candidates, got sizes {sorted(sizes)}")
    N = sizes.pop()
    ns = np.arange(1, N + 1)
    out: dict = {"n": ns.tolist(), "kl": kl_bon(ns).tolist(), "prompts": len(proxy), "candidates": N}
    series = {"proxy": [(p, p) for p in proxy]}
    if gold is not None:
        if len(gold) != len(proxy):
            raise ValueError(f"{len(gold)} gold rows for {len(proxy)} prompts")
        series["gold"] = [(p, g) for p, g in zip(proxy, gold, strict=True)]
        series["oracle_gold"] = [(g, g) for g in gold]
        if win_threshold is not None:
            series["gold_win_rate"] = [(p, (np.asarray(g) > win_threshold).astype(float))
                                       for p, g in zip(proxy, gold, strict=True)]
            series["oracle_win_rate"] = [(g, (np.asarray(g) > win_threshold).astype(float)) for g in gold]
    for i, (name, rows) in enumerate(series.items()):
        matrix = np.stack([per_prompt_values(s, v) for s, v in rows])  # (P, N)
        lo, hi = _bootstrap(matrix, n_boot, seed + i, level)
        out[name] = matrix.mean(axis=0).tolist()
        out[f"{name}_ci"] = [lo.tolist(), hi.tolist()]
    if win_threshold is not None:
        out["win_threshold"] = win_threshold
    return out


def fit_gao(kl: Sequence[float], gain: Sequence[float]) -> dict:
    """Least-squares fit of Gao et al.'s best-of-n form gain ≈ d(α − β·d), d = √KL (no intercept).

    ``gain`` is the gold value minus its value at n = 1 (so the curve starts at 0 as the form demands).
    Returns ``alpha``, ``beta``, ``r2`` (against the mean of ``gain``; ``None`` when ``gain`` is constant), and where the fitted curve peaks
    (``d_peak`` = α/2β, ``kl_peak``, ``gain_peak``) when β > 0.
    """
    d = np.sqrt(np.asarray(kl, dtype=float))
    y = np.asarray(gain, dtype=float)
    if d.size < 2:
        raise ValueError("the Gao fit needs at least two points (n = 1, 2)")
    design = np.stack([d, -(d**2)], axis=1)
    (alpha, beta), *_ = np.linalg.lstsq(design, y, rcond=None)
    pred = design @ np.array([alpha, beta])
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - float(((y - pred) ** 2).sum()) / ss_tot if ss_tot > 0 else None
    fit = {"alpha": float(alpha), "beta": float(beta), "r2": r2, "form": "gold - gold(n=1) = d*(alpha - beta*d), d = sqrt(KL_bon)"}
    if beta > 0:
        d_peak = alpha / (2 * beta)
        fit.update(d_peak=float(d_peak), kl_peak=float(d_peak**2), gain_peak=float(alpha**2 / (4 * beta)))
    return fit


def paired_best_of_n(
    proxy_a: Sequence[np.ndarray],
    proxy_b: Sequence[np.ndarray] | None,
    values: Sequence[np.ndarray],
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """How much better proxy A's best-of-n choice is than proxy B's, n = 1..N, on the same prompts.

    ``values[p]`` ``(N,)`` is what a choice is worth (a gold score, or a 0/1 win indicator);
    ``proxy_b=None`` compares against a uniformly random choice (the mean of ``values[p]``). Returns
    ``n``, ``difference`` (mean over prompts of A's expected value minus B's) and ``ci`` (``(2, N)``
    percentile interval from one bootstrap over prompts that resamples both sides together, so the
    prompts' shared difficulty cancels) and ``excludes_zero`` per n.
    """
    rows = []
    for p, v in enumerate(values):
        a = per_prompt_values(proxy_a[p], v)
        b = per_prompt_values(proxy_b[p], v) if proxy_b is not None else np.full(a.shape, np.mean(v))
        rows.append(a - b)
    matrix = np.stack(rows)
    lo, hi = _bootstrap(matrix, n_boot, seed, level)
    return {"n": list(range(1, matrix.shape[1] + 1)), "difference": matrix.mean(axis=0).tolist(),
            "ci": [lo.tolist(), hi.tolist()], "excludes_zero": ((lo > 0) | (hi < 0)).tolist(),
            "prompts": int(matrix.shape[0])}
