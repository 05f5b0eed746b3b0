"""The best-of-n estimator against brute-force enumeration of every size-n subset, KL_bon, the Gao fit."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from rewardlab.bon.estimator import (
    best_of_n_weights,
    expected_best_of_n,
    fit_gao,
    kl_bon,
    paired_best_of_n,
    per_prompt_values,
)


def brute_force(proxy: list[float], values: list[float], n: int) -> float:
    """Mean over all C(N, n) subsets (kept in list order) of the value of the subset's argmax; np.argmax
    returns the first maximum, which is the documented tie rule."""
    got = []
    for subset in itertools.combinations(range(len(proxy)), n):
        best = subset[int(np.argmax([proxy[i] for i in subset]))]
        got.append(values[best])
    return float(np.mean(got))


@pytest.mark.parametrize("seed", range(6))
def test_matches_enumeration_of_every_subset(seed):
    rng = np.random.default_rng(seed)
    N = int(rng.integers(2, 8))
    proxy = rng.normal(size=N).round(1)  # rounding makes ties likely
    if seed % 2:
        proxy[: N // 2] = proxy[0]  # force a block of ties
    gold = rng.normal(size=N)
    got = per_prompt_values(proxy, gold)
    for n in range(1, N + 1):
        assert got[n - 1] == pytest.approx(brute_force(list(proxy), list(gold), n), abs=1e-12)


def test_all_equal_scores_pick_the_first_candidate_of_the_subset():
    # every score ties: the first item of each subset (in list order) is chosen
    gold = [10.0, 20.0, 30.0]
    got = per_prompt_values(np.zeros(3), np.array(gold))
    # n=2: subsets (0,1),(0,2),(1,2) -> 10, 10, 20
    assert got[1] == pytest.approx(40 / 3)
    assert got[2] == pytest.approx(10.0)


def test_weights_by_hand():
    # N=4, n=2: rank i is best with prob C(i,1)/C(4,2) = i/6
    np.testing.assert_allclose(best_of_n_weights(4, 2), [0, 1 / 6, 2 / 6, 3 / 6])
    np.testing.assert_allclose(best_of_n_weights(4, 1), [0.25] * 4)
    np.testing.assert_allclose(best_of_n_weights(4, 4), [0, 0, 0, 1])
    with pytest.raises(ValueError):
        best_of_n_weights(4, 5)


def test_curve_endpoints_and_interval():
    rng = np.random.default_rng(0)
    proxy = [rng.normal(size=5) for _ in range(40)]
    gold = [p + rng.normal(size=5) for p in proxy]
    c = expected_best_of_n(proxy, gold, win_threshold=0.0, n_boot=200)
    assert c["n"] == [1, 2, 3, 4, 5]
    assert c["gold"][0] == pytest.approx(np.mean([g.mean() for g in gold]))  # n=1 is random choice
    assert c["proxy"][-1] == pytest.approx(np.mean([p.max() for p in proxy]))  # n=N is the argmax
    assert all(a <= b + 1e-12 for a, b in zip(c["proxy"], c["proxy"][1:], strict=False))  # proxy never falls
    for key in ("proxy", "gold", "gold_win_rate"):
        lo, hi = c[f"{key}_ci"]
        assert all(lo_ <= m <= hi_ for lo_, m, hi_ in zip(lo, c[key], hi, strict=True))
    assert c["oracle_gold"][-1] == pytest.approx(np.mean([g.max() for g in gold]))
    with pytest.raises(ValueError, match="same number"):
        expected_best_of_n([np.zeros(3), np.zeros(4)])


def test_kl_bon():
    assert kl_bon(1) == pytest.approx(0.0)
    assert kl_bon(2) == pytest.approx(math.log(2) - 0.5)
    assert kl_bon(16) == pytest.approx(math.log(16) - 15 / 16)


def test_gao_fit_recovers_the_form():
    d = np.sqrt(kl_bon(np.arange(1, 12)))
    y = d * (0.8 - 0.3 * d)
    fit = fit_gao(d**2, y)
    assert fit["alpha"] == pytest.approx(0.8) and fit["beta"] == pytest.approx(0.3)
    assert fit["r2"] == pytest.approx(1.0)
    assert fit["d_peak"] == pytest.approx(0.8 / 0.6)


def test_paired_difference_against_another_proxy_and_against_random():
    rng = np.random.default_rng(3)
    gold = [rng.normal(size=6) for _ in range(40)]
    good = [g + 0.1 * rng.normal(size=6) for g in gold]  # nearly the oracle
    bad = [-g for g in gold]  # picks the worst
    vs_bad = paired_best_of_n(good, bad, gold, n_boot=500)
    assert vs_bad["difference"][0] == pytest.approx(0.0, abs=1e-12)  # n = 1 is a random pick either way
    assert vs_bad["ci"][0][-1] > 0 and vs_bad["excludes_zero"][-1] and not vs_bad["excludes_zero"][0]
    direct = np.mean([per_prompt_values(a, g)[-1] - per_prompt_values(b, g)[-1] for a, b, g in zip(good, bad, gold, strict=True)])
    assert vs_bad["difference"][-1] == pytest.approx(direct)
    vs_random = paired_best_of_n(good, None, gold, n_boot=500)
    at_n = np.mean([g[np.argmax(a)] - g.mean() for a, g in zip(good, gold, strict=True)])  # n = N: the proxy's top pick
    assert vs_random["difference"][-1] == pytest.approx(at_n)
    assert vs_random["prompts"] == 40 and len(vs_random["ci"][0]) == 6
