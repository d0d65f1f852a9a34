"""Within-object agreement: does a map rank the object's own positions as the oracle rung does?

The oracle remover (the ladder's O rung, :func:`kit.attributors.methods.ladder`) fills removed
pixels with the true background, which equals the image everywhere off the object: removing a
background patch changes nothing, so an X-O map is zero off the object *by construction* and its
localisation (mass inside, pointing game) leaks the object mask. Scoring other rungs by how much of
their mass falls where X-O's does would inherit that leak. This metric looks only *inside* the
object, where the oracle's fill is informative (the object really is gone), and asks whether a map
orders those positions as X-O does:

    agreement_i = Spearman( map_i[P_i], reference_i[P_i] )

with ``P_i`` the positions of the map's **native grid** (an SP patch, an MP mask cell, a pixel
of a full-resolution map) that touch image i's object: for a sliding-patch grid (``coverage``
geometry) the patches whose window overlaps the object, for any other grid the cells whose
nearest-pixel footprint does (:func:`touching`). The map and its reference must share the grid
(the rungs of one method do). The rank correlation is :func:`scipy.stats.spearmanr`.

An image gets NaN, with its reason in the table, when fewer than 3 positions touch the object or
either map is constant over them (a Spearman correlation is undefined there); :func:`summarize`
reports how many, next to the mean over the others and its Student-t interval
(:func:`kit.metrics.stats.t_interval`), so no image drops out silently.

Usage::

    from kit.metrics import agreement
    maps = compute_maps(["SP", "SP-G", "SP-O"], clf, b.images, b.labels, backgrounds=b.backgrounds)
    table = agreement.agreement_table(maps, b.masks)      # SP and SP-G against SP-O
    agreement.summarize(table)      # method, reference, mean, ci_low, ci_high, n, n_nan
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["HIGHER_IS_BETTER", "METRIC", "MIN_POSITIONS", "agreement_table", "summarize",
           "touching", "within_object_agreement"]

METRIC = "within_object_agreement"
"""The metric's name in long tables."""

HIGHER_IS_BETTER = {METRIC: True}
"""Direction: 1 = the map orders the object's positions as the oracle rung does."""

MIN_POSITIONS = 3
"""Fewest positions on the object for a defined rank correlation."""


def _check_mask(masks, n: int | None = None) -> torch.Tensor:
    if not isinstance(masks, torch.Tensor) or masks.dim() != 4 or masks.shape[1] != 1:
        shape = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise ValueError(f"masks: expected object masks of shape (N,1,H,W), got {shape}")
    if n is not None and masks.shape[0] != n:
        raise ValueError(f"masks: expected {n} masks (one per map), got {masks.shape[0]}")
    return masks.bool()


def touching(masks: torch.Tensor, grid, geometry: Mapping | None = None) -> torch.Tensor:
    """Which positions of a native ``grid`` touch each image's object.

    Args:
        masks: ``(N,1,H,W)`` bool object masks.
        grid: the map's ``(h, w)``.
        geometry: the map's upsampling spec (:func:`kit.maps.geometry`); ``coverage`` (SP
            grids): position (r, c) is the window ``[r*stride, r*stride + window)`` squared;
            ``nearest`` (MP): the pixels :func:`kit.masks.upsample` copies the cell to;
            ``bilinear`` (default) or anything else: the pixels whose nearest cell centre it is.

    Returns:
        ``(N,h,w)`` bool, True where the position's footprint overlaps the object.
    """
    m = _check_mask(masks).float()
    H, W = m.shape[-2:]
    h, w = (int(v) for v in grid)
    spec = dict(geometry or {})
    mode = spec.get("mode", "bilinear")
    if mode == "coverage":
        window, stride = int(spec["window"]), int(spec["stride"])
        out = F.max_pool2d(m, kernel_size=window, stride=stride)[:, 0]
        if tuple(out.shape[-2:]) != (h, w):
            raise ValueError(f"grid: {(h, w)} does not match a {H}x{W} image with window="
                             f"{window}, stride={stride} (expected {tuple(out.shape[-2:])})")
        return out > 0
    if mode == "nearest":  # F.interpolate(mode="nearest"): pixel u copies cell floor(u * h / H)
        rows = (torch.arange(H) * h) // H
        cols = (torch.arange(W) * w) // W
    else:  # the cell whose centre is nearest: floor((u + 1/2) * h / H)
        rows = ((2 * torch.arange(H) + 1) * h) // (2 * H)
        cols = ((2 * torch.arange(W) + 1) * w) // (2 * W)
    cell = (rows[:, None] * w + cols[None, :]).reshape(-1)
    flat = m.reshape(m.shape[0], -1)
    out = torch.zeros(m.shape[0], h * w).scatter_reduce(
        1, cell.expand(m.shape[0], -1), flat, reduce="amax")
    return out.reshape(-1, h, w) > 0


def _one(a: np.ndarray, b: np.ndarray) -> tuple[float, str]:
    from scipy.stats import spearmanr

    if a.size < MIN_POSITIONS:
        return float("nan"), f"fewer than {MIN_POSITIONS} positions on the object"
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("nan"), "map or reference not finite on the object"
    if np.ptp(a) == 0:
        return float("nan"), "map constant on the object"
    if np.ptp(b) == 0:
        return float("nan"), "reference constant on the object"
    return float(spearmanr(a, b).statistic), ""


def within_object_agreement(sal: torch.Tensor, reference: torch.Tensor, masks: torch.Tensor, *,
                            geometry: Mapping | None = None,
                            reference_geometry: Mapping | None = None,
                            details: bool = False):
    """Per image, Spearman between ``sal`` and ``reference`` at the positions touching the object.

    Args:
        sal: ``(N,1,h,w)`` maps at their native grid.
        reference: ``(N,1,h,w)`` the reference maps (the X-O rung) of the same images, same grid.
        masks: ``(N,1,H,W)`` bool object masks.
        geometry: the maps' upsampling spec (:func:`kit.maps.geometry`; None = bilinear).
        reference_geometry: the reference's spec; must equal ``geometry`` (None = the same).
        details: also return the positions counted and the reason of every NaN.

    Returns:
        ``(N,)`` float64 tensor in [-1, 1], NaN where undefined; with ``details=True`` a tuple
        ``(values, n_positions (N,) int64, reasons: list[str], "" where defined)``.

    Raises:
        ValueError: maps of different shapes or geometries, masks that do not match.
    """
    from kit import checks

    sal = checks.maps("sal", sal)
    reference = checks.maps("reference", reference, sal.shape[0])
    if reference.shape != sal.shape:
        raise ValueError(f"reference: expected the map's own grid {tuple(sal.shape)}, got "
                         f"{tuple(reference.shape)} (compare rungs of one method)")
    g = dict(geometry or {"mode": "bilinear"})
    rg = g if reference_geometry is None else dict(reference_geometry)
    if rg != g:
        raise ValueError(f"reference_geometry: expected the map's geometry {g}, got {rg}")
    masks = _check_mask(masks, sal.shape[0])
    pos = touching(masks, sal.shape[-2:], g)
    a = sal[:, 0].detach().double().cpu().numpy()
    b = reference[:, 0].detach().double().cpu().numpy()
    p = pos.numpy()
    values, counts, reasons = [], [], []
    for i in range(sal.shape[0]):
        v, why = _one(a[i][p[i]], b[i][p[i]])
        values.append(v)
        counts.append(int(p[i].sum()))
        reasons.append(why)
    out = torch.tensor(values, dtype=torch.float64)
    if details:
        return out, torch.tensor(counts, dtype=torch.int64), reasons
    return out


def _default_references(names: Iterable[str]) -> dict[str, str]:
    """Every map with an O rung among ``names`` -> that rung (the O map itself excluded)."""
    from kit.attributors.methods import ladder

    names = list(names)
    out = {}
    for rungs in ladder(names).values():
        ref = rungs.get("O")
        if ref is None:
            continue
        for r, n in rungs.items():
            if r != "O":
                out[n] = ref
    return out


def agreement_table(maps: Mapping, masks: torch.Tensor,
                    references: Mapping[str, str] | None = None):
    """Within-object agreement of maps against their references, as a long table.

    Args:
        maps: ``{name: (N,1,h,w)}``; a :class:`kit.maps.Maps` brings each map's geometry (maps
            of a plain dict are bilinear).
        masks: ``(N,1,H,W)`` bool object masks.
        references: ``{map name: reference map name}``; None = every map whose method's O rung
            is among ``maps`` against that rung (:func:`kit.attributors.methods.ladder`).

    Returns:
        DataFrame ``image, method, reference, metric, value, n_positions, nan_reason`` (one row
        per image and map; ``value`` NaN with its ``nan_reason`` where undefined).

    Raises:
        ValueError: a reference that is not among ``maps``.
    """
    import pandas as pd

    from kit.maps import geometry_of

    refs = _default_references(maps) if references is None else dict(references)
    missing = sorted({r for r in refs.values() if r not in maps} | {m for m in refs
                                                                    if m not in maps})
    if missing:
        raise ValueError(f"references: map(s) {missing} not among maps ({', '.join(maps)})")
    frames = []
    for name, ref in refs.items():
        v, n, why = within_object_agreement(maps[name], maps[ref], masks,
                                            geometry=geometry_of(maps, name),
                                            reference_geometry=geometry_of(maps, ref),
                                            details=True)
        frames.append(pd.DataFrame({"image": np.arange(v.shape[0]), "method": name,
                                    "reference": ref, "metric": METRIC, "value": v.numpy(),
                                    "n_positions": n.numpy(), "nan_reason": why}))
    cols = ["image", "method", "reference", "metric", "value", "n_positions", "nan_reason"]
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True)[cols]


def summarize(table, *, by=("method", "reference"), confidence: float = 0.95):
    """Mean agreement with a Student-t interval per group; NaN images counted, not dropped.

    Args:
        table: :func:`agreement_table` output (any long table with ``value`` and the ``by``
            columns).
        by: grouping columns.
        confidence: coverage of the interval.

    Returns:
        DataFrame ``*by, metric, mean, ci_low, ci_high, n, n_nan, higher_is_better``: ``n`` the
        images with a defined value, ``n_nan`` those without (the mean is over the ``n``).
    """
    import pandas as pd

    from kit.metrics.stats import t_interval

    by = [by] if isinstance(by, str) else list(by)
    rows = []
    for key, g in table.groupby(by, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        v = g["value"].to_numpy(np.float64)
        ok = v[np.isfinite(v)]
        low, high = t_interval(ok, confidence)
        rows.append({**dict(zip(by, key, strict=True)), "metric": METRIC,
                     "mean": float(ok.mean()) if ok.size else float("nan"),
                     "ci_low": low, "ci_high": high, "n": int(ok.size),
                     "n_nan": int(v.size - ok.size), "higher_is_better": True})
    return pd.DataFrame(rows, columns=[*by, "metric", "mean", "ci_low", "ci_high", "n", "n_nan",
                                       "higher_is_better"])
