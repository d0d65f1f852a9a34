"""Quality of a fill on the embedded world, measured against the true background (issue 13).

Two kinds of hole, the two a removal-based explanation makes:

* **Patches over part of the object** (:func:`patch_quality`): SP's ``window``×``window``
  patches at ``stride``, in two groups: ``"partial"`` (20–80% of the patch on the object) and
  ``"inside"`` (the whole patch on the object). Per patch: the share of hidden object pixels that
  the fill put closer to the object than to the true background (``completion``: a removal fill
  should keep it low, a completion fill high), the drop of p(class) against the oracle's drop
  (``drop``, ``drop_oracle``), the L1 to the true background inside the hole (``l1``) and the
  high-frequency energy ratio (``hf_ratio``).
* **Whole-object holes** (:func:`object_quality`): the object mask dilated by ``dilate_px``;
  p(removed class), the feature Fréchet distance to the true backgrounds with a bootstrap CI over
  images, L1 to the true background and the high-frequency ratio over all images and over the
  more textured half of the backgrounds.

The **high-frequency ratio** (:func:`hf_energy`) compares textures, not pixels: the squared
Laplacian summed inside the hole's interior (the hole eroded by one pixel, so the 3×3 stencil
never reaches a kept pixel and a seam does not count as texture) of the fill, divided by the same
sum for the true background. A blurred fill scores near 0 (gray exactly 0), a fill as textured as
the truth near 1, whatever its pixels. Aggregates are ratios of sums over images (energy-weighted,
so a flat background cannot blow up the mean), with a bootstrap CI over images.

All functions are batched (``batch_size`` images per remover and classifier call) and seeded
(``seed``: which patches are drawn, and the bootstrap).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from kit import checks
from kit.engine import BATCH_SIZE
from kit.metrics.classification import features, probabilities
from kit.metrics.plausibility import frechet_distance, object_keep_mask

HIGHER_IS_BETTER = {
    "completion": None,  # low is right for removal, high for completion: no single direction
    "drop": None,
    "drop_oracle": None,
    "l1": False,
    "hf_ratio": True,  # up to 1 (the true background's own texture)
    "hf_ratio_textured": True,
    "p_removed": False,
    "fd_background": False,
}

PATCH_KINDS = ("partial", "inside")
"""Patch groups of :func:`patch_quality`: 20–80% of the patch on the object; all of it."""

_LAPLACE = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def hf_energy(x: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """High-frequency energy of ``x`` inside each hole's interior, ``(N,)``.

    Args:
        x: ``(N,3,H,W)`` images (a composite or the true background).
        hole: ``(N,1,H,W)`` holes (1 = filled).

    Returns:
        Per image, the squared 5-point Laplacian summed over channels and over the pixels of the
        hole eroded by one pixel (where the stencil sees only filled pixels).
    """
    c = x.shape[1]
    lap = F.conv2d(x, _LAPLACE.to(x).view(1, 1, 3, 3).expand(c, 1, 3, 3), groups=c)
    interior = -F.max_pool2d(-hole.to(x.dtype), 3, stride=1)  # erosion, (N,1,H-2,W-2)
    return (lap.pow(2).sum(1, keepdim=True) * interior).sum((1, 2, 3))


def _ratio_ci(num: np.ndarray, den: np.ndarray, seed: int, n_resamples: int = 1000):
    """``sum(num) / sum(den)`` and its percentile-bootstrap 95% CI over images."""
    ok = np.isfinite(num) & np.isfinite(den)
    num, den = num[ok], den[ok]
    if den.sum() <= 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(len(num), size=(n_resamples, len(num)))
    boot = num[idx].sum(1) / np.maximum(den[idx].sum(1), 1e-12)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return float(num.sum() / den.sum()), float(lo), float(hi)


def _fd_ci(feats: np.ndarray, ref: np.ndarray, seed: int, n_resamples: int = 200):
    """Feature FD (:func:`~kit.metrics.plausibility.frechet_distance`) and its percentile-bootstrap
    95% CI, resampling images (a fill and its true background stay together)."""
    rng = np.random.default_rng(seed)
    n = len(feats)
    boot = [frechet_distance(feats[i], ref[i]) for i in rng.integers(n, size=(n_resamples, n))]
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return frechet_distance(feats, ref), float(lo), float(hi)


def _resolve(removers: dict, model, batch) -> dict:
    from kit.removers import get_remover

    size = tuple(batch.images.shape[-2:])
    return {name: get_remover(spec, model=model, size=size, backgrounds=batch.backgrounds)
            if isinstance(spec, str) else spec for name, spec in removers.items()}


def _fill(remover, x: torch.Tensor, keep: torch.Tensor, image: torch.Tensor,
          batch_size: int) -> torch.Tensor:
    """Composites of images ``image`` (indices into the batch the remover was built for)."""
    return torch.cat([
        remover.take(image[i:i + batch_size])(x[i:i + batch_size], keep[i:i + batch_size])
        for i in range(0, len(x), batch_size)
    ])


def object_quality(model, batch, removers: dict, *, dilate_px: int = 2,
                   batch_size: int = BATCH_SIZE, seed: int = 0):
    """Whole-object removal: p(removed class), feature FD (with CI), L1 and HF ratios.

    Args:
        model: the world :class:`~kit.models.Classifier`.
        batch: a :class:`~kit.world.WorldBatch` (fresh ``test`` images).
        removers: display name -> remover or remover name (resolved with ``model``, the image
            size and the batch's backgrounds; ``"oracle"`` is the true background).
        dilate_px: hole = object mask dilated by this many pixels.
        batch_size: images per remover / classifier call.
        seed: bootstrap seed.

    Returns:
        A pandas DataFrame, one row per remover: ``p_removed`` (+ ``_lo``/``_hi``),
        ``fd_background`` (+ CI over images), ``l1`` (+ CI), ``hf_ratio`` over all images and
        ``hf_ratio_textured`` over the images whose true-background energy in the hole is above
        the batch's median (+ CIs).
    """
    import pandas as pd

    from kit.metrics.plausibility import fill_error
    from kit.metrics.stats import bootstrap_ci

    batch_size = checks.positive_int("batch_size", batch_size)
    keep = object_keep_mask(batch.masks, dilate_px)
    hole = 1 - keep
    n = len(batch)
    image = torch.arange(n)
    bg_feats = features(model, batch.backgrounds, batch_size).double().numpy()
    e_bg = hf_energy(batch.backgrounds, hole).double().numpy()
    textured = e_bg > np.median(e_bg)
    rows = []
    for name, remover in _resolve(removers, model, batch).items():
        xt = _fill(remover, batch.images, keep, image, batch_size)
        p = probabilities(model, xt, batch_size)[image, batch.labels].double().numpy()
        l1 = fill_error(xt, batch.backgrounds, keep).l1.double().numpy()
        e = hf_energy(xt, hole).double().numpy()
        fd, fd_lo, fd_hi = _fd_ci(features(model, xt, batch_size).double().numpy(), bg_feats,
                                  seed)
        hf, hf_lo, hf_hi = _ratio_ci(e, e_bg, seed)
        hft, hft_lo, hft_hi = _ratio_ci(e[textured], e_bg[textured], seed)
        p_lo, p_hi = bootstrap_ci(p, seed=seed)
        l1_lo, l1_hi = bootstrap_ci(l1, seed=seed)
        rows.append({
            "remover": name, "p_removed": p.mean(), "p_removed_lo": p_lo, "p_removed_hi": p_hi,
            "fd_background": fd, "fd_background_lo": fd_lo, "fd_background_hi": fd_hi,
            "l1": l1.mean(), "l1_lo": l1_lo, "l1_hi": l1_hi,
            "hf_ratio": hf, "hf_ratio_lo": hf_lo, "hf_ratio_hi": hf_hi,
            "hf_ratio_textured": hft, "hf_ratio_textured_lo": hft_lo,
            "hf_ratio_textured_hi": hft_hi,
        })
    return pd.DataFrame(rows).set_index("remover")


def object_patches(
    masks: torch.Tensor, *, window: int = 8, stride: int = 4, per_image: int = 6, seed: int = 0,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Draw SP patches over the objects: for each kind, ``(image, position)`` index pairs.

    Args:
        masks: ``(N,1,H,W)`` object masks.
        window, stride: the patch grid (:func:`kit.masks.window_masks`).
        per_image: at most this many patches per image and kind, drawn without replacement
            from image ``i``'s generator ``(seed, i)`` (all of them when fewer qualify).
        seed: seed of the draw.

    Returns:
        ``{"partial": (image, position), "inside": (image, position)}``, long tensors: patches
        with 20–80% of their pixels on the object, and patches entirely on the object.
    """
    from kit.masks import grid_shape, window_masks

    per_image = checks.positive_int("per_image", per_image)
    size = tuple(masks.shape[-2:])
    nh, nw = grid_shape(size, window, stride)
    hole = 1 - window_masks(size, window, stride, torch.arange(nh * nw))  # (K,1,H,W)
    cover = torch.einsum("khw,nhw->nk", hole[:, 0], masks[:, 0].float()) / (window * window)
    out = {}
    for kind, sel in (("partial", (cover > 0.2) & (cover < 0.8)), ("inside", cover >= 0.999)):
        im, pos = [], []
        for i in range(len(masks)):
            cand = sel[i].nonzero()[:, 0].numpy()
            if len(cand) > per_image:
                cand = np.sort(np.random.default_rng([seed, i]).choice(cand, per_image, False))
            im += [i] * len(cand)
            pos += cand.tolist()
        out[kind] = (torch.tensor(im, dtype=torch.long), torch.tensor(pos, dtype=torch.long))
    return out


def patch_quality(model, batch, removers: dict, *, window: int = 8, stride: int = 4,
                  per_image: int = 6, min_diff: float = 0.1, batch_size: int = BATCH_SIZE,
                  seed: int = 0):
    """Fills of SP patches over part of the object and inside it, per patch (a long table).

    Args:
        model: the world :class:`~kit.models.Classifier`.
        batch: a :class:`~kit.world.WorldBatch`.
        removers: display name -> remover or name (as :func:`object_quality`). The oracle's drop
            is always measured (column ``drop_oracle``) and need not be listed.
        window, stride, per_image, seed: the patches (:func:`object_patches`).
        min_diff: only hidden object pixels whose colour differs from the true background's by
            more than this (mean over channels) count for ``completion`` (elsewhere the two
            answers are the same pixels).
        batch_size: composites per remover / classifier call.

    Returns:
        A long pandas DataFrame ``image, kind, remover, metric, value``, one row per patch and
        metric: ``completion`` (share of the counted hidden object pixels filled closer to the
        object than to the true background; NaN when none counts), ``drop``
        (p(class | image) − p(class | composite)), ``drop_oracle`` (the same with the true
        background), ``l1`` (to the true background, inside the hole), ``hf_num`` / ``hf_den``
        (the fill's and the true background's high-frequency energy: sum each over patches and
        divide for the ratio; :func:`summarize_patches` does).
    """
    import pandas as pd

    from kit.masks import window_masks
    from kit.removers import TrueBackground

    batch_size = checks.positive_int("batch_size", batch_size)
    size = tuple(batch.images.shape[-2:])
    p0 = probabilities(model, batch.images, batch_size)[torch.arange(len(batch)), batch.labels]
    oracle = TrueBackground(batch.backgrounds)
    resolved = _resolve(removers, model, batch)
    frames = []
    for kind, (im, pos) in object_patches(batch.masks, window=window, stride=stride,
                                          per_image=per_image, seed=seed).items():
        if len(im) == 0:
            continue
        keep = window_masks(size, window, stride, pos)
        hole = 1 - keep
        x, bg, y = batch.images[im], batch.backgrounds[im], batch.labels[im]
        hidden = (hole * batch.masks[im].float()) > 0
        counted = hidden & ((x - bg).abs().mean(1, keepdim=True) > min_diff)
        area = hole.sum((1, 2, 3))
        e_bg = hf_energy(bg, hole)
        p_or = probabilities(model, _fill(oracle, x, keep, im, batch_size), batch_size)
        drop_or = p0[im] - p_or[torch.arange(len(im)), y]
        for name, remover in resolved.items():
            xt = _fill(remover, x, keep, im, batch_size)
            closer = ((xt - x).abs().mean(1, keepdim=True) < (xt - bg).abs().mean(1, keepdim=True))
            n_counted = counted.sum((1, 2, 3))
            completion = torch.where(n_counted > 0, (closer & counted).sum((1, 2, 3))
                                     / n_counted.clamp_min(1), torch.tensor(float("nan")))
            p = probabilities(model, xt, batch_size)[torch.arange(len(im)), y]
            l1 = ((xt - bg).abs() * hole).sum((1, 2, 3)) / (3 * area)
            values = {"completion": completion, "drop": p0[im] - p, "drop_oracle": drop_or,
                      "l1": l1, "hf_num": hf_energy(xt, hole), "hf_den": e_bg}
            for metric, v in values.items():
                frames.append(pd.DataFrame({"image": im.numpy(), "kind": kind, "remover": name,
                                            "metric": metric, "value": v.double().numpy()}))
    cols = ["image", "kind", "remover", "metric", "value"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def summarize_patches(long, *, seed: int = 0):
    """Per kind and remover: the mean of each patch metric with a bootstrap CI over patches
    (``completion`` ignores NaN patches and reports how many counted), and ``hf_ratio`` as the
    ratio of the summed energies.

    Args:
        long: :func:`patch_quality`'s table.
        seed: bootstrap seed.

    Returns:
        A DataFrame indexed by ``(kind, remover)`` with ``completion``, ``drop``,
        ``drop_oracle``, ``l1``, ``hf_ratio`` and their ``_lo`` / ``_hi``, and ``n`` (patches).
    """
    import pandas as pd

    from kit.metrics.stats import bootstrap_ci

    rows = []
    for (kind, name), g in long.groupby(["kind", "remover"], sort=False):
        wide = {m: gm["value"].to_numpy() for m, gm in g.groupby("metric")}
        row = {"kind": kind, "remover": name, "n": len(wide["l1"])}
        for m in ("completion", "drop", "drop_oracle", "l1"):
            v = wide[m][np.isfinite(wide[m])]
            row[m] = float(v.mean()) if len(v) else float("nan")
            row[f"{m}_lo"], row[f"{m}_hi"] = bootstrap_ci(v, seed=seed)
        row["hf_ratio"], row["hf_ratio_lo"], row["hf_ratio_hi"] = _ratio_ci(
            wide["hf_num"], wide["hf_den"], seed)
        rows.append(row)
    return pd.DataFrame(rows).set_index(["kind", "remover"])
