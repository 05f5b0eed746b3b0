"""Calibration of P(chosen ≻ rejected): expected calibration error and a reliability plot.

The model's probability for a pair is ``p = P(chosen ≻ rejected)`` (σ(r_c − r_r) for a scalar model,
the judge's own probability for a generative one). Because the label always says "chosen", ``p`` is
read as a prediction about which side wins (top-label calibration): the prediction is the side with
``p >= 0.5``, its **confidence** is ``max(p, 1 − p)`` and it is **correct** when it names the chosen
side (``p > 0.5``; ``p == 0.5`` counts half). Confidences in [0.5, 1] are cut into ``n_bins`` equal
bins; ECE = Σ_b (|b| / n) · |accuracy_b − confidence_b|, and MCE is the largest bin gap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def calibration(prob_chosen: np.ndarray, n_bins: int = 10) -> dict:
    """ECE, MCE and the reliability table of ``prob_chosen`` ``(n,)`` = P(chosen ≻ rejected)."""
    p = np.asarray(prob_chosen, dtype=float)
    conf = np.maximum(p, 1 - p)
    correct = np.where(p == 0.5, 0.5, (p > 0.5).astype(float))
    edges = np.linspace(0.5, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    bins, ece, mce = [], 0.0, 0.0
    for b in range(n_bins):
        mask = which == b
        if not mask.any():
            bins.append({"range": [float(edges[b]), float(edges[b + 1])], "n": 0, "confidence": None,
                         "accuracy": None})
            continue
        c, a = float(conf[mask].mean()), float(correct[mask].mean())
        gap = abs(a - c)
        ece += mask.sum() / p.size * gap
        mce = max(mce, gap)
        bins.append({"range": [float(edges[b]), float(edges[b + 1])], "n": int(mask.sum()), "confidence": c,
                     "accuracy": a})
    return {"ece": float(ece) if p.size else None, "mce": float(mce) if p.size else None, "n_bins": n_bins,
            "bins": bins, "mean_confidence": float(conf.mean()) if p.size else None,
            "accuracy": float(correct.mean()) if p.size else None}


def plot_reliability(calib: dict | dict[str, dict], path: str | Path, title: str = "reliability") -> Path:
    """Accuracy against confidence per bin (bars, width = bin) with the diagonal; several results
    (``{name: calibration(...)}``) are drawn side by side in one panel each."""
    from rewardlab.plotting import pyplot, save_figure

    plt = pyplot()

    results = {"": calib} if "bins" in calib else calib
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 4), squeeze=False)
    for ax, (name, c) in zip(axes[0], results.items(), strict=True):
        full = [b for b in c["bins"] if b["n"]]
        lo = [b["range"][0] for b in full]
        width = [b["range"][1] - b["range"][0] for b in full]
        ax.bar(lo, [b["accuracy"] for b in full], width=width, align="edge", edgecolor="black", alpha=0.7,
               label="accuracy")
        ax.plot([0.5, 1], [0.5, 1], "k--", lw=1, label="perfect calibration")
        ax.scatter([b["confidence"] for b in full], [b["accuracy"] for b in full], color="C3", s=12, zorder=3,
                   label="(mean confidence, accuracy)")
        ax.set_xlim(0.5, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence max(p, 1−p)")
        ax.set_ylabel("accuracy")
        ece = c["ece"]
        ax.set_title(f"{name + ': ' if name else ''}{title}  ECE={ece:.3f}" if ece is not None else title, fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path)
