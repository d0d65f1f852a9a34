"""KernelSHAP and KernelSHAP-G on SLIC superpixels (Lundberg & Lee, NeurIPS 2017).

Shapley values of the set function ``v(S) = S_t(R(x, keep_S))`` over the K superpixels of
an image, where ``keep_S`` keeps the superpixels in coalition ``S`` and the remover ``R`` fills the
others (``"gray"``: KernelSHAP; ``"inpaint"``: KernelSHAP-G). KernelSHAP estimates them by the
weighted least-squares problem

    min_phi  sum_z  w(z) (v(z) - v(0) - z . phi)^2   subject to   sum_k phi_k = v(1) - v(0)

over coalitions ``z`` in {0,1}^K with the Shapley kernel ``w(z) = (K-1) / (C(K,|z|) |z| (K-|z|))``.

* ``n_samples >= 2^K - 2``: every non-empty proper coalition is enumerated with its kernel
  weight, and the solution is the exact Shapley value (the same coalitions, weights and solve as
  ``shap.KernelExplainer`` with ``nsamples >= 2^K - 2``; tested to 1e-5).
* otherwise: coalition sizes are drawn with probability proportional to the kernel's size mass
  ``(K-1) / (s (K-s))``, members uniformly, each sample paired with its complement (antithetic
  sampling), all with weight 1 (the kernel is in the sampling), from a private generator.

The constraint is eliminated as in ``shap``: ``phi_K = (v(1) - v(0)) - sum_{k<K} phi_k``. The map
gives each pixel its superpixel's value. All coalitions go through the engine
(:func:`kit.engine.score_masks`) with the remover, ``batch_size`` at a time.

Usage::

    from kit.attributors.kernel_shap import kernel_shap
    sal = kernel_shap(clf, x, y, remover="inpaint")      # KernelSHAP-G, (N,1,H,W)
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from kit import checks
from kit.attributors._common import check_inputs, model_guard
from kit.engine import BATCH_SIZE, check_score, score_masks
from kit.masks import Coalitions, superpixels
from kit.removers import get_remover


def shapley_coalitions(k: int, n_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Coalitions ``(S, k)`` {0,1} and weights ``(S,)``; rows 0 and 1 are all-ones and all-zeros.

    Enumerates every non-empty proper coalition (Shapley kernel weights) when
    ``n_samples >= 2^k - 2``; samples ``n_samples`` of them otherwise (see the module docstring).
    """
    full = np.ones((1, k)), np.zeros((1, k))
    if k < 2:
        return np.concatenate(full).astype(np.int64), np.zeros(0)
    if n_samples >= 2**k - 2:
        rows, weights = [], []
        for s in range(1, k):
            w = (k - 1) / (math.comb(k, s) * s * (k - s))
            for members in itertools.combinations(range(k), s):
                z = np.zeros(k)
                z[list(members)] = 1
                rows.append(z)
                weights.append(w)
        z = np.stack(rows)
        return np.concatenate([*full, z]).astype(np.int64), np.asarray(weights)
    rng = np.random.default_rng(seed)  # private generator
    sizes = np.arange(1, k)
    mass = (k - 1) / (sizes * (k - sizes))
    half = (n_samples + 1) // 2
    drawn = rng.choice(sizes, size=half, p=mass / mass.sum())
    rows = []
    for s in drawn:
        z = np.zeros(k)
        z[rng.choice(k, size=s, replace=False)] = 1
        rows += [z, 1 - z]
    z = np.stack(rows[:n_samples])
    return np.concatenate([*full, z]).astype(np.int64), np.ones(z.shape[0])


def shapley_solve(z: np.ndarray, v: np.ndarray, weights: np.ndarray, v1: float,
                  v0: float) -> np.ndarray:
    """The efficiency-constrained weighted least squares of KernelSHAP, ``(k,)`` float64."""
    k = z.shape[1]
    if k == 1:
        return np.asarray([v1 - v0])
    y = v - v0 - z[:, -1] * (v1 - v0)
    a = z[:, :-1] - z[:, -1:]
    sw = np.sqrt(weights)[:, None]
    head = np.linalg.lstsq(a * sw, y * sw[:, 0], rcond=None)[0]
    return np.append(head, (v1 - v0) - head.sum())


def masks(x: torch.Tensor, *, n_samples: int = 2048, n_segments: int = 50,
          compactness: float = 30, sigma: float | None = None, seed: int = 0,
          **_params) -> tuple[Coalitions, list[np.ndarray]]:
    """The mask set KernelSHAP uses on images ``x`` and each image's coalition weights."""
    checks.positive_int("n_samples", n_samples, 2)
    checks.seed("seed", seed)
    segments = superpixels(x, n_segments, compactness, sigma)
    drawn = [shapley_coalitions(int(seg.max()) + 1, n_samples, seed) for seg in segments]
    width = max(z.shape[0] for z, _ in drawn)  # enumeration sizes differ with K: pad with ones
    zs = [np.concatenate([z, np.ones((width - z.shape[0], z.shape[1]), np.int64)])
          for z, _ in drawn]
    return Coalitions(segments, zs), [w for _, w in drawn]


def kernel_shap(model, x: torch.Tensor, target, *, remover="gray", seed: int = 0,
                batch_size: int = BATCH_SIZE, progress: bool = False, n_samples: int = 2048,
                n_segments: int = 50, compactness: float = 30, sigma: float | None = None,
                score: str = "prob") -> torch.Tensor:
    """KernelSHAP map: each pixel gets the Shapley value of its superpixel (signed).

    Args:
        model: pixel-space :class:`~kit.models.Classifier`.
        x: ``(N,3,H,W)`` float images in [0,1].
        target: int or ``(N,)`` long, the explained class.
        remover: a :mod:`kit.removers` name or object (``"gray"``; ``"inpaint"``: KernelSHAP-G).
        seed: seed of the coalition sampler (unused when coalitions are enumerated).
        batch_size: coalitions per remover call and forward pass.
        progress: show a tqdm bar.
        n_samples: coalitions per image besides the empty and full ones (enumerated when
            ``>= 2^K - 2``).
        n_segments, compactness, sigma: SLIC settings, as LIME's.
        score: ``"prob"`` (default), ``"logit"`` or ``"logprob"``.

    Returns:
        ``(N,1,H,W)`` float32 on ``x.device``; per image the values sum to
        ``v(all kept) - v(all removed)``.
    """
    t = check_inputs(model, x, target)
    check_score(score)
    checks.positive_int("batch_size", batch_size)
    coalitions, weights = masks(x, n_samples=n_samples, n_segments=n_segments,
                                compactness=compactness, sigma=sigma, seed=seed)
    rem = get_remover(remover, model=model, size=tuple(x.shape[-2:]))
    with model_guard(model):
        v = score_masks(model, x.detach(), t, coalitions, rem, score=score,
                        batch_size=batch_size, progress=progress, desc="kernel_shap").cpu()
    n, (H, W) = x.shape[0], x.shape[-2:]
    sal = torch.empty(n, 1, H, W, dtype=torch.float32, device=x.device)
    for i in range(n):
        z, w = coalitions.z[i].numpy(), weights[i]
        m = len(w)
        phi = shapley_solve(z[2 : 2 + m], v[i, 2 : 2 + m].numpy(), w, float(v[i, 0]),
                            float(v[i, 1]))
        sal[i, 0] = torch.from_numpy(phi).to(x.device)[coalitions.segments[i]].float()
    return sal
