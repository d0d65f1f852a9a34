"""Counterfactual plausibility (methods.md §4.1, project choice).

* :func:`frechet_distance` — FID computed on the classifier's penultimate features (float64,
  real part of the matrix square root). Lower = more plausible.
* :func:`fill_error` — L1 and PSNR of the composite against the true background, weighted by
  the removed amount ``1 - keep`` (kept pixels are identical by construction).
* :func:`artifact_rate` — removal alone creates a confident wrong class.
* :func:`removal_quality` — the world benchmark of a set of removers on whole-object removal:
  probability left for the removed class, fill error, feature Fréchet distance to the true
  backgrounds, artifact rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kit.metrics.stats import bootstrap_ci

HIGHER_IS_BETTER = {
    "fd_background": False,
    "fd_real": False,
    "l1": False,
    "psnr": True,
    "artifact_rate": False,
    "p_removed": False,
}


@torch.inference_mode()
def features(model, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Penultimate features ``(N,D)`` of pixel-space images, in batches."""
    return torch.cat([model.features(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


@torch.inference_mode()
def probabilities(model, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Softmax probabilities ``(N,C)`` of pixel-space images, in batches."""
    return torch.cat(
        [model(x[i : i + batch_size]).softmax(1) for i in range(0, len(x), batch_size)]
    )


def frechet_distance(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets.

    ``FD = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))``, in float64.

    Args:
        a: ``(N,D)`` features; b: ``(M,D)`` features. Use the same N for every compared
            condition: the estimate is biased at finite N.
    """
    from scipy import linalg

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"a and b must be (N,D) and (M,D) feature arrays, got {a.shape}, {b.shape}"
        )
    if min(len(a), len(b)) < 2:
        raise ValueError(f"need at least 2 samples per set, got {len(a)} and {len(b)}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s_a @ s_b)
    if not np.isfinite(covmean).all():  # singular product: regularise as pytorch-fid does
        eps = 1e-6 * np.eye(a.shape[1])
        covmean = linalg.sqrtm((s_a + eps) @ (s_b + eps))
    fd = np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(covmean.real)
    return float(max(fd, 0.0))


@dataclass(frozen=True)
class FillError:
    """Per-image fill error inside the removed region: ``l1 (N,)`` and ``psnr (N,)`` (dB)."""

    l1: torch.Tensor
    psnr: torch.Tensor


def fill_error(x_tilde: torch.Tensor, background: torch.Tensor, keep: torch.Tensor) -> FillError:
    """L1 and PSNR of counterfactuals against the true background, weighted by ``1 - keep``.

    Args:
        x_tilde: ``(N,3,H,W)`` composites; background: ``(N,3,H,W)``; keep: ``(N,1,H,W)``.

    Returns:
        :class:`FillError`; images with nothing removed get NaN.
    """
    w = (1 - keep.to(x_tilde.dtype)).expand_as(x_tilde)
    denom = w.sum((1, 2, 3))
    diff = x_tilde - background
    l1 = (w * diff.abs()).sum((1, 2, 3)) / denom
    mse = (w * diff**2).sum((1, 2, 3)) / denom
    psnr = 10 * torch.log10(1 / mse)  # inf where the fill is exact (the oracle)
    nan = torch.full_like(l1, float("nan"))
    return FillError(torch.where(denom > 0, l1, nan), torch.where(denom > 0, psnr, nan))


def artifact_rate(
    probs: torch.Tensor, target: torch.Tensor, reference: torch.Tensor | None = None,
    threshold: float = 0.5,
) -> torch.Tensor:
    """Per-image flag: removal created a confident wrong class (methods.md §4.1 c).

    Args:
        probs: ``(N,C)`` probabilities on the counterfactuals.
        target: ``(N,)`` explained class.
        reference: ``(N,)`` top-1 class of the reference counterfactual (true background), or None.
        threshold: minimum top-1 probability to count as confident.

    Returns:
        ``(N,)`` float in {0,1}; its mean is the rate.
    """
    p, top = probs.max(1)
    wrong = top != target
    if reference is not None:
        wrong &= top != reference
    return (wrong & (p >= threshold)).float()


def object_keep_mask(masks: torch.Tensor, dilate_px: int = 2) -> torch.Tensor:
    """Keep-mask removing each object: ``1 - dilate(mask, dilate_px)``, ``(N,1,H,W)`` float."""
    from kit.train import dilate

    return 1 - dilate(masks.float(), dilate_px)


def removal_quality(
    model, batch, removers: dict, *, dilate_px: int = 2, batch_size: int = 256, seed: int = 0
):
    """Remove every object with each remover and measure plausibility (the issue-2 benchmark).

    Args:
        model: the world :class:`~kit.models.Classifier`.
        batch: a :class:`~kit.world.WorldBatch` (fresh ``test`` images).
        removers: display name -> remover (``kit.removers``).
        dilate_px: hole = object mask dilated by this many pixels.
        batch_size: images per forward / remover call.
        seed: bootstrap seed.

    Returns:
        A pandas DataFrame, one row per remover: ``p_removed`` (mean probability of the removed
        object's class, with 95% bootstrap CI), ``l1`` and ``psnr`` inside the hole (vs the true
        background), ``fd_background`` (feature Fréchet distance to the true backgrounds),
        ``fd_real`` (to the original images, objects included), ``artifact_rate``. The first
        row, ``true background``, is the floor.
    """
    import pandas as pd

    keep = object_keep_mask(batch.masks, dilate_px)
    bg_feats = features(model, batch.backgrounds, batch_size)
    real_feats = features(model, batch.images, batch_size)
    bg_top = probabilities(model, batch.backgrounds, batch_size).argmax(1)
    rows = []
    conds = {"true background": None, **removers}
    for name, remover in conds.items():
        if remover is None:
            xt = torch.where(keep.bool(), batch.images, batch.backgrounds)
        else:
            xt = torch.cat([
                remover(batch.images[i : i + batch_size], keep[i : i + batch_size])
                for i in range(0, len(batch), batch_size)
            ])
        probs = probabilities(model, xt, batch_size)
        p_rem = probs[torch.arange(len(batch)), batch.labels].numpy()
        err = fill_error(xt, batch.backgrounds, keep)
        art = artifact_rate(probs, batch.labels, bg_top).numpy()
        lo, hi = bootstrap_ci(p_rem, seed=seed)
        l1 = err.l1.numpy()
        l1_lo, l1_hi = bootstrap_ci(l1, seed=seed)
        rows.append({
            "remover": name,
            "p_removed": float(p_rem.mean()), "p_removed_lo": lo, "p_removed_hi": hi,
            "l1": float(l1.mean()), "l1_lo": l1_lo, "l1_hi": l1_hi,
            "psnr": float(err.psnr.mean()),
            "fd_background": frechet_distance(feats := features(model, xt, batch_size), bg_feats),
            "fd_real": frechet_distance(feats, real_feats),
            "artifact_rate": float(art.mean()),
        })
    return pd.DataFrame(rows).set_index("remover")
