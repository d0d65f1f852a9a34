"""GAD's ratios RC and RS (Rodrigues, Boutry & Najman, arXiv 2401.14434; methods.md §4.7).

Per image, GAD's support ``S_GAD`` is compared with the no-GAD baseline's ``S_0``
(:mod:`kit.attributors.gad`):

* ``RC = |hull(S_GAD)| / |hull(S_0)|`` with ``hull(S)`` the union of the convex hulls of the
  **connected regions** of S (8-connectivity; ``skimage.morphology.convex_hull_object``, regions
  by ``skimage.measure.label``); overlapping hulls count once. The paper's convex-hull analysis
  draws hulls "around groups of pixels"; one hull over the whole top-q set (kit before issue 13)
  covered 58–100% of a 64×64 world image and pinned SmoothGrad's RC to 1. Lower = a less complex
  explanation.
* ``RS = (Δ_GAD / |hull_GAD|) / (Δ_0 / |hull_0|)`` with ``Δ = m(x) − m(x̃)``, the drop of the
  **original** classifier's margin ``m = z_t − z_o`` (:func:`pair_margin`; o = the other class of
  the pair) when the hull is removed, ``x̃ = R(x, keep = 1 − 1_hull)`` (gray remover by default);
  higher = more sensitivity per unit of occluded area.

A region of one pixel or one line of pixels is its own hull. A support with no pixel (an empty
intersection of the support models' top sets) is "empty" (:func:`is_empty`): RC and RS are NaN
for that image and the images are counted. RC = RS = 1 whenever the two supports are equal (at
α = 0 by construction; for any support model that differs from the original only in its final
bias, since a bias changes no input gradient).

Usage::

    from kit.metrics.gad import gad_ratios
    r = gad_ratios(clf, x, target, other, res.support, base.support)
    r.rc, r.rs, r.area_gad, r.regions_gad                          # (N,) each
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kit import checks
from kit.attributors._common import check_inputs
from kit.engine import BATCH_SIZE
from kit.removers import get_remover

__all__ = [
    "HIGHER_IS_BETTER", "CONNECTIVITY", "GadRatios", "logits", "pair_margin", "is_empty",
    "regions", "convex_hull", "gad_ratios",
]

HIGHER_IS_BETTER = {"RC": False, "RS": True}
"""Direction of the ratios: RC < 1 is a less complex explanation, RS > 1 a more sensitive one."""

CONNECTIVITY = 2
"""Pixel connectivity of a support's regions (``skimage`` convention): 2 = 8-neighbourhood, so
diagonal neighbours belong to one region (top-q sets of gradient maps are speckled)."""


def _support(name: str, s) -> torch.Tensor:
    """Raise unless ``s`` is a ``(N,1,h,w)`` tensor (a support: bool, or anything nonzero = in)."""
    if not isinstance(s, torch.Tensor) or s.dim() != 4 or s.shape[1] != 1:
        got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
        raise ValueError(f"{name} must be a (N,1,h,w) tensor, got {got}")
    return s


@torch.inference_mode()
def logits(model, x: torch.Tensor, *, batch_size: int = BATCH_SIZE) -> torch.Tensor:
    """``(N,C)`` logits of ``model`` on ``x``, ``batch_size`` images per forward pass."""
    batch_size = checks.positive_int("batch_size", batch_size)
    return torch.cat([model(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)])


def pair_margin(model, x: torch.Tensor, target, other, *,
                batch_size: int = BATCH_SIZE) -> torch.Tensor:
    """``m(x) = z_t(x) − z_o(x)`` per image (logits of ``model``), under inference mode.

    Args:
        model: pixel-space classifier; x: ``(N,3,H,W)``; target, other: int or ``(N,)`` long.
        batch_size: images per forward pass.

    Returns:
        ``(N,)`` float32.
    """
    t = check_inputs(model, x, target)
    o = check_inputs(model, x, other)
    z = logits(model, x, batch_size=batch_size)
    return (z.gather(1, t.view(-1, 1)) - z.gather(1, o.view(-1, 1))).squeeze(1).float()


def is_empty(support: torch.Tensor) -> torch.Tensor:
    """``(N,)`` bool: the support has no pixel (no hull, so RC and RS are undefined).

    Args:
        support: ``(N,1,h,w)`` bool.
    """
    _support("support", support)
    return ~support.detach().bool().flatten(1).any(1).cpu()


def regions(support: torch.Tensor) -> torch.Tensor:
    """Number of connected regions of each support (``skimage.measure.label``, 8-connectivity).

    Args:
        support: ``(N,1,h,w)`` bool.

    Returns:
        ``(N,)`` long.
    """
    from skimage.measure import label  # heavy third-party import, lazily

    _support("support", support)
    sup = support[:, 0].detach().cpu().numpy().astype(bool)
    return torch.tensor([int(label(s, connectivity=CONNECTIVITY).max()) for s in sup],
                        dtype=torch.long)


def convex_hull(support: torch.Tensor) -> torch.Tensor:
    """Union of the convex hulls of each support's connected regions, rasterised.

    ``skimage.morphology.convex_hull_object`` (8-connectivity, :data:`CONNECTIVITY`): every
    region gets its own hull, so two separate blobs are not bridged by one hull over both. A
    one-pixel or one-line region is its own hull; the hull always contains the support.

    Args:
        support: ``(N,1,h,w)`` bool.

    Returns:
        ``(N,1,h,w)`` bool; all False for an empty support (see :func:`is_empty`).
    """
    import warnings

    from skimage.morphology import convex_hull_object  # heavy third-party import, lazily

    _support("support", support)
    sup = support[:, 0].detach().cpu().numpy().astype(bool)
    hull = np.zeros_like(sup)
    for i in range(sup.shape[0]):
        if sup[i].any():
            with warnings.catch_warnings():
                # skimage warns on regions without a 2-D hull (a pixel, a line); the union
                # with the support below covers them
                warnings.simplefilter("ignore", UserWarning)
                hull[i] = convex_hull_object(sup[i], connectivity=CONNECTIVITY) | sup[i]
    return torch.from_numpy(hull).unsqueeze(1).to(support.device)


@dataclass(frozen=True)
class GadRatios:
    """Per-image output of :func:`gad_ratios` (numpy arrays of length N).

    Attributes:
        rc, rs: the ratios; NaN where either support is empty (or Δ_0 = 0 for RS).
        area_gad, area_0: hull areas (union of the regions' hulls) as fractions of h·w.
        delta_gad, delta_0: margin drops when the hull is removed.
        empty: whether S_GAD or S_0 has no pixel.
        regions_gad, regions_0: number of connected regions of each support.
    """

    rc: np.ndarray
    rs: np.ndarray
    area_gad: np.ndarray
    area_0: np.ndarray
    delta_gad: np.ndarray
    delta_0: np.ndarray
    empty: np.ndarray
    regions_gad: np.ndarray
    regions_0: np.ndarray


def gad_ratios(model, x: torch.Tensor, target, other, support_gad: torch.Tensor,
               support_0: torch.Tensor, *, remover="gray",
               batch_size: int = BATCH_SIZE) -> GadRatios:
    """RC and RS of GAD's support against the baseline's (methods.md §4.7).

    Args:
        model: the **original** classifier (margins are always taken on it).
        x: ``(N,3,H,W)`` images in [0,1].
        target: explained class t, int or ``(N,)``; other: the pair's other class o.
        support_gad: ``(N,1,H,W)`` bool, S_GAD; support_0: ``(N,1,H,W)`` bool, S_0. Supports on a
            coarser grid must be resized first (``kit.masks.upsample``).
        remover: a ``kit.removers`` name or object filling the occluded hull (default gray).
        batch_size: images per forward pass.

    Returns:
        :class:`GadRatios`.
    """
    t = check_inputs(model, x, target)
    o = check_inputs(model, x, other)
    if bool((t == o).any()):
        raise ValueError("other must differ from target on every image")
    for name, s in (("support_gad", support_gad), ("support_0", support_0)):
        _support(name, s)
        if s.shape[0] != x.shape[0] or s.shape[-2:] != x.shape[-2:]:
            raise ValueError(
                f"{name} must have shape ({x.shape[0]},1,{x.shape[2]},{x.shape[3]}) (one "
                f"image-sized support per image; resize with kit.masks.upsample), "
                f"got {tuple(s.shape)}")
    rem = get_remover(remover, model=model)
    empty = (is_empty(support_gad) | is_empty(support_0)).numpy()
    hulls = {"gad": convex_hull(support_gad.bool()), "0": convex_hull(support_0.bool())}
    m = pair_margin(model, x, t, o, batch_size=batch_size).double()
    area, delta = {}, {}
    for key, hull in hulls.items():
        keep = 1.0 - hull.to(x.dtype)
        with torch.inference_mode():
            occluded = rem(x, keep)
        after = pair_margin(model, occluded, t, o, batch_size=batch_size).double()
        delta[key] = (m - after).numpy()
        area[key] = hull.flatten(1).double().mean(1).cpu().numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        rc = np.where(empty, np.nan, area["gad"] / area["0"])
        rs = (delta["gad"] / area["gad"]) / (delta["0"] / area["0"])
        rs = np.where(empty | (delta["0"] == 0), np.nan, rs)
    return GadRatios(rc, rs, area["gad"], area["0"], delta["gad"], delta["0"], empty,
                     regions(support_gad).numpy(), regions(support_0).numpy())
