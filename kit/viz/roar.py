"""ROAR / KAR figure: test accuracy after retraining against the fraction of pixels ranked at the
top (:mod:`kit.studies.roar`).

Usage::

    from kit.viz.roar import plot_curves
    fig = plot_curves(roar.summarize(table))
"""

from __future__ import annotations

import pandas as pd

from kit.studies.roar import MODES

__all__ = ["plot_curves"]


def plot_curves(summary: pd.DataFrame, *, chance: float | None = 1 / 8):
    """Accuracy vs fraction with confidence bands: rows = modes, columns = fills.

    Args:
        summary: a :func:`kit.studies.roar.summarize` table.
        chance: draw a dotted chance line (None: none).

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    s = summary[summary["mode"].isin(MODES)]
    ref = summary[summary["mode"] == "none"]
    modes = [m for m in MODES if m in set(s["mode"])]
    fills = list(dict.fromkeys(s["fill"]))
    ests = list(dict.fromkeys(s["estimator"]))
    colors = dict(zip(ests, plt.get_cmap("tab10").colors * 2, strict=False))
    fig, axes = plt.subplots(len(modes), len(fills), figsize=(4.2 * len(fills), 3.4 * len(modes)),
                             squeeze=False, sharex=True, sharey=True)
    for i, mode in enumerate(modes):
        for j, fill in enumerate(fills):
            ax = axes[i, j]
            for est in ests:
                g = s[(s["mode"] == mode) & (s["fill"] == fill) & (s["estimator"] == est)]
                if g.empty:
                    continue
                g = g.sort_values("fraction")
                style = dict(color="black", linestyle="--") if est == "random" else dict(
                    color=colors[est])
                ax.plot(g["fraction"], g["mean"], marker="o", ms=3, label=est, **style)
                if g["ci_low"].notna().all():
                    ax.fill_between(g["fraction"], g["ci_low"], g["ci_high"], alpha=0.15,
                                    color=style["color"], linewidth=0)
            if len(ref):
                ax.axhline(float(ref["mean"].iloc[0]), color="gray", linewidth=0.8,
                           label="unmodified")
            if chance is not None:
                ax.axhline(chance, color="gray", linestyle=":", linewidth=0.8, label="chance")
            name = {"roar": "ROAR (top removed)", "kar": "KAR (top kept)"}[mode]
            ax.set_title(f"{name}, fill: {fill}" + (" (ROAD-like)" if fill != "gray" else ""),
                         fontsize=9)
            ax.set_xlim(0, 1)
            ax.set_xlabel("fraction of pixels ranked at the top")
            if j == 0:
                ax.set_ylabel("test accuracy after retraining")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.tight_layout()
    return fig
