"""Attributors: one file per method, one uniform signature (style.md §5).

``f(model, x, target, *, remover=..., seed=0, batch_size=..., progress=False, **hp) -> (N,1,h,w)``

* ``model``: a pixel-space :class:`~kit.models.Classifier`; ``x``: ``(N,3,H,W)`` in [0,1];
  ``target``: int or ``(N,)`` long, always explicit.
* Perturbation methods take ``remover=`` (a :mod:`kit.removers` name or object), so the "-G"
  variants are the same function with the ``inpaint`` remover (the remover ladder X, X-G, X-R,
  X-O: :func:`ladder`).
* The map is float32 ``(N,1,h,w)`` at the method's native grid, higher = more evidence for the
  target, not normalised; resize only with :func:`kit.masks.upsample`.

``ATTRIBUTORS`` maps names to functions (function name = key); ``get_attributor(name)`` looks one
up with a clear error.
"""

from __future__ import annotations

from kit.attributors.methods import (
    METHODS,
    PROFILES,
    RUNG_OF,
    RUNGS,
    Method,
    budget,
    explain,
    ladder,
    pairs,
    rung,
    rung_pairs,
)
from kit.attributors.registry import (
    ATTRIBUTORS,
    GEOMETRIES,
    MASK_SETS,
    fido,
    get_attributor,
    grad_cam,
    guided_backprop,
    input_x_gradient,
    integrated_gradients,
    kernel_shap,
    lime,
    meaningful_perturbation,
    mp2,
    random_baseline,
    rise,
    saliency,
    sliding_patch,
    smoothgrad,
    smoothgrad_sq,
    sobel,
    vargrad,
)

__all__ = [
    "ATTRIBUTORS", "GEOMETRIES", "MASK_SETS", "get_attributor", "METHODS", "PROFILES", "Method",
    "budget", "explain", "pairs", "ladder", "rung", "rung_pairs", "RUNGS", "RUNG_OF",
    # the attributors themselves (function name = registry key; random is random_baseline)
    "saliency", "input_x_gradient", "integrated_gradients", "smoothgrad", "smoothgrad_sq",
    "vargrad", "guided_backprop", "grad_cam", "sliding_patch", "lime", "kernel_shap", "rise",
    "meaningful_perturbation", "mp2", "fido", "sobel", "random_baseline",
]
