"""GAD fusion: gradient artificial distancing as an attributor wrapper (arXiv 2401.14434).

Rodrigues, Boutry & Najman explain ``k`` support models, fine-tuned to logits whose class pair is
pushed apart (:mod:`kit.studies.gad` trains them), with the same gradient method and fuse the maps
(methods.md §3.8, project reading):

* each support model's map ``A_j`` (the attributor's own ``(N,1,h,w)`` map: the channel sum for
  IG and input×gradient, max|·| over channels for saliency, SmoothGrad and guided backprop, as kit
  defines them) is normalised, ``Â_j = A_j / max|A_j|`` (:func:`normalise`);
* ``T_j`` = its top-q pixels by signed value (:func:`top_q`, the one ranker
  :func:`kit.masks.pixel_rank` and counting rule :func:`kit.masks.top_count`: ties by pixel
  index). ``q`` is one fraction for every image or one per image: the study ties it to each
  image's object area (:func:`kit.studies.gad.resolve_q`), so the support has the object's size;
* the support is ``S = ∩_j T_j`` and the GAD map is ``mean_j Â_j`` on S, 0 elsewhere
  (:func:`fuse`, :func:`gad_explain`).

The no-GAD baseline (:func:`baseline_explain`, α = 0) explains the **original** model; its support
``S_0`` is its own top-q set. ``S`` is an intersection of k sets of the size of ``S_0``, so
``|S| <= |S_0|``. GAD is a wrapper around an attributor, not an attributor of its own, so it is not
in :data:`kit.attributors.ATTRIBUTORS` (style.md §5).

Usage::

    from kit.attributors.gad import baseline_explain, gad, gad_explain
    res = gad_explain("integrated_gradients", support.models, x, target)   # GadResult
    base = baseline_explain("integrated_gradients", clf, x, target)
    sal = gad("saliency", support.models)(clf, x, target)                  # (N,1,h,w)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from kit import checks
from kit.attributors import get_attributor
from kit.masks import pixel_rank, top_count, top_fraction

__all__ = ["GadResult", "top_q", "normalise", "fuse", "baseline_explain", "gad_explain", "gad"]


def _q(q, n: int | None = None) -> float | torch.Tensor:
    """``q`` as a float in (0, 1] or, per image, an ``(n,)`` float64 tensor of such fractions.

    An empty top set would leave nothing to fuse, so 0 is refused.
    """
    if isinstance(q, (torch.Tensor, np.ndarray, list, tuple)):
        qs = torch.as_tensor(np.asarray(q, dtype=np.float64)).reshape(-1)
        if qs.dim() != 1 or (n is not None and qs.numel() != n):
            raise ValueError(f"q must be a number in (0, 1] or one per image ({n} values), "
                             f"got {qs.numel()} values")
        if not bool(((qs > 0) & (qs <= 1)).all()):
            raise ValueError(f"q must hold numbers in (0, 1], got min {float(qs.min())!r}, "
                             f"max {float(qs.max())!r}")
        return qs
    q = checks.number("q", q, minimum=0.0, maximum=1.0)
    if q == 0:
        raise ValueError(f"q must be a number in (0, 1], got {q!r}")
    return q


def _attributor(attributor) -> tuple[str, Callable]:
    """A ``kit.attributors`` name or an attributor function -> (name, function)."""
    if isinstance(attributor, str):
        return attributor, get_attributor(attributor)
    if callable(attributor):
        return getattr(attributor, "__name__", "attributor"), attributor
    raise TypeError(f"attributor must be a name or a callable, got {type(attributor).__name__}")


def top_q(sal: torch.Tensor, q=0.2) -> torch.Tensor:
    """Per image, the top ``q`` of the pixels by signed value.

    ``kit.masks.top_count(q_i, h*w)`` pixels of image ``i`` (round half up, at least 1), ranked
    by :func:`kit.masks.pixel_rank`: ties are broken by pixel index (row-major, earlier first),
    so the set is deterministic.

    Args:
        sal: ``(N,1,h,w)`` maps.
        q: kept fraction in (0, 1], one for all images or ``(N,)`` (one per image).

    Returns:
        ``(N,1,h,w)`` bool.
    """
    checks.maps("sal", sal)
    q = _q(q, sal.shape[0])
    if not isinstance(q, torch.Tensor):
        return top_fraction(sal, q)
    rank = pixel_rank(sal)
    counts = torch.tensor([top_count(float(v), rank.shape[1]) for v in q], device=rank.device)
    return (rank < counts.view(-1, 1)).view(sal.shape)


def normalise(sal: torch.Tensor) -> torch.Tensor:
    """``Â = A / max|A|`` per image (an all-zero map stays zero).

    Args:
        sal: ``(N,1,h,w)`` maps.

    Returns:
        ``(N,1,h,w)`` maps in [−1, 1].
    """
    checks.maps("sal", sal)
    scale = sal.detach().abs().flatten(1).amax(1).view(-1, 1, 1, 1)
    return torch.where(scale > 0, sal / scale.clamp_min(torch.finfo(sal.dtype).tiny),
                       torch.zeros_like(sal))


def fuse(maps: Sequence[torch.Tensor], q=0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """GAD fusion of the support models' maps (methods.md §3.8).

    Args:
        maps: k maps ``(N,1,h,w)`` of the same images, one per support model.
        q: top-q fraction of each map, one for all images or ``(N,)``.

    Returns:
        ``(gad_map, support)``: ``mean_j Â_j`` on ``S = ∩_j top_q(A_j)`` and 0 elsewhere
        (float32 ``(N,1,h,w)`` in [−1, 1]), and S (bool ``(N,1,h,w)``).
    """
    if isinstance(maps, torch.Tensor) or not isinstance(maps, Sequence) or not maps:
        raise ValueError("maps must be a non-empty list of (N,1,h,w) tensors, "
                         f"got {type(maps).__name__}")
    shape = checks.maps("maps[0]", maps[0]).shape
    for j, m in enumerate(maps):
        if checks.maps(f"maps[{j}]", m).shape != shape:
            raise ValueError(f"maps[{j}] has shape {tuple(m.shape)}, maps[0] {tuple(shape)}")
    support = torch.stack([top_q(m, q) for m in maps]).all(0)
    mean = torch.stack([normalise(m.float()) for m in maps]).mean(0)
    return torch.where(support, mean, torch.zeros_like(mean)), support


@dataclass(frozen=True)
class GadResult:
    """Output of :func:`gad_explain` / :func:`baseline_explain`.

    Attributes:
        sal: ``(N,1,h,w)`` GAD map (baseline: the original model's map, unnormalised).
        support: ``(N,1,h,w)`` bool, S (baseline: S_0, its top-q pixels).
        maps: ``(k,N,1,h,w)`` the raw maps A_j (baseline: k = 1).
    """

    sal: torch.Tensor
    support: torch.Tensor
    maps: torch.Tensor


def baseline_explain(attributor, model, x: torch.Tensor, target, *, q=0.2,
                     seed: int = 0, **kwargs) -> GadResult:
    """The no-GAD baseline (α = 0): the attributor on the original model, S_0 = its top-q pixels.

    Args:
        attributor: a ``kit.attributors`` name or an attributor function (uniform signature).
        model: the original classifier; x: ``(N,3,H,W)`` images in [0,1]; target: int or ``(N,)``.
        q: top-q fraction, one for all images or ``(N,)``.
        seed: the attributor's seed (SmoothGrad's noise; unused by deterministic methods).
        **kwargs: the attributor's options (``steps``, ``n_samples``, ``batch_size``, ...).

    Returns:
        :class:`GadResult` with ``maps`` of shape ``(1,N,1,h,w)``.
    """
    _, fn = _attributor(attributor)
    q = _q(q, x.shape[0])
    sal = checks.maps("attributor output", fn(model, x, target, seed=seed, **kwargs))
    return GadResult(sal, top_q(sal, q), sal.unsqueeze(0))


def gad_explain(attributor, support_models, x: torch.Tensor, target, *, q=0.2,
                seed: int = 0, **kwargs) -> GadResult:
    """GAD map of ``x``: the attributor on every support model, fused (methods.md §3.8).

    Args:
        attributor: a ``kit.attributors`` name or an attributor function (uniform signature).
        support_models: a :class:`kit.studies.gad.SupportModels` (anything with ``.models``) or a
            non-empty sequence of models.
        x: ``(N,3,H,W)`` images in [0,1]; target: int or ``(N,)`` long (class a or b).
        q: top-q fraction of each support model's map, one for all images or ``(N,)``.
        seed: the attributor's seed, the same for every support model (the same noise).
        **kwargs: the attributor's options.

    Returns:
        :class:`GadResult` (``sal`` in [−1, 1], 0 outside the support; ``maps`` ``(k,N,1,h,w)``).
    """
    _, fn = _attributor(attributor)
    models = getattr(support_models, "models", support_models)
    if not isinstance(models, Sequence) or not models:
        raise ValueError("support_models must be a SupportModels or a non-empty list of models, "
                         f"got {type(support_models).__name__}")
    maps = [checks.maps("attributor output", fn(m, x, target, seed=seed, **kwargs))
            for m in models]
    sal, support = fuse(maps, q)
    return GadResult(sal, support, torch.stack(maps))


def gad(attributor, support_models, *, q=0.2) -> Callable:
    """GAD as an attributor wrapper (style.md §5): ``gad(a, sup)(model, x, target, **kw)``.

    The returned function has the attributor signature; its ``model`` argument is accepted for
    uniformity and ignored (the support models are explained).

    Returns:
        A function returning the ``(N,1,h,w)`` GAD map.
    """
    name, _ = _attributor(attributor)
    q = _q(q)

    def gad_attributor(model, x, target, **kwargs):
        return gad_explain(attributor, support_models, x, target, q=q, **kwargs).sal

    gad_attributor.__name__ = f"gad_{name}"
    return gad_attributor
