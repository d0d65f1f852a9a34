"""SAM's similarity metric: how alike two attribution maps of the same image are (methods.md §4.5).

Bansal, Agarwal & Nguyen, "SAM: The Sensitivity of Attribution Methods to Hyperparameters"
(CVPR 2020) compare the maps one method gives for the same image when one hyperparameter changes,
with three similarities (all higher = more similar = more robust, :data:`HIGHER_IS_BETTER`;
:data:`METRICS` lists the headline, Spearman, first):

* :func:`spearman` — Spearman rank correlation (``scipy.stats.spearmanr``) of the flattened maps:
  **the headline** (:data:`HEADLINE`), because it ignores the maps' amplitude and SSIM's
  stabilising constants, and its floor (maps of different images) sits near 0;
* :func:`ssim` — ``skimage.metrics.structural_similarity(win_size=5, gaussian_weights=False,
  use_sample_covariance=True)`` with ``data_range`` 2 for signed maps and 1 for non-negative ones;
* :func:`hog_pearson` — Pearson correlation (``scipy.stats.pearsonr``) of the maps' HOG features
  (``skimage.feature.hog``: 9 orientations, 3×3-cell blocks, L2-Hys, no sqrt; cell side
  ``kit.defaults`` ``hog_cell``: 16 at 224, 8 at 64).

**Before comparing**, maps go from their native grid to the image size by their geometry
(:func:`kit.maps.to_pixels`: ``coverage`` for sliding-patch grids, ``bilinear`` otherwise) and
**every** map is divided by its own max ``|H|`` (:func:`prenormalise`, :func:`scaling`).
Deviation from SAM, which leaves SP (probability drops) and MP (``1 - mask``) unscaled: SSIM's
constants ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2`` dominate when a map's values are small, so
unscaled SSIM tracks the maps' amplitude, not their pattern (the 2026-12 audit, §6.1: maps of
*different* images scored 0.73 for SP and 0.92 for SP-G, whose drops are smaller). After the
rescaling a map and ``10×`` that map score the same. The similarity functions themselves take two
batches of equal shape ``(N,1,H,W)``.

**What "similar" means by chance** is measured by the study's floor (:mod:`kit.studies.sam`:
the same pipeline on maps of *different* images of the same method), not by a fixed number.

**Undefined values.** Spearman and HOG-Pearson correlations are undefined (NaN) when one map is
constant (no ranks, or an all-zero HOG vector), e.g. an all-zero MP map; SSIM is always defined
(two identical constant maps give 1). NaN images are counted, never dropped silently: every
aggregate reports ``n`` and ``n_nan`` (:mod:`kit.metrics.stats`).

The sweeps that produce the maps compared here (SAM's study) live in :mod:`kit.studies.sam`.

Usage::

    from kit.metrics import sensitivity as sens
    rescale, data_range = sens.scaling("SP-G")             # (True, 2.0)
    a, b = (sens.prenormalise(to_pixels(s, 64, geom), rescale=rescale) for s in (s1, s2))
    sens.similarity(a, b, data_range=data_range)      # {"spearman": (N,), "ssim": ..., ...}
"""

from __future__ import annotations

import numpy as np
import torch

from kit import checks

__all__ = [
    "HEADLINE",
    "HIGHER_IS_BETTER",
    "METRICS",
    "SCALING_BY_ATTRIBUTOR",
    "hog_pearson",
    "prenormalise",
    "scaling",
    "similarity",
    "spearman",
    "ssim",
]

HIGHER_IS_BETTER = {"spearman": True, "ssim": True, "hog_pearson": True}
"""All three similarities: higher = the map changed less = more robust (headline first)."""

METRICS = tuple(HIGHER_IS_BETTER)
"""The similarities in reporting order: :data:`HEADLINE` first."""

HEADLINE = "spearman"
"""The robustness number reported first: rank agreement is amplitude-free and its floor is ~0."""

SCALING_BY_ATTRIBUTOR: dict[str, tuple[bool, float]] = {
    # attributor -> (divide by max|H|, data_range of SSIM). Every map is rescaled by its own
    # max|H| (SAM leaves SP and MP unscaled, which makes SSIM track amplitude: module docstring);
    # the SSIM data range is the width of the value range after that step: 2 for signed maps
    # ([-1, 1]), 1 for non-negative ones ([0, 1]).
    "sliding_patch": (True, 2.0),            # probability drops, signed
    "meaningful_perturbation": (True, 1.0),  # 1 - mask >= 0
    "mp2": (True, 1.0),
    "lime": (True, 2.0),
    "kernel_shap": (True, 2.0),      # signed Shapley values, like LIME's coefficients
    "fido": (True, 2.0),
    "input_x_gradient": (True, 2.0),
    "integrated_gradients": (True, 2.0),
    "rise": (True, 1.0),             # >= 0
    "saliency": (True, 1.0),         # max_c |g| >= 0
    "smoothgrad": (True, 1.0),       # max_c |.| of the mean gradient >= 0
    "smoothgrad_sq": (True, 1.0),
    "vargrad": (True, 1.0),
    "guided_backprop": (True, 1.0),
    "grad_cam": (True, 1.0),
    "sobel": (True, 1.0),            # gradient magnitude >= 0
    "random": (True, 1.0),
}
"""Attributor -> ``(rescale by max|H|, SSIM data_range)`` (methods.md §4.5 pre-normalisation)."""


def scaling(name: str) -> tuple[bool, float]:
    """``(rescale, data_range)`` of method ``name`` (a :data:`kit.attributors.METHODS` key).

    Raises:
        ValueError: unknown method (the message lists the valid names), or an attributor without
            a declared scaling in :data:`SCALING_BY_ATTRIBUTOR`.
    """
    from kit.attributors import METHODS

    checks.choice("name", name, METHODS, "method")
    attributor = METHODS[name].attributor
    if attributor not in SCALING_BY_ATTRIBUTOR:
        raise ValueError(f"name: no SAM scaling declared for attributor {attributor!r} of {name!r}")
    return SCALING_BY_ATTRIBUTOR[attributor]


# --------------------------------------------------------------------------- checks and helpers


def _check_pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Two float ``(N,1,H,W)`` batches of equal shape, finite -> ``(N,H,W)`` float64 arrays."""
    a, b = checks.maps("a", a), checks.maps("b", b)
    if a.shape != b.shape:
        raise ValueError(
            f"a and b must have the same shape (bring native maps to the image size with "
            f"kit.maps.to_pixels first), got {tuple(a.shape)} and {tuple(b.shape)}")
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError("a and b must be finite")
    return (a.detach().to("cpu", torch.float64)[:, 0].numpy(),
            b.detach().to("cpu", torch.float64)[:, 0].numpy())


def _constant(h: np.ndarray) -> bool:
    return bool(np.all(h == h.flat[0]))


# --------------------------------------------------------------------------- pre-processing


def prenormalise(sal: torch.Tensor, *, rescale: bool) -> torch.Tensor:
    """SAM's pre-normalisation: each map divided by its max ``|H|`` when ``rescale``.

    An all-zero map stays zero (there is nothing to rescale).

    Args:
        sal: ``(N,1,H,W)`` maps.
        rescale: divide by the per-map max ``|H|`` (signed maps -> [-1, 1]).

    Returns:
        ``(N,1,H,W)``, the input itself when ``rescale`` is False.
    """
    sal = checks.maps("sal", sal)
    checks.boolean("rescale", rescale)
    if not rescale:
        return sal
    peak = sal.abs().amax(dim=(1, 2, 3), keepdim=True)
    return torch.where(peak > 0, sal / torch.where(peak > 0, peak, 1), sal)


# --------------------------------------------------------------------------- the three similarities


def ssim(a: torch.Tensor, b: torch.Tensor, *, data_range: float) -> np.ndarray:
    """Per-image SSIM (window 5, uniform weights, sample covariance) of two map batches.

    Args:
        a, b: ``(N,1,H,W)`` maps of equal shape, already at the image size and pre-normalised.
        data_range: 2 for maps in [-1, 1], 1 for maps in [0, 1] (SAM; MP uses 1).

    Returns:
        ``(N,)`` float64 in [-1, 1]; identical maps give 1 (also when constant).

    Raises:
        ValueError: shapes differ, maps smaller than 5×5, non-finite values, bad ``data_range``.
    """
    from skimage.metrics import structural_similarity

    a, b = _check_pair(a, b)
    data_range = checks.number("data_range", data_range, minimum=0, strict=True)
    if min(a.shape[-2:]) < 5:
        raise ValueError(f"a, b: SSIM with win_size=5 needs maps of at least 5x5, got "
                         f"{a.shape[-2:]}")
    return np.array([
        structural_similarity(h1, h2, win_size=5, data_range=data_range,
                              gaussian_weights=False, use_sample_covariance=True)
        for h1, h2 in zip(a, b, strict=True)], dtype=np.float64)


def _hog(h: np.ndarray, cell: int) -> np.ndarray:
    from skimage.feature import hog

    # skimage-0.15 defaults as SAM used them: 9 orientations, 3x3 cells per block, L2-Hys,
    # no power-law compression, flattened.
    return hog(h, orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(3, 3),
               block_norm="L2-Hys", transform_sqrt=False, feature_vector=True, channel_axis=None)


def hog_pearson(a: torch.Tensor, b: torch.Tensor, *, cell: int | None = None) -> np.ndarray:
    """Per-image Pearson correlation of the two maps' HOG features.

    Args:
        a, b: ``(N,1,H,W)`` maps of equal shape, at the image size and pre-normalised.
        cell: HOG cell side in pixels; None = ``kit.defaults`` ``hog_cell`` for the map size
            (8 at 64, 16 at 224). The map must hold at least 3×3 cells (one block).

    Returns:
        ``(N,)`` float64 in [-1, 1]; NaN where a HOG vector is constant (e.g. a constant map,
        whose gradients and so features are all zero).
    """
    from scipy.stats import pearsonr

    from kit.defaults import resolve

    a, b = _check_pair(a, b)
    h, w = a.shape[-2:]
    cell = checks.positive_int("cell", resolve("hog_cell", min(h, w)) if cell is None else cell)
    if min(h, w) < 3 * cell:
        raise ValueError(f"cell: maps of {h}x{w} hold fewer than 3x3 cells of {cell} px "
                         f"(one HOG block)")
    out = np.full(len(a), np.nan)
    for i, (h1, h2) in enumerate(zip(a, b, strict=True)):
        f1, f2 = _hog(h1, cell), _hog(h2, cell)
        if not (_constant(f1) or _constant(f2)):  # pearsonr warns and returns NaN otherwise
            out[i] = pearsonr(f1, f2).statistic
    return out


def spearman(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Per-image Spearman rank correlation of the flattened maps (ties get average ranks).

    Args:
        a, b: ``(N,1,H,W)`` maps of equal shape (any common grid).

    Returns:
        ``(N,)`` float64 in [-1, 1]; NaN where one map is constant (no ranking).
    """
    from scipy.stats import spearmanr

    a, b = _check_pair(a, b)
    out = np.full(len(a), np.nan)
    for i, (h1, h2) in enumerate(zip(a, b, strict=True)):
        if not (_constant(h1) or _constant(h2)):  # spearmanr warns and returns NaN otherwise
            out[i] = spearmanr(h1, h2, axis=None).statistic
    return out


def similarity(a: torch.Tensor, b: torch.Tensor, *, data_range: float,
               cell: int | None = None) -> dict[str, np.ndarray]:
    """All three similarities of two ``(N,1,H,W)`` batches, ``{metric: (N,)}`` in :data:`METRICS`
    order (arguments as :func:`ssim` and :func:`hog_pearson`)."""
    return {"spearman": spearman(a, b),
            "ssim": ssim(a, b, data_range=data_range),
            "hog_pearson": hog_pearson(a, b, cell=cell)}
