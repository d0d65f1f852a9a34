"""Figures of SAM's study (:mod:`kit.studies.sam`): similarity bars and one image's sweep maps.

Bars of a method whose remover is generative (:data:`kit.attributors.methods.GENERATIVE`, the
paper's X-G side, FIDO-CA included) are orange; all others blue. The colour comes from the
method registry, never from the method's name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from kit.metrics.sensitivity import METRICS
from kit.studies.sam import Variant, floor_label

__all__ = ["generative", "plot_bars", "plot_sweep"]

X_COLOR, XG_COLOR = "tab:blue", "tab:orange"


def generative(method: str) -> bool:
    """Whether ``method`` (a :data:`kit.attributors.METHODS` key) fills with a generative remover.

    Names outside the registry (e.g. ad-hoc labels) count as not generative.
    """
    from kit.attributors.methods import GENERATIVE, METHODS

    return method in METHODS and METHODS[method].remover in GENERATIVE


def plot_bars(summary: pd.DataFrame, methods: Sequence[str], *,
              floor: Mapping[str, str] | None = None, titles: Mapping[str, str] | None = None):
    """One panel per metric (Spearman, the headline, first): a bar per method with its 95% CI,
    its floor (maps of other images, :mod:`kit.studies.sam`) as a black tick with its CI.

    Args:
        summary: :func:`kit.report.summarize` output (``method, metric, mean, ci_low, ci_high``;
            one row per method and metric, e.g. summarised with ``by=("method",)``).
        methods: bars in this order.
        floor: method -> the label of its floor in ``summary`` (e.g.
            ``"other images (SP)"``); None = :func:`kit.studies.sam.floor_label` where present.
        titles: metric -> panel title.

    Returns:
        The Figure (one axis per metric present in ``summary``).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    s = summary.set_index(["method", "metric"])
    metrics = [m for m in METRICS if m in set(summary["metric"])]
    titles = dict(titles or {})
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    colors = [XG_COLOR if generative(m) else X_COLOR for m in methods]
    for ax, metric in zip(axes[0], metrics, strict=True):
        mean = np.array([s["mean"].get((m, metric), np.nan) for m in methods], dtype=float)
        lo = np.array([s["ci_low"].get((m, metric), np.nan) for m in methods], dtype=float)
        hi = np.array([s["ci_high"].get((m, metric), np.nan) for m in methods], dtype=float)
        err = np.stack([mean - lo, hi - mean])
        ax.bar(range(len(methods)), mean, yerr=np.nan_to_num(err), color=colors, capsize=3)
        drawn = False
        for i, m in enumerate(methods):
            key = ((floor or {}).get(m, floor_label(m)), metric)
            f = s["mean"].get(key, np.nan)
            if np.isfinite(f):
                ax.hlines(f, i - 0.4, i + 0.4, colors="black", linewidth=2,
                          label=None if drawn else "floor: other images' maps")
                f_lo, f_hi = s["ci_low"].get(key, np.nan), s["ci_high"].get(key, np.nan)
                if np.isfinite(f_lo) and np.isfinite(f_hi):
                    ax.fill_between([i - 0.4, i + 0.4], f_lo, f_hi, color="black", alpha=0.2,
                                    linewidth=0)
                drawn = True
        ax.axhline(0, color="gray", linewidth=0.5)
        ax.set_xticks(range(len(methods)), methods, rotation=40, ha="right", fontsize=8)
        ax.set_title(titles.get(metric, metric) + " (higher = more robust)", fontsize=9)
        ax.set_ylim(min(-0.1, np.nanmin(lo) - 0.05) if np.isfinite(lo).any() else -0.1, 1.05)
    handles, labels = axes[0, -1].get_legend_handles_labels()
    handles += [Patch(color=X_COLOR), Patch(color=XG_COLOR)]
    labels += ["X", "X-G (generative fill)"]
    axes[0, -1].legend(handles, labels, fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def plot_sweep(rows: Mapping[str, Sequence[Variant]], image: int, size, *,
               rescale: Mapping[str, bool] | None = None, picture: torch.Tensor | None = None):
    """SAM Fig. 1 style: one image's maps across each method's sweep.

    Args:
        rows: row label -> variants (:func:`kit.studies.sam.sweep_maps`), default first.
        image: index of the image in the variants' batch.
        size: image size the maps are brought to (:meth:`kit.studies.sam.Variant.pixels`).
        rescale: row label -> divide by max ``|H|`` (default True); each panel uses a symmetric
            colour scale around 0 for signed maps.
        picture: optional ``(3,H,W)`` image drawn in an extra first column.

    Returns:
        The Figure (one row per entry of ``rows``).
    """
    import matplotlib.pyplot as plt

    off = 0 if picture is None else 1
    ncol = max(len(v) for v in rows.values()) + off
    fig, axes = plt.subplots(len(rows), ncol, figsize=(1.6 * ncol, 1.7 * len(rows)),
                             squeeze=False)
    for r, (label, variants) in enumerate(rows.items()):
        for c in range(ncol):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if off and c == 0:
                ax.imshow(picture.detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy())
                continue
            if c - off >= len(variants):
                ax.axis("off")
                continue
            v = variants[c - off]
            h = v.pixels(size, rescale=(rescale or {}).get(label, True))[image, 0].numpy()
            if h.min() < 0:
                lim = float(np.abs(h).max()) or 1.0
                ax.imshow(h, cmap="RdBu_r", vmin=-lim, vmax=lim)
            else:
                ax.imshow(h, cmap="inferno", vmin=0, vmax=float(h.max()) or 1.0)
            ax.set_title(v.label, fontsize=7)
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.tight_layout()
    return fig
