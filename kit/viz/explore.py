"""The explorer's figures: heatmap overlay, counterfactual strip, deletion curves (style.md §8).

matplotlib Figures without pyplot for the widgets (no global state, any backend; rendered to PNG
by :func:`figure_png`), and :func:`plot_explorations`, the same panels as one static pyplot figure
for notebooks without widgets (papermill, nbval). The results drawn are
:class:`kit.explore.Exploration` objects.

* :func:`hwc` -- a ``(3,H,W)`` image as an ``(H,W,3)`` array for ``imshow``;
* :func:`plot_explorations` -- per result a row (image, heatmap, counterfactuals), then curves;
* :func:`overlay_png`, :func:`strip_png`, :func:`curve_png` -- the widget panels as PNG bytes.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from kit.explore import Exploration

__all__ = ["curve_png", "figure_png", "hwc", "overlay_png", "plot_explorations", "strip_png"]


def hwc(img: torch.Tensor) -> np.ndarray:
    """A ``(3,H,W)`` image in [0,1] as an ``(H,W,3)`` float numpy array (clamped), for imshow."""
    return img.detach().cpu().float().permute(1, 2, 0).clamp(0, 1).numpy()


def _draw_overlay(ax, x: torch.Tensor, heatmap: torch.Tensor, title: str) -> None:
    h = heatmap[0, 0].detach().cpu().float().numpy()
    lim = float(np.abs(h).max()) or 1.0
    ax.imshow(hwc(x[0]))
    # Opacity follows |map|, so pixels the map calls irrelevant show the image itself.
    alpha = np.clip(0.8 * np.abs(h) / lim, 0, 1)
    if h.min() < 0:  # signed map: symmetric limits, diverging colours
        ax.imshow(h, cmap="RdBu_r", vmin=-lim, vmax=lim, alpha=alpha)
    else:
        ax.imshow(h, cmap="inferno", vmin=0, vmax=lim, alpha=alpha)
    ax.set_title(title, fontsize=8)


def _draw_curves(ax, results: dict[str, Exploration]) -> None:
    for label, ex in results.items():
        c = ex.curve
        ax.plot(np.asarray(c.fractions), np.asarray(c.scores[0]),
                label=f"{label} (AUC {ex.auc:.3f})")
    ax.set_xlabel("fraction of pixels removed", fontsize=8)
    ax.set_ylabel("score of target", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)  # the score is a probability
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    ax.set_title("deletion (lower AUC = better)", fontsize=8)


def _off(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def plot_explorations(x: torch.Tensor, results: dict[str, Exploration], *, title: str = ""):
    """One static figure: per result a row (image, heatmap, counterfactuals), then the curves.

    Args:
        x: ``(1,3,H,W)`` the explained image.
        results: label -> :class:`~kit.explore.Exploration` (e.g. one per remover).
        title: figure title.

    Returns:
        A pyplot Figure (shown by the notebook's inline backend, like :mod:`kit.viz`).
    """
    import matplotlib.pyplot as plt

    if not results:
        raise ValueError("results must hold at least one Exploration")
    k = max(len(ex.fractions) for ex in results.values())
    rows = len(results)
    fig = plt.figure(figsize=(1.7 * (k + 2) + 3.2, 1.9 * rows + 0.4))
    gs = fig.add_gridspec(rows, k + 3, width_ratios=[1] * (k + 2) + [2.0])
    for r, (label, ex) in enumerate(results.items()):
        ax = fig.add_subplot(gs[r, 0])
        ax.imshow(hwc(x[0]))
        ax.set_title("image", fontsize=8)
        ax.set_ylabel(label, fontsize=8)
        _off(ax)
        ax = fig.add_subplot(gs[r, 1])
        _draw_overlay(ax, x, ex.heatmap, f"{ex.method} map")
        _off(ax)
        for i, q in enumerate(ex.fractions):
            ax = fig.add_subplot(gs[r, 2 + i])
            ax.imshow(hwc(ex.counterfactuals[i]))
            ax.set_title(f"top {q:.0%} removed", fontsize=8)
            _off(ax)
    _draw_curves(fig.add_subplot(gs[:, k + 2]), results)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def figure_png(fig, dpi: int = 90, *, tight: bool = True) -> bytes:
    """PNG bytes of a matplotlib figure (what the widgets display).

    ``tight=False`` keeps the figure's own size, so the picture does not change size (and the
    page does not jump) when only a title changes.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    return buf.getvalue()


def overlay_png(x: torch.Tensor, ex: Exploration) -> bytes:
    """PNG of the heatmap of ``ex`` over the ``(1,3,H,W)`` image ``x`` (the widget's panel)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2.4, 2.5))
    ax = fig.add_subplot()
    _draw_overlay(ax, x, ex.heatmap, f"{ex.method} · {ex.remover}")
    _off(ax)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.9)
    return figure_png(fig, tight=False)


def strip_png(x: torch.Tensor, ex: Exploration) -> bytes:
    """PNG of the image ``x`` followed by the counterfactuals of ``ex``, in one row."""
    from matplotlib.figure import Figure

    k = len(ex.fractions)
    fig = Figure(figsize=(1.6 * (k + 1), 1.9))
    fig.suptitle(ex.remover, fontsize=8, x=0.02, ha="left")
    axes = fig.subplots(1, k + 1)
    axes[0].imshow(hwc(x[0]))
    axes[0].set_title("image", fontsize=8)
    for i, q in enumerate(ex.fractions):
        axes[i + 1].imshow(hwc(ex.counterfactuals[i]))
        axes[i + 1].set_title(f"top {q:.0%} removed", fontsize=8)
    for ax in axes:
        _off(ax)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.78, wspace=0.08)
    return figure_png(fig, tight=False)


def curve_png(results: dict[str, Exploration]) -> bytes:
    """PNG of the deletion curves of ``results`` (label -> Exploration) on one axis."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.4, 2.7))
    _draw_curves(fig.add_subplot(), results)
    fig.tight_layout()
    return figure_png(fig, tight=False)
