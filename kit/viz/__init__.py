"""Figures: plain functions that take ``ax=None`` or return a new Figure, never ``plt.show()``.

Images are pixel-space ``(3,H,W)`` tensors in [0,1]; figures are saved with :func:`save_fig`,
which writes ``figures/<notebook-stem>/<name>.png`` atomically.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from kit.viz.explore import hwc as _hwc  # the one (3,H,W) -> (H,W,3) converter

DPI = 110


def save_fig(fig, name: str, *, notebook: str) -> Path:
    """Save ``fig`` as ``figures/<notebook>/<name>.png`` (temporary file, then rename).

    Returns:
        The path written, relative to the output root (stable across machines).
    """
    from kit.cache import write_atomic_bytes
    from kit.paths import figures_dir, output_root

    path = figures_dir(notebook) / f"{name}.png"
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    write_atomic_bytes(buf.getvalue(), path)
    return path.relative_to(output_root())


def world_gallery(batch, classes, n: int = 8):
    """Rows: image with its box, object mask, true background; one column per sample.

    Args:
        batch: a :class:`~kit.world.WorldBatch`.
        classes: class names.
        n: number of samples shown.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    n = min(n, len(batch))
    fig, axes = plt.subplots(3, n, figsize=(1.6 * n, 5.0), squeeze=False)
    for i in range(n):
        x0, y0, x1, y1 = batch.boxes[i].tolist()
        axes[0, i].imshow(_hwc(batch.images[i]))
        axes[0, i].add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                       edgecolor="yellow", linewidth=1.2))
        axes[0, i].set_title(classes[int(batch.labels[i])], fontsize=9)
        axes[1, i].imshow(batch.masks[i, 0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        axes[2, i].imshow(_hwc(batch.backgrounds[i]))
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for r, label in enumerate(["image + box", "object mask", "true background"]):
        axes[r, 0].set_ylabel(label, fontsize=9)
    fig.tight_layout()
    return fig


def image_rows(rows: dict[str, torch.Tensor], titles: list[str] | None = None):
    """A grid with one row per entry of ``rows`` (name -> ``(n,3,H,W)`` images)."""
    import matplotlib.pyplot as plt

    names = list(rows)
    n = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(names), n, figsize=(1.5 * n, 1.55 * len(names)), squeeze=False)
    for r, name in enumerate(names):
        for i in range(n):
            ax = axes[r, i]
            if i < len(rows[name]):
                ax.imshow(_hwc(rows[name][i]))
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(name, fontsize=9)
    if titles:
        for i, t in enumerate(titles[:n]):
            axes[0, i].set_title(t, fontsize=8)
    fig.tight_layout()
    return fig


def confusion_matrix(cm: np.ndarray, classes, ax=None):
    """Row-normalised confusion matrix heat map (rows = true class)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 4.6))
    cm = np.asarray(cm, dtype=float)
    norm = cm / cm.sum(1, keepdims=True).clip(min=1)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(classes)):
        for j in range(len(classes)):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.figure.colorbar(im, ax=ax, fraction=0.046, label="fraction of true class")
    return ax


def metric_bars(table, columns: dict[str, str], *, higher_is_better: dict[str, bool] | None = None):
    """One bar panel per metric column of a per-remover table (pandas DataFrame, index = remover).

    Args:
        table: DataFrame with one row per condition; ``<col>_lo``/``<col>_hi`` columns, when
            present, are drawn as 95% CI error bars.
        columns: column -> panel title.
        higher_is_better: column -> whether higher is better (noted in the title), e.g. a
            metric module's ``HIGHER_IS_BETTER``.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(columns), figsize=(4.0 * len(columns), 3.2), squeeze=False)
    for ax, (col, title) in zip(axes[0], columns.items(), strict=True):
        vals = table[col].to_numpy(dtype=float)
        err = None
        if f"{col}_lo" in table and f"{col}_hi" in table:
            err = np.stack([vals - table[f"{col}_lo"].to_numpy(float),
                            table[f"{col}_hi"].to_numpy(float) - vals])
        bars = ax.bar(range(len(vals)), vals, yerr=err, color="tab:gray", capsize=3)
        # values printed on the bars: metrics such as FD span orders of magnitude
        ax.bar_label(bars, labels=[f"{v:.3g}" for v in vals], fontsize=7, padding=2)
        ax.margins(y=0.15)
        ax.set_xticks(range(len(vals)), table.index, rotation=30, ha="right", fontsize=8)
        if higher_is_better and col in higher_is_better:
            title += " (higher is better)" if higher_is_better[col] else " (lower is better)"
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def curve_panels(panels: dict, *, xlabel: str = "", ylabel: str = "", bands: dict | None = None):
    """One panel per entry of ``panels`` (title -> {label: (x, y)}), one line per label.

    Args:
        panels: title -> mapping of line label to ``(x, y)`` 1-D arrays (e.g. the fractions and
            the mean scores of a deletion curve).
        xlabel, ylabel: axis labels shared by the panels.
        bands: optional title -> {label: (low, high)} arrays drawn as shaded intervals.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False,
                             sharey=True)
    for ax, (title, lines) in zip(axes[0], panels.items(), strict=True):
        for k, (label, (x, y)) in enumerate(lines.items()):
            style = "-" if k < 10 else "--"  # the tab10 cycle repeats after 10 lines
            (line,) = ax.plot(np.asarray(x), np.asarray(y), style, label=label, linewidth=1.3)
            if bands and label in bands.get(title, {}):
                lo, hi = bands[title][label]
                ax.fill_between(np.asarray(x), np.asarray(lo), np.asarray(hi),
                                color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(ylabel, fontsize=8)
    axes[0, -1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    return fig


def mean_curve_panels(*curve_sets: dict) -> dict:
    """Panels for :func:`curve_panels` from deletion/insertion curves: one panel per (mode,
    remover), one mean curve per method.

    Args:
        *curve_sets: ``{(method, remover): Curve}`` dicts (what
            :func:`kit.metrics.deletion.curve_table` returns).

    Returns:
        ``{"<mode>, <remover>": {method: (fractions, mean scores)}}`` in the order given.
    """
    panels: dict = {}
    for curves in curve_sets:
        for (method, remover), c in curves.items():
            panels.setdefault(f"{c.mode}, {remover}", {})[method] = (c.fractions, c.scores.mean(0))
    return panels


def map_grid(images: torch.Tensor, maps: dict, *, titles: list[str] | None = None,
             boxes: torch.Tensor | None = None, pred_boxes: dict | None = None):
    """Images in the first row, then one row per method: its map over the image.

    Each map reaches the image size by its geometry (:mod:`kit.maps`: a :class:`~kit.maps.Maps`
    brings it, e.g. coverage for SP grids; bilinear for a plain dict) and is scaled
    by its own maximum absolute value (the colour bar is per map: maps are not normalised by the
    attributors). Signed maps use a symmetric diverging colormap.

    Args:
        images: ``(n,3,H,W)`` in [0,1].
        maps: method -> ``(n,1,h,w)`` maps at their native grid.
        titles: column titles.
        boxes: optional ``(n,4)`` ground-truth boxes ``(x0, y0, x1, y1)`` drawn in yellow.
        pred_boxes: optional method -> ``(n,4)`` predicted boxes drawn in cyan.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from kit.maps import geometry_of, to_pixels

    n, H, W = images.shape[0], images.shape[-2], images.shape[-1]
    names = list(maps)
    fig, axes = plt.subplots(1 + len(names), n, figsize=(1.5 * n, 1.55 * (1 + len(names))),
                             squeeze=False)

    def _box(ax, b, color):
        x0, y0, x1, y1 = (int(v) for v in b)
        if x1 > x0 and y1 > y0:
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                   edgecolor=color, linewidth=1.0))

    for i in range(n):
        axes[0, i].imshow(_hwc(images[i]))
        if boxes is not None:
            _box(axes[0, i], boxes[i], "yellow")
    for r, name in enumerate(names, start=1):
        pix = to_pixels(maps[name][:n].detach().float().cpu(), (H, W),
                        geometry_of(maps, name))[:, 0].numpy()
        for i in range(n):
            ax = axes[r, i]
            m = pix[i]
            scale = float(np.abs(m).max()) or 1.0
            signed = bool((m < 0).any())
            ax.imshow(_hwc(images[i]).mean(-1), cmap="gray", vmin=0, vmax=1)
            ax.imshow(m / scale, cmap="RdBu_r" if signed else "inferno",
                      vmin=-1 if signed else 0, vmax=1, alpha=0.7)
            if boxes is not None:
                _box(ax, boxes[i], "yellow")
            if pred_boxes is not None and name in pred_boxes:
                _box(ax, pred_boxes[name][i], "cyan")
        axes[r, 0].set_ylabel(name, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if titles:
        for i, t in enumerate(titles[:n]):
            axes[0, i].set_title(t, fontsize=8)
    fig.tight_layout()
    return fig
