"""GAD figures: maps with and without GAD, the ratios RC / RS against α, and the support
models' own-class margins per class (notebook 05).

Usage::

    from kit.viz import gad as gad_plots
    fig = gad_plots.plot_maps(x, run.results, "IntegratedGradients")
    fig = gad_plots.plot_ratios(summary)
    fig = gad_plots.plot_margins(gad.margin_summary(table, classes=world.CLASSES))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from kit.attributors.gad import normalise
from kit.metrics.gad import HIGHER_IS_BETTER, convex_hull, is_empty

__all__ = ["plot_maps", "plot_ratios", "plot_margins"]

_SUMMARY_COLUMNS = ("method", "alpha", "metric", "mean", "ci_low", "ci_high")


def plot_maps(x: torch.Tensor, results: Mapping, method: str, *,
              titles: Sequence[str] | None = None, n: int = 6):
    """Side-by-side maps without (α = 0) and with GAD (each α) for one method.

    Rows are images; columns the image, the baseline map and the GAD map per α, each shown
    normalised by its max|·| on a symmetric colour scale, with the support's hulls (one per
    connected region, :func:`kit.metrics.gad.convex_hull`) outlined.

    Args:
        x: ``(N,3,H,W)`` images; results: ``kit.studies.gad.GadRun.results``; method: the method
            shown; titles: one label per image; n: number of images.

    Returns:
        A new matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    alphas = sorted(a for (m, a) in results if m == method)
    if not alphas:
        raise ValueError(f"method {method!r} is not in results; "
                         f"valid: {sorted({m for m, _ in results})}")
    n = min(n, x.shape[0])
    fig, axes = plt.subplots(n, 1 + len(alphas), figsize=(1.5 * (1 + len(alphas)), 1.55 * n),
                             squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(x[i].detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy())
        if titles is not None:
            axes[i, 0].set_ylabel(titles[i], fontsize=8)
        for c, a in enumerate(alphas, start=1):
            res = results[method, a]
            sal = normalise(res.sal[i : i + 1].float())[0, 0].cpu().numpy()
            axes[i, c].imshow(sal, cmap="bwr", vmin=-1, vmax=1)
            sup = res.support[i : i + 1]
            if not bool(is_empty(sup)[0]):
                axes[i, c].contour(convex_hull(sup)[0, 0].cpu().numpy().astype(float),
                                   levels=[0.5], colors="k", linewidths=0.8)
            if i == 0:
                axes[i, c].set_title("no GAD" if a == 0 else f"GAD α={a:g}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(method, fontsize=9)
    fig.tight_layout()
    return fig


def plot_ratios(summary: pd.DataFrame, metrics: Sequence[str] = ("RC", "RS")):
    """RC and RS against α, one line per method with its 95% CI band; α = 0 is 1 by construction.

    Controls (the fusion-only control at α = 0, the bias-only control at its α: method names
    with a parenthesised suffix) are drawn as single points with error bars.

    Args:
        summary: ``kit.report.summarize(per_image, HIGHER_IS_BETTER, by=("method", "alpha"))``.
        metrics: panels to draw.

    Returns:
        A new matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    missing = [c for c in _SUMMARY_COLUMNS if c not in summary.columns]
    if missing:
        raise ValueError(f"summary is missing column(s) {missing}; expected the output of "
                         "kit.report.summarize(..., by=('method', 'alpha'))")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.3), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        sub = summary[summary["metric"] == metric]
        for method, g in sub.groupby("method", sort=False):
            g = g.sort_values("alpha")
            if (g["alpha"] == 0).all() or str(method).endswith(")"):  # a control: points
                mean = g["mean"].to_numpy(float)
                err = np.stack([mean - g["ci_low"].to_numpy(float),
                                g["ci_high"].to_numpy(float) - mean])
                ax.errorbar(g["alpha"].to_numpy(float), mean, yerr=np.nan_to_num(err), fmt="s",
                            ms=4, capsize=3, label=method)
                continue
            a = np.concatenate([[0.0], g["alpha"].to_numpy(float)])
            line = ax.plot(a, np.concatenate([[1.0], g["mean"].to_numpy(float)]), marker="o",
                           ms=3, label=method)[0]
            ax.fill_between(a, np.concatenate([[1.0], g["ci_low"].to_numpy(float)]),
                            np.concatenate([[1.0], g["ci_high"].to_numpy(float)]),
                            color=line.get_color(), alpha=0.15, linewidth=0)
        ax.axhline(1.0, color="gray", linestyle="--", linewidth=0.8)
        better = "lower" if not HIGHER_IS_BETTER.get(metric, True) else "higher"
        ax.set_title(f"{metric} (mean, 95% CI; {better} is better)", fontsize=9)
        ax.set_xlabel("α")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_margins(summary: pd.DataFrame):
    """Own-class margin ``z_y − z_o`` before and after distancing, per class and support set.

    One panel per class; x = α of the support set, the original model's margin (before) and the
    support models' (after), means with 95% CIs; the dashed line is before + α, the distancing
    target.

    Args:
        summary: :func:`kit.studies.gad.margin_summary`'s output.

    Returns:
        A new matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    need = ["kind", "alpha", "class", "before", "before_low", "before_high", "after",
            "after_low", "after_high"]
    missing = [c for c in need if c not in summary.columns]
    if missing:
        raise ValueError(f"summary is missing column(s) {missing}; expected the output of "
                         "kit.studies.gad.margin_summary")
    classes = list(dict.fromkeys(summary["class"]))
    fig, axes = plt.subplots(1, len(classes), figsize=(4.0 * len(classes), 3.2), squeeze=False,
                             sharey=True)
    for ax, cls in zip(axes[0], classes, strict=True):
        sub = summary[summary["class"] == cls]
        name = sub["class_name"].iloc[0] if "class_name" in sub else str(cls)
        for kind, g in sub.groupby("kind", sort=False):
            g = g.sort_values("alpha")
            # "before" is the original model's margin, the same for every set: drawn once
            cols = (("after", "o"), ("before", "x")) if kind == "distanced" else (("after", "s"),)
            for col, marker in cols:
                mean = g[col].to_numpy(float)
                err = np.stack([mean - g[f"{col}_low"].to_numpy(float),
                                g[f"{col}_high"].to_numpy(float) - mean])
                ax.errorbar(g["alpha"].to_numpy(float), mean, yerr=np.nan_to_num(err),
                            fmt=marker + ("-" if kind == "distanced" else ""), ms=4, capsize=3,
                            label=f"{kind}: {col}")
            if kind == "distanced":
                a = g["alpha"].to_numpy(float)
                ax.plot(a, g["before"].to_numpy(float) + a, "k--", lw=0.8,
                        label="target (before + α)")
        ax.set_title(f"class {name}: own margin z_y − z_o (mean, 95% CI)", fontsize=9)
        ax.set_xlabel("α")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig
