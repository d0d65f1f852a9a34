"""Object localisation from attribution maps (methods.md §4.2).

* :func:`mass_inside` — the fraction of the positive relevance inside the ground-truth object mask
  ("relevance mass accuracy"); :func:`pointing_game` — is the map's maximum inside the mask.
* :func:`threshold_boxes` and :func:`iou_sweep` — protocol (a), SAM's IoU sweep: negatives set to
  0, survivors ``>= theta * max`` for ``theta`` in :data:`THRESHOLDS` (0.10 … 0.50), a tight box
  around **all** survivors (``rule="all"``) or around their largest 4-connected component
  (``rule="largest"``, protocol (c)'s box rule), pixel IoU with the ground-truth box.
* :func:`localization_error` — ``1[IoU < 0.5]`` per image; :func:`tune_threshold` picks the one
  threshold per method × remover that minimises the mean error on a held-out split (FV17
  practice; the project reports the full IoU-vs-threshold curve and the error at that threshold).
* :func:`largest_component_box` — protocol (c) (CASME): binarise at the map's mean, keep the
  largest connected component, tight box; also the box of the saliency metric (§4.4).

Boxes are ``(x0, y0, x1, y1)`` int64 with an exclusive upper corner, as ``kit.world`` gives them;
an empty box is ``(0, 0, 0, 0)``. Maps are resized only by :func:`kit.masks.upsample`.

**Undefined values.** A map without positive values (e.g. an all-zero MP map, when the mask keeps
everything) has no mass to place: :func:`mass_inside` is NaN; a constant map has no maximum to
point with: :func:`pointing_game` is NaN. Box metrics stay defined (no survivors = an empty box =
a miss). NaN values are counted and reported beside every mean (``n_nan``,
:func:`kit.metrics.stats.with_nan_counts`), never dropped silently.

Usage::

    from kit.metrics import localization as loc
    iou = loc.iou_sweep(sal, batch.boxes, size=64)            # (N, 9) IoU per threshold
    theta = loc.tune_threshold(loc.iou_sweep(sal_val, val.boxes, size=64))
    err = loc.localization_error(iou[:, loc.THRESHOLDS.index(theta)])
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from kit.masks import upsample

HIGHER_IS_BETTER = {
    "mass_inside": True,
    "pointing_game": True,
    "iou": True,
    "loc_error": False,
    "iou_largest": True,
    "loc_error_largest": False,
    "loc_error_casme": False,
}
"""Direction of every metric this module defines: ``iou``/``loc_error`` at the tuned threshold
with the box around all survivors, ``*_largest`` with the largest-component box, and
``loc_error_casme`` for protocol (c) (mean threshold, largest component)."""

THRESHOLDS: tuple[float, ...] = tuple(round(0.10 + 0.05 * i, 2) for i in range(9))
"""SAM's relative thresholds ``theta / max(map)``: 0.10, 0.15, …, 0.50."""

BOX_RULES = ("all", "largest")
"""Box around all survivors (SAM) or around their largest connected component (CASME)."""


def _to_pixels(sal: torch.Tensor, mask: torch.Tensor, upsample_mode: str, **kw) -> torch.Tensor:
    if sal.dim() != 4 or sal.shape[1] != 1:
        raise ValueError(f"sal must have shape (N,1,h,w), got {tuple(sal.shape)}")
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[0] != sal.shape[0]:
        raise ValueError(f"mask must have shape ({sal.shape[0]},1,H,W), got {tuple(mask.shape)}")
    return upsample(sal.float(), tuple(mask.shape[-2:]), mode=upsample_mode, **kw)


def mass_inside(sal: torch.Tensor, mask: torch.Tensor, *, upsample_mode: str = "bilinear",
                **upsample_kw) -> torch.Tensor:
    """Fraction of the positive relevance inside the object mask, per image.

    Args:
        sal: ``(N,1,h,w)`` maps at their native grid (higher = more evidence).
        mask: ``(N,1,H,W)`` bool object masks.
        upsample_mode: resizing mode of :func:`kit.masks.upsample` (``"coverage"`` needs
            ``window=`` and ``stride=``).

    Returns:
        ``(N,)`` in [0,1]; NaN for a map without positive values.
    """
    pix = _to_pixels(sal, mask, upsample_mode, **upsample_kw).clamp_min(0)
    total = pix.sum((1, 2, 3))
    inside = (pix * mask.float()).sum((1, 2, 3))
    return torch.where(total > 0, inside / total, torch.full_like(total, float("nan")))


def pointing_game(sal: torch.Tensor, mask: torch.Tensor, *, upsample_mode: str = "bilinear",
                  **upsample_kw) -> torch.Tensor:
    """1.0 where the map's maximum (first one in raster order) falls inside the mask, per image.

    Returns:
        ``(N,)`` in {0, 1}; NaN for a constant map (every pixel is "the maximum": argmax would
        pick the top-left pixel by convention, not by evidence).
    """
    pix = _to_pixels(sal, mask, upsample_mode, **upsample_kw).flatten(1)
    idx = pix.argmax(1)
    hit = mask.flatten(1).gather(1, idx[:, None]).squeeze(1).float()
    constant = pix.amax(1) == pix.amin(1)
    return torch.where(constant, torch.full_like(hit, float("nan")), hit)


# ----------------------------------------------------------------------------------------------
# boxes
# ----------------------------------------------------------------------------------------------


def _check_size(size) -> tuple[int, int]:
    if isinstance(size, int) and not isinstance(size, bool) and size >= 1:
        return size, size
    if (isinstance(size, (tuple, list, torch.Size)) and len(size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in size)):
        return int(size[0]), int(size[1])
    raise ValueError(f"size must be a positive int or (H, W) positive ints, got {size!r}")


def _check_thresholds(thresholds) -> torch.Tensor:
    t = torch.as_tensor(thresholds, dtype=torch.float64).reshape(-1)
    if t.numel() == 0 or not torch.isfinite(t).all() or (t <= 0).any() or (t > 1).any():
        raise ValueError(f"thresholds must be values in (0, 1] (fractions of the map's max), "
                         f"got {thresholds!r}")
    return t


def _pixels(sal: torch.Tensor, size, upsample_mode: str, upsample_kw: dict) -> torch.Tensor:
    from kit.checks import maps

    maps("sal", sal)
    if torch.isnan(sal).any():
        raise ValueError("sal contains NaN values")
    return upsample(sal.detach().float().cpu(), _check_size(size), mode=upsample_mode,
                    **upsample_kw)


def mask_box(mask: torch.Tensor) -> torch.Tensor:
    """Tight boxes of boolean masks ``(..., H, W)`` -> ``(..., 4)`` int64 ``(x0, y0, x1, y1)``.

    The upper corner is exclusive; an empty mask gives ``(0, 0, 0, 0)``.
    """
    rows, cols = mask.any(-1), mask.any(-2)            # (..., H), (..., W)
    H, W = rows.shape[-1], cols.shape[-1]
    y0 = rows.int().argmax(-1)
    y1 = H - rows.flip(-1).int().argmax(-1)
    x0 = cols.int().argmax(-1)
    x1 = W - cols.flip(-1).int().argmax(-1)
    box = torch.stack([x0, y0, x1, y1], -1).long()
    return torch.where(rows.any(-1, keepdim=True), box, torch.zeros_like(box))


def _largest_component(binary: np.ndarray) -> np.ndarray:
    """The largest 4-connected component of a 2-D boolean array (CASME's ``get_largest_connected``:
    ``scipy.ndimage.label`` + a bincount of the labels weighted by the binary mask; ties go to
    the lower label, i.e. the component met first in raster order)."""
    labels, n = ndimage.label(binary)
    if n == 0:
        return binary
    counts = np.bincount(labels.ravel(), weights=binary.ravel().astype(np.float64))
    return labels == int(np.argmax(counts))


def threshold_boxes(sal: torch.Tensor, size, thresholds=THRESHOLDS, *, rule: str = "all",
                    upsample_mode: str = "bilinear", **upsample_kw) -> torch.Tensor:
    """Protocol (a): boxes of the survivors of a relative threshold sweep.

    Per image: negative values set to 0; survivors are the pixels ``>= theta * max`` for every
    ``theta``; the box is tight around all survivors (``rule="all"``, SAM) or around their largest
    connected component (``rule="largest"``). A map without positive values gives empty boxes.

    Args:
        sal: ``(N,1,h,w)`` maps at their native grid.
        size: image size ``H`` or ``(H, W)``; maps are upsampled to it by
            :func:`kit.masks.upsample`.
        thresholds: fractions of the map's maximum (default :data:`THRESHOLDS`).
        rule: one of :data:`BOX_RULES`.
        upsample_mode: ``"bilinear"`` (project default), ``"nearest"`` or ``"coverage"`` (then
            pass ``window=``, ``stride=``).

    Returns:
        ``(N,T,4)`` int64 boxes ``(x0, y0, x1, y1)``, upper corner exclusive.
    """
    if rule not in BOX_RULES:
        raise ValueError(f"rule must be one of {', '.join(BOX_RULES)}, got {rule!r}")
    t = _check_thresholds(thresholds)
    pix = _pixels(sal, size, upsample_mode, upsample_kw)[:, 0].double().clamp_min(0)  # (N,H,W)
    mx = pix.flatten(1).amax(1)                                                      # (N,)
    surv = pix[:, None] >= (t[None, :] * mx[:, None])[..., None, None]               # (N,T,H,W)
    surv &= (mx > 0)[:, None, None, None]
    if rule == "largest":
        arr = surv.numpy()
        surv = torch.from_numpy(np.stack([[_largest_component(m) for m in per] for per in arr]))
    return mask_box(surv)


def box_iou(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Pixel IoU of filled boxes ``(..., 4)`` ``(x0, y0, x1, y1)`` (exclusive), broadcasting.

    For integer boxes the areas are exact pixel counts. Two empty boxes give IoU 0.
    """
    pred, gt = pred.double(), gt.double()
    iw = (torch.minimum(pred[..., 2], gt[..., 2]) - torch.maximum(pred[..., 0], gt[..., 0]))
    ih = (torch.minimum(pred[..., 3], gt[..., 3]) - torch.maximum(pred[..., 1], gt[..., 1]))
    inter = iw.clamp_min(0) * ih.clamp_min(0)

    def area(b):
        return (b[..., 2] - b[..., 0]).clamp_min(0) * (b[..., 3] - b[..., 1]).clamp_min(0)

    union = area(pred) + area(gt) - inter
    return torch.where(union > 0, inter / union.clamp_min(1e-12), torch.zeros_like(union)).float()


def _check_boxes(boxes, n: int) -> torch.Tensor:
    if not isinstance(boxes, torch.Tensor) or boxes.shape != (n, 4):
        shape = tuple(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
        raise ValueError(f"boxes must be a ({n},4) tensor (x0, y0, x1, y1), got {shape}")
    return boxes.long().cpu()


def iou_sweep(sal: torch.Tensor, boxes: torch.Tensor, size, thresholds=THRESHOLDS, *,
              rule: str = "all", upsample_mode: str = "bilinear", **upsample_kw) -> torch.Tensor:
    """IoU with the ground-truth box at every threshold (methods.md §4.2 protocol (a)).

    Args:
        sal: ``(N,1,h,w)`` maps.
        boxes: ``(N,4)`` ground-truth boxes ``(x0, y0, x1, y1)`` (``WorldBatch.boxes``).
        size, thresholds, rule, upsample_mode: as in :func:`threshold_boxes`.

    Returns:
        ``(N,T)`` float IoU in [0,1].
    """
    gt = _check_boxes(boxes, sal.shape[0] if isinstance(sal, torch.Tensor) else -1)
    pred = threshold_boxes(sal, size, thresholds, rule=rule, upsample_mode=upsample_mode,
                           **upsample_kw)
    return box_iou(pred, gt[:, None, :])


def localization_error(iou: torch.Tensor, *, iou_threshold: float = 0.5) -> torch.Tensor:
    """``1[IoU < iou_threshold]`` as floats (same shape as ``iou``): 1 = the box missed."""
    if not isinstance(iou, torch.Tensor):
        raise TypeError(f"iou must be a torch.Tensor, got {type(iou).__name__}")
    if not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")
    return (iou < iou_threshold).float()


def tune_threshold(iou: torch.Tensor, thresholds=THRESHOLDS, *,
                   iou_threshold: float = 0.5) -> float:
    """The threshold with the lowest mean localisation error on a held-out split.

    Ties are broken by the higher mean IoU, then by the smaller threshold.

    Args:
        iou: ``(N,T)`` from :func:`iou_sweep` on held-out images.
        thresholds: the ``T`` thresholds the sweep used.

    Returns:
        One entry of ``thresholds``.
    """
    t = _check_thresholds(thresholds)
    if not isinstance(iou, torch.Tensor) or iou.dim() != 2 or iou.shape[1] != t.numel() \
            or iou.shape[0] < 1:
        shape = tuple(iou.shape) if isinstance(iou, torch.Tensor) else type(iou).__name__
        raise ValueError(f"iou must have shape (N>=1, {t.numel()}) (one column per threshold), "
                         f"got {shape}")
    err = localization_error(iou, iou_threshold=iou_threshold).double().mean(0)
    mean_iou = iou.double().mean(0)
    best = min(range(t.numel()), key=lambda j: (float(err[j]), -float(mean_iou[j]), float(t[j])))
    return float(thresholds[best])


def largest_component_box(sal: torch.Tensor, size, *, upsample_mode: str = "bilinear",
                          **upsample_kw) -> torch.Tensor:
    """Protocol (c) (CASME): binarise at the map's mean (strictly above), keep the largest
    connected component, tight box.

    Args:
        sal: ``(N,1,h,w)`` maps; size, upsample_mode: as in :func:`threshold_boxes`.

    Returns:
        ``(N,4)`` int64 boxes; a constant map (nothing above its mean) gives ``(0, 0, 0, 0)``.
    """
    pix = _pixels(sal, size, upsample_mode, upsample_kw)[:, 0].double()
    binary = (pix > pix.flatten(1).mean(1)[:, None, None]).numpy()
    comp = torch.from_numpy(np.stack([_largest_component(b) for b in binary]))
    return mask_box(comp)


# ----------------------------------------------------------------------------------------------
# tables for the notebooks
# ----------------------------------------------------------------------------------------------


def _geometry(maps, name: str, upsample_mode: str | None) -> dict:
    """``upsample_mode`` and its keywords for map ``name``: the map's own geometry (a
    :class:`kit.maps.Maps` brings it; SP grids by coverage) unless a mode is forced."""
    from kit.maps import geometry_of

    g = geometry_of(maps, name) if upsample_mode is None else {"mode": upsample_mode}
    return {"upsample_mode": g.pop("mode"), **g}


def largest_component_boxes(maps: dict, size, *, upsample_mode: str | None = None) -> dict:
    """:func:`largest_component_box` of every map, each by its own geometry.

    Args:
        maps: method -> ``(N,1,h,w)``; a :class:`kit.maps.Maps` brings each map's geometry.
        size: image ``H`` or ``(H, W)``.
        upsample_mode: None (default) = each map's geometry, else forced.

    Returns:
        method -> ``(N,4)`` boxes.
    """
    return {name: largest_component_box(sal, size, **_geometry(maps, name, upsample_mode))
            for name, sal in maps.items()}


def sweep_table(maps: dict, boxes: torch.Tensor, size, thresholds=THRESHOLDS, *,
                rules=BOX_RULES, upsample_mode: str | None = None):
    """IoU of every map at every threshold and box rule, as a long DataFrame.

    Args:
        maps: method -> ``(N,1,h,w)`` maps of the same N images.
        boxes: ``(N,4)`` ground-truth boxes.
        size, thresholds: as in :func:`iou_sweep`.
        rules: box rules to sweep.
        upsample_mode: None (default) = each map's geometry (:mod:`kit.maps`), else forced.

    Returns:
        DataFrame ``image, method, rule, threshold, iou``.
    """
    import pandas as pd

    frames = []
    for name, sal in maps.items():
        for rule in rules:
            iou = iou_sweep(sal, boxes, size, thresholds, rule=rule,
                            **_geometry(maps, name, upsample_mode))
            n, t = iou.shape
            frames.append(pd.DataFrame({
                "image": np.repeat(np.arange(n), t), "method": name, "rule": rule,
                "threshold": np.tile(np.asarray(thresholds, dtype=float), n),
                "iou": iou.numpy().ravel().astype(float)}))
    return pd.concat(frames, ignore_index=True)


def tune_thresholds(sweep, *, iou_threshold: float = 0.5):
    """One threshold per (method, rule) from a held-out :func:`sweep_table`.

    Returns:
        DataFrame ``method, rule, threshold, val_error, val_iou, n_val``.
    """
    import pandas as pd

    rows = []
    for (name, rule), g in sweep.groupby(["method", "rule"], sort=False):
        thresholds = tuple(dict.fromkeys(g["threshold"].tolist()))
        wide = g.pivot(index="image", columns="threshold", values="iou")[list(thresholds)]
        iou = torch.tensor(wide.to_numpy(), dtype=torch.float32)
        theta = tune_threshold(iou, thresholds, iou_threshold=iou_threshold)
        j = thresholds.index(theta)
        rows.append({"method": name, "rule": rule, "threshold": theta,
                     "val_error": float(localization_error(iou[:, j], iou_threshold=iou_threshold)
                                        .mean()),
                     "val_iou": float(iou[:, j].mean()), "n_val": int(iou.shape[0])})
    return pd.DataFrame(rows, columns=["method", "rule", "threshold", "val_error", "val_iou",
                                       "n_val"])


def localization_table(maps: dict, boxes: torch.Tensor, masks: torch.Tensor, tuned, *,
                       iou_threshold: float = 0.5, upsample_mode: str | None = None):
    """Per-image localisation metrics of every map (long table for :mod:`kit.report`).

    Metrics (see :data:`HIGHER_IS_BETTER`): ``iou`` and ``loc_error`` at the method's tuned
    threshold with the box around all survivors; ``iou_largest``/``loc_error_largest`` with the
    largest-component box at its own tuned threshold; ``loc_error_casme`` (protocol (c));
    ``mass_inside`` and ``pointing_game`` against the object mask.

    Args:
        maps: method -> ``(N,1,h,w)``.
        boxes: ``(N,4)`` ground-truth boxes; masks: ``(N,1,H,W)`` bool object masks.
        tuned: :func:`tune_thresholds` output (a ``method, rule, threshold`` DataFrame).
        upsample_mode: None (default) = each map's geometry (:mod:`kit.maps`), else forced.

    Returns:
        DataFrame ``image, method, metric, value``; ``mass_inside`` is NaN for a map without
        positive values and ``pointing_game`` for a constant map (count them with
        :func:`kit.metrics.stats.nan_counts`).
    """
    import pandas as pd

    size = tuple(masks.shape[-2:])
    theta = {(r.method, r.rule): float(r.threshold) for r in tuned.itertuples()}
    frames = []
    for name, sal in maps.items():
        missing = [rule for rule in BOX_RULES if (name, rule) not in theta]
        if missing:
            raise ValueError(f"tuned: no threshold for method {name!r}, rule(s) {missing}")
        vals = {}
        g = _geometry(maps, name, upsample_mode)
        for rule, suffix in (("all", ""), ("largest", "_largest")):
            iou = iou_sweep(sal, boxes, size, (theta[name, rule],), rule=rule, **g)[:, 0]
            vals["iou" + suffix] = iou
            vals["loc_error" + suffix] = localization_error(iou, iou_threshold=iou_threshold)
        casme = box_iou(largest_component_box(sal, size, **g),
                        _check_boxes(boxes, sal.shape[0]))
        vals["loc_error_casme"] = localization_error(casme, iou_threshold=iou_threshold)
        vals["mass_inside"] = mass_inside(sal, masks, **g)
        vals["pointing_game"] = pointing_game(sal, masks, **g)
        for metric, v in vals.items():
            frames.append(pd.DataFrame({"image": np.arange(v.shape[0]), "method": name,
                                        "metric": metric, "value": v.double().numpy()}))
    return pd.concat(frames, ignore_index=True)
