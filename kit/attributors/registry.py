"""The attributor registries: name -> function, map geometry and mask sets (explicit dicts).

Kept apart from :mod:`kit.attributors.methods` (the named configurations, which look attributors
up here) so that the package imports without a cycle.
"""

from __future__ import annotations

from kit.attributors.fido import fido
from kit.attributors.grad_cam import grad_cam
from kit.attributors.gradients import (
    guided_backprop,
    input_x_gradient,
    integrated_gradients,
    saliency,
    smoothgrad,
    smoothgrad_sq,
    vargrad,
)
from kit.attributors.kernel_shap import kernel_shap
from kit.attributors.lime import lime
from kit.attributors.meaningful_perturbation import geometry as _mp_geometry
from kit.attributors.meaningful_perturbation import meaningful_perturbation, mp2
from kit.attributors.random_map import random_baseline
from kit.attributors.rise import rise
from kit.attributors.sliding_patch import geometry as _sp_geometry
from kit.attributors.sliding_patch import sliding_patch
from kit.attributors.sobel import sobel

ATTRIBUTORS: dict = {
    "saliency": saliency,
    "input_x_gradient": input_x_gradient,
    "integrated_gradients": integrated_gradients,
    "smoothgrad": smoothgrad,
    "smoothgrad_sq": smoothgrad_sq,
    "vargrad": vargrad,
    "guided_backprop": guided_backprop,
    "grad_cam": grad_cam,
    "sliding_patch": sliding_patch,
    "lime": lime,
    "kernel_shap": kernel_shap,
    "rise": rise,
    "meaningful_perturbation": meaningful_perturbation,
    "mp2": mp2,
    "fido": fido,
    "sobel": sobel,
    "random": random_baseline,  # named random_baseline in code: no shadowing of the random module
}
"""Name -> attributor function (filled by the explicit imports above)."""


GEOMETRIES: dict = {
    "sliding_patch": _sp_geometry,
    "meaningful_perturbation": _mp_geometry,
}
"""Attributor -> ``geometry(size, **params) -> upsample spec``: how the attributor's own maps reach
pixels, when that is not bilinear resizing (:mod:`kit.maps`): SP's patch grid by coverage, MP's
mask grid by nearest (the upsampling MP composites with). Others are resized bilinearly, as MP2,
FIDO and Grad-CAM upsample their own grids."""


# the attributor modules' own mask generators
from kit.attributors.kernel_shap import masks as _kernel_shap_masks  # noqa: E402
from kit.attributors.lime import masks as _lime_masks  # noqa: E402
from kit.attributors.rise import masks as _rise_masks  # noqa: E402
from kit.attributors.sliding_patch import masks as _sp_masks  # noqa: E402

MASK_SETS: dict = {
    "sliding_patch": _sp_masks,
    "lime": _lime_masks,
    "rise": _rise_masks,
    "kernel_shap": lambda x, **params: _kernel_shap_masks(x, **params)[0],  # without its weights
}
"""Attributor -> ``masks(x, **params) -> mask set``: the masks the perturbation method itself
composites on images ``x`` with its hyperparameters (:mod:`kit.engine`'s protocol: ``len``,
``build``, and ``composites`` for SP's local crops); other parameters of the method are ignored.
:func:`kit.metrics.plausibility.method_masks` scores these counterfactuals."""


def get_attributor(name: str):
    """The attributor registered as ``name``; unknown names list the valid ones."""
    if name not in ATTRIBUTORS:
        raise ValueError(f"unknown attributor {name!r}; valid names: {', '.join(ATTRIBUTORS)}")
    return ATTRIBUTORS[name]

