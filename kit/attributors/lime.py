"""LIME and LIME-G on SLIC superpixels, as GAM's LIME (methods.md §3.2; pitfall 19).

Per image:

1. ``S = kit.masks.superpixels(x, n_segments, compactness, sigma)``: SLIC labels ``0..K-1``
   (K can be below ``n_segments``).
2. ``Z = RandomState(seed).randint(0, 2, n_samples * K).reshape(n_samples, K)``; ``Z[0] = 1``
   (the unperturbed image). This is exactly stock LIME's draw (``LimeImageExplainer(
   random_state=seed)`` with an explicit ``random_seed`` in ``explain_instance``), from a private
   numpy ``RandomState``; the global RNGs are untouched.
3. Sample i keeps the superpixels with ``Z[i, k] = 1``: ``keep_i = Z[i, S]``, image
   ``R(x, keep_i)`` with the remover (``"gray"``: LIME; ``"inpaint"``: LIME-G); label
   ``y_i = S_t`` (default the softmax probability of the target). All samples go through the
   remover and the model ``batch_size`` at a time.
4. ``d_i`` = cosine distance of ``Z[i]`` to the all-ones row (``sklearn pairwise_distances``),
   ``w_i = sqrt(exp(-d_i^2 / kernel_width^2))``.
5. ``Ridge(alpha=1, fit_intercept=True).fit(Z, y, sample_weight=w)`` on all K features; the map
   is the coefficient of each pixel's superpixel. (Stock LIME's ``'auto'`` feature selection with
   ``num_features=100000`` keeps every feature, so its final Ridge is this one.)

Correspondence with the ``lime`` package (tested): ``LimeImageExplainer(kernel_width,
random_state=seed).explain_instance(image_hwc, classifier_fn, labels=(t,), top_labels=None,
hide_color=<the gray colour>, num_samples=n_samples, segmentation_fn=lambda img: S,
random_seed=<any int>)`` gives the same coefficients (``local_exp[t]``) and intercept, where
``classifier_fn`` returns the model's softmax on NHWC batches. With ``hide_color`` the gray
remover's composite ``x * keep + c * (1 - keep)`` is exactly LIME's ``temp[mask] = fudged``.

Not reproduced: GAM's uint8 truncation of the gray colour and the uint8 re-quantisation of
LIME-G composites (fidelity details, methods.md pitfall 9).

Usage::

    from kit.attributors.lime import lime, lime_explain
    sal = lime(clf, x, y)                          # (N,1,H,W), piecewise constant
    res = lime_explain(clf, x, y, remover="inpaint")
    res.segments, res.coef[0], res.intercept, res.score
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import torch

from kit import checks
from kit.attributors._common import check_inputs, model_guard
from kit.engine import BATCH_SIZE, check_score, score_masks
from kit.masks import Coalitions, superpixels
from kit.removers import get_remover


@dataclass(frozen=True)
class LimeResult:
    """Output of :func:`lime_explain`.

    Attributes:
        sal: ``(N,1,H,W)`` float32 map (the coefficient of each pixel's superpixel).
        segments: ``(N,H,W)`` long superpixel labels ``0..K_i-1``.
        coef: per image, the ``(K_i,)`` float64 Ridge coefficients (CPU).
        intercept: ``(N,)`` float64 Ridge intercepts (CPU).
        score: ``(N,)`` float64 weighted R^2 of the surrogate on its samples (CPU), as LIME's
            ``score``.
    """

    sal: torch.Tensor
    segments: torch.Tensor
    coef: tuple[torch.Tensor, ...]
    intercept: torch.Tensor
    score: torch.Tensor


def lime_samples(n_samples: int, n_features: int, seed: int) -> np.ndarray:
    """LIME's binary samples ``(n_samples, n_features)`` int64, row 0 all ones (stock draw)."""
    rs = np.random.RandomState(seed)  # private generator: LIME's exact draw
    z = rs.randint(0, 2, n_samples * n_features).reshape((n_samples, n_features))
    z[0, :] = 1
    return z


def lime_weights(z: np.ndarray, kernel_width: float) -> np.ndarray:
    """Kernel weights ``sqrt(exp(-d^2 / kernel_width^2))``, d = cosine distance to row 0."""
    from sklearn.metrics import pairwise_distances

    d = pairwise_distances(z, z[0].reshape(1, -1), metric="cosine").ravel()
    return np.sqrt(np.exp(-(d**2) / kernel_width**2))


def masks(x: torch.Tensor, *, n_samples: int = 500, n_segments: int = 50,
          compactness: float = 30, sigma: float | None = None, seed: int = 0,
          **_params) -> Coalitions:
    """The mask set LIME uses on images ``x``: its SLIC segments and its stock coalition draw."""
    checks.positive_int("n_samples", n_samples, 2)
    checks.seed("seed", seed)
    segments = superpixels(x, n_segments, compactness, sigma)
    z = [lime_samples(n_samples, int(seg.max()) + 1, seed) for seg in segments]
    return Coalitions(segments, z)


def lime_explain(model, x: torch.Tensor, target, *, remover="gray", seed: int = 0,
                 batch_size: int = BATCH_SIZE, progress: bool = False, n_samples: int = 500,
                 n_segments: int = 50, compactness: float = 30, sigma: float | None = None,
                 kernel_width: float = 0.25, score: str = "prob") -> LimeResult:
    """LIME with its diagnostics: map, segments, coefficients, intercept, surrogate R^2.

    Args:
        model: pixel-space :class:`~kit.models.Classifier`.
        x: ``(N,3,H,W)`` float images in [0,1].
        target: int or ``(N,)`` long, the explained class.
        remover: a :mod:`kit.removers` name or object (``"gray"``: LIME; ``"inpaint"``: LIME-G).
        n_samples: perturbed samples per image, row 0 being the original (GAM: 500).
        n_segments, compactness, sigma: SLIC settings; ``sigma=None`` = ``kit.defaults``.
        kernel_width: width of LIME's exponential kernel on cosine distances.
        score: ``"prob"`` (default), ``"logit"`` or ``"logprob"``.
        seed: seed of the samples' ``RandomState`` (SLIC is deterministic).
        batch_size: samples per remover call and forward pass.
        progress: show a tqdm bar.

    Returns:
        :class:`LimeResult`.
    """
    from sklearn.linear_model import Ridge

    t = check_inputs(model, x, target)
    check_score(score)
    checks.positive_int("batch_size", batch_size)
    checks.number("kernel_width", kernel_width, minimum=0, strict=True)
    coalitions = masks(x, n_samples=n_samples, n_segments=n_segments, compactness=compactness,
                       sigma=sigma, seed=seed)
    rem = get_remover(remover, model=model, size=tuple(x.shape[-2:]))
    segments = coalitions.segments
    n, (H, W) = x.shape[0], x.shape[-2:]
    with model_guard(model):
        ys = score_masks(model, x.detach(), t, coalitions, rem, score=score,
                         batch_size=batch_size, progress=progress, desc="lime").cpu()
    sal = torch.empty(n, 1, H, W, dtype=torch.float32, device=x.device)
    coefs, intercepts, scores = [], [], []
    for i in range(n):
        z, y = coalitions.z[i].numpy(), ys[i].numpy()
        w = lime_weights(z, kernel_width)
        ridge = Ridge(alpha=1.0, fit_intercept=True)
        ridge.fit(z, y, sample_weight=w)
        coef = torch.from_numpy(np.asarray(ridge.coef_, dtype=np.float64).copy())
        coefs.append(coef)
        intercepts.append(float(ridge.intercept_))
        scores.append(float(ridge.score(z, y, sample_weight=w)))
        sal[i, 0] = coef.to(device=x.device)[segments[i]].float()
    return LimeResult(sal, segments, tuple(coefs), torch.tensor(intercepts, dtype=torch.float64),
                      torch.tensor(scores, dtype=torch.float64))


def lime(model, x: torch.Tensor, target, **kwargs) -> torch.Tensor:
    """LIME map: each pixel gets the Ridge coefficient of its superpixel (signed).

    Args: as :func:`lime_explain` (same keywords, same defaults).

    Returns:
        ``(N,1,H,W)`` float32 on ``x.device``, piecewise constant on the superpixels.
    """
    return lime_explain(model, x, target, **kwargs).sal


lime.__signature__ = inspect.signature(lime_explain).replace(return_annotation="torch.Tensor")
