"""Best-of-n plots: proxy (dashed) and gold (solid) against KL_bon, one colour per proxy reward model.

As in Gao et al. and the GRM paper (Figure 2), both curves start at 0: each shows the gain over n = 1.
Proxy models score on their own scales, so each proxy's gain is divided by the standard deviation of
that model's scores over all candidates (and the gold gain by the gold's): the axis is "standard
deviations of improvement". A second panel shows the gold win rate with its 95% bootstrap band next to
random choice and the oracle, when the gold has a win threshold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_bon(result: dict, path: str | Path, title: str = "best-of-n") -> Path:
    from rewardlab.plotting import pyplot, save_figure

    plt = pyplot()

    proxies = result["proxies"]
    has_win = "random_win_rate" in result
    fig, axes = plt.subplots(1, 2 if has_win else 1, figsize=(11 if has_win else 6, 4.3), squeeze=False)
    ax = axes[0, 0]
    kl = np.asarray(result["kl"])
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, c) in enumerate(proxies.items()):
        col = colours[i % len(colours)]
        for key, style, label in (("proxy", "--", "proxy"), ("gold", "-", "gold")):
            y = np.asarray(c[key])
            scale = c.get(f"{key}_std") or 1.0
            ax.plot(kl, (y - y[0]) / scale, style, color=col, marker="o", ms=3, label=f"{name} ({label})")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("KL_bon = log n − (n−1)/n  (nats)")
    ax.set_ylabel("gain over n = 1 (std of the model's scores)")
    ax.set_title(f"{title}: proxy (dashed) vs gold (solid)", fontsize=10)
    ax.legend(fontsize=7)
    _n_axis(ax, result)
    if has_win:
        ax = axes[0, 1]
        for i, (name, c) in enumerate(proxies.items()):
            col = colours[i % len(colours)]
            y = 100 * np.asarray(c["gold_win_rate"])
            lo, hi = (100 * np.asarray(b) for b in c["gold_win_rate_ci"])
            ax.plot(kl, y, "-", color=col, marker="o", ms=3, label=f"best-of-n by {name}")
            ax.fill_between(kl, lo, hi, color=col, alpha=0.15)
        ax.axhline(100 * result["random_win_rate"], color="grey", ls=":", label="random choice")
        oracle = result.get("oracle", {}).get("oracle_win_rate")
        if oracle:
            ax.plot(kl, 100 * np.asarray(oracle), "-", color="black", lw=1, label="oracle (gold picks)")
        ax.set_xlabel("KL_bon (nats)")
        ax.set_ylabel(f"gold win rate (%), gold > {result['win_threshold']}")
        ax.set_title("gold win rate of the best-of-n choice (95% bootstrap band)", fontsize=10)
        ax.legend(fontsize=7)
        _n_axis(ax, result)
    fig.tight_layout()
    return save_figure(fig, path)


def _n_axis(ax, result: dict) -> None:
    """A secondary x axis on top labelled with n."""
    ns = [n for n in (1, 2, 4, 8, 16, 32, 64) if n <= result["n"][-1]] + (
        [result["n"][-1]] if result["n"][-1] not in (1, 2, 4, 8, 16, 32, 64) else [])
    top = ax.twiny()
    top.set_xlim(ax.get_xlim())
    kl = [float(np.log(n) - (n - 1) / n) for n in ns]
    top.set_xticks(kl)
    top.set_xticklabels([str(n) for n in ns], fontsize=7)
    top.set_xlabel("n", fontsize=8)
