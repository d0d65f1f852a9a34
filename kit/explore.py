"""The explorer's model: one image, one method, one remover -> map, counterfactuals, deletion curve.

Plain functions, usable and testable without widgets (the view is :mod:`kit.widgets`, the
drawing :mod:`kit.viz.explore`, the image input :mod:`kit.data`):

* :func:`method_hyperparameters` / :func:`remover_options` -- the hyperparameters a method's
  attributor / a remover takes among those the explorer exposes (:data:`METHOD_HYPERPARAMETERS`,
  :data:`REMOVER_OPTIONS`), with their defaults at the image size;
* :func:`remover_names` -- every registered remover a user can pick by name: every rung of the
  method ladder (``gray``, ``blur``, ``telea``, ``inpaint``, ``inpaint_removal``, ``oracle``) and
  the fill continuum ``blend`` (its ``lam``), those built from the true background only for
  images that have one (world images);
* :func:`compute` -- map, heatmap (the map at image resolution by its geometry,
  :mod:`kit.maps`), counterfactuals (:class:`kit.masks.TopFraction`) and deletion curve, as an
  :class:`Exploration`.

Usage::

    from kit import data, explore
    img = data.load_image(3)
    ex = explore.compute(clf, img.x, img.target, method="SP", remover="oracle",
                         background=img.background)
    ex.auc, ex.counterfactuals.shape          # float, (3,3,64,64)
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch

__all__ = [
    "METHOD_HYPERPARAMETERS",
    "REMOVER_OPTIONS",
    "Exploration",
    "compute",
    "method_hyperparameters",
    "remover_names",
    "remover_options",
]

METHOD_HYPERPARAMETERS: tuple[str, ...] = ("window", "stride", "n_samples", "n_masks",
                                           "iterations")
"""Attributor keywords the explorer exposes, when the chosen method's attributor accepts them."""

REMOVER_OPTIONS: dict[str, tuple[str, ...]] = {
    "blur": ("sigma",),
    "noise": ("std",),
    "blend": ("lam",),
}
"""Remover name -> its options the explorer exposes (other removers expose none)."""

# Attributor keywords whose default is None (resolved from the image size in kit.defaults).
_SIZE_DEFAULTS = {
    ("sliding_patch", "window"): "sp_window",
    ("sliding_patch", "stride"): "sp_stride",
}

# Removers a user cannot pick by name: wrappers that need an explicit fill or remover to wrap.
_NOT_PICKABLE = ("precomputed", "cached")


def remover_names(backgrounds: bool = True) -> list[str]:
    """Removers offered by the explorer: ``kit.removers.REMOVERS`` less precomputed/cached.

    Args:
        backgrounds: whether the explored image has a true background (a world image). Without
            one, the removers built from it (``oracle``, ``blend``: ``needs_backgrounds``) are
            left out.
    """
    from kit.removers import REMOVERS

    return [r for r, cls in REMOVERS.items()
            if r not in _NOT_PICKABLE and (backgrounds or not cls.needs_backgrounds)]


def _method(name: str):
    from kit.attributors import METHODS
    from kit.checks import choice

    return METHODS[choice("method", name, METHODS, "method")]


def method_hyperparameters(method: str, size: int = 64) -> dict[str, int]:
    """The exposed hyperparameters that ``method``'s attributor accepts, with their defaults.

    Which keywords an attributor takes, and their defaults, are read from its signature: a new
    attributor needs no entry here.

    Args:
        method: a :data:`kit.attributors.METHODS` name.
        size: image side, for defaults resolved from the image size (:mod:`kit.defaults`).

    Returns:
        Keyword -> default value, for the keywords of :data:`METHOD_HYPERPARAMETERS` the
        attributor takes (e.g. ``{"window": 8, "stride": 2}`` for ``"SP"`` at 64, ``{}`` for
        gradient methods). The method's own ``params`` in ``METHODS`` override the attributor's
        defaults.

    Raises:
        ValueError: unknown method.
    """
    from kit.attributors import get_attributor
    from kit.defaults import resolve

    m = _method(method)
    params = inspect.signature(get_attributor(m.attributor)).parameters
    out = {}
    for name in METHOD_HYPERPARAMETERS:
        if name not in params:
            continue
        value = m.params.get(name, params[name].default)
        if value is None:
            value = resolve(_SIZE_DEFAULTS[(m.attributor, name)], size)
        out[name] = value
    return out


def remover_options(remover: str, size: int = 64) -> dict[str, float]:
    """The exposed options of ``remover`` with their defaults at ``size`` (``{"sigma": 3.0}`` for
    blur at 64): the values the remover resolver builds it with.

    Raises:
        ValueError: unknown remover name (the message lists the valid ones).
    """
    from kit.checks import choice
    from kit.removers import REMOVERS, get_remover

    choice("remover", remover, remover_names(), "remover")
    names = REMOVER_OPTIONS.get(remover, ())
    if not names:
        return {}
    if REMOVERS[remover].needs_backgrounds:  # nothing to build it from: its fields' defaults
        fields = REMOVERS[remover].__dataclass_fields__
        return {k: float(fields[k].default) for k in names}
    built = get_remover(remover, size=size)
    return {k: float(getattr(built, k)) for k in names}


@dataclass(frozen=True)
class Exploration:
    """What the explorer shows for one (image, method, remover, hyperparameters).

    Attributes:
        method, remover: names; ``params`` / ``remover_params``: the values used.
        sal: ``(1,1,h,w)`` the attributor's map at its native grid.
        heatmap: ``(1,1,H,W)`` the map at image resolution, by the method's geometry
            (:func:`kit.maps.to_pixels`: coverage for sliding-patch grids, bilinear otherwise).
        fractions: ``(K,)`` fractions of the most relevant pixels removed in the counterfactuals.
        counterfactuals: ``(K,3,H,W)`` the image with those pixels removed by the remover.
        curve: the deletion :class:`~kit.metrics.deletion.Curve` (same remover).
    """

    method: str
    remover: str
    params: dict
    remover_params: dict
    sal: torch.Tensor = field(repr=False)
    heatmap: torch.Tensor = field(repr=False)
    fractions: tuple
    counterfactuals: torch.Tensor = field(repr=False)
    curve: object = field(repr=False)

    @property
    def auc(self) -> float:
        """Deletion AUC of the image (lower = the map finds what the score depends on)."""
        return float(self.curve.auc[0])


def _selection(method: str, remover: str, params, remover_params, size: int):
    """The method's hyperparameters and the remover's options, defaults filled in, checked."""
    hp = method_hyperparameters(method, size)
    unknown = sorted(set(params or {}) - set(hp))
    if unknown:
        raise ValueError(
            f"params {unknown} are not taken by method {method!r}; valid: {sorted(hp) or 'none'}"
        )
    hp.update(params or {})
    ropts = remover_options(remover, size)
    unknown = sorted(set(remover_params or {}) - set(ropts))
    if unknown:
        raise ValueError(
            f"remover_params {unknown} are not options of remover {remover!r}; "
            f"valid: {sorted(ropts) or 'none'}"
        )
    ropts.update(remover_params or {})
    if "window" in hp and "stride" in hp and hp["stride"] > hp["window"]:
        raise ValueError(
            f"stride must be <= window (no gaps between patches), got window={hp['window']}, "
            f"stride={hp['stride']}"
        )
    return hp, ropts


def compute(
    model,
    x: torch.Tensor,
    target: int,
    *,
    method: str = "SP",
    remover: str = "gray",
    params: dict | None = None,
    remover_params: dict | None = None,
    background: torch.Tensor | None = None,
    fractions=(0.1, 0.25, 0.5),
    steps: int = 28,
    seed: int = 0,
    progress: bool = False,
    on_stage=None,
) -> Exploration:
    """Map, heatmap, counterfactuals and deletion curve for one image: the explorer's model.

    The map is exactly ``kit.attributors.explain(method, model, x, target, remover=...,
    seed=seed, progress=progress, **params)``. For methods that remove nothing (gradients,
    random) the remover only drives the counterfactuals and the deletion curve. Counterfactual
    ``k`` removes the ``top_count(fractions[k], H*W)`` highest pixels of the heatmap
    (:class:`kit.masks.TopFraction`, the ranking deletion uses).

    Args:
        model: pixel-space classifier.
        x: ``(1,3,H,W)`` image in [0,1].
        target: explained class.
        method: a :data:`kit.attributors.METHODS` name.
        remover: a name of :func:`remover_names`.
        params: hyperparameters of :data:`METHOD_HYPERPARAMETERS` the method accepts (others
            are rejected); missing ones take :func:`method_hyperparameters`' defaults.
        remover_params: remover options (:data:`REMOVER_OPTIONS`); missing ones take defaults.
        background: ``(1,3,H,W)`` true background, needed by the ``oracle`` and ``blend``
            removers (handed to :func:`kit.removers.get_remover` as ``backgrounds``).
        fractions: fractions in [0,1] of most relevant pixels removed in the counterfactuals.
        steps: deletion steps.
        seed: seed of stochastic methods.
        progress: tqdm bars in the attributor and the deletion curve.
        on_stage: optional callable ``(stage: int, label: str)`` called before each of the three
            stages (0 map, 1 counterfactuals, 2 deletion) and with ``(3, "done")`` at the end.

    Returns:
        An :class:`Exploration`.

    Raises:
        ValueError: bad image, unknown method/remover, a hyperparameter the method does not
            take, ``stride > window``, or a fraction outside [0,1].
    """
    from kit.attributors import explain
    from kit.checks import fraction, images
    from kit.maps import method_geometry, to_pixels
    from kit.masks import TopFraction
    from kit.metrics.deletion import deletion_curve
    from kit.removers import get_remover

    images("x", x)
    if x.shape[0] != 1:
        raise ValueError(f"x must hold one image (1,3,H,W), got {tuple(x.shape)}")
    size = x.shape[-1]
    fractions = tuple(fraction("fractions", q, closed=True) for q in fractions)
    hp, ropts = _selection(method, remover, params, remover_params, size)
    m = _method(method)
    rem = get_remover(remover, model=model, size=size, backgrounds=background, **ropts)
    stage = on_stage or (lambda i, label: None)

    stage(0, f"map: {method}")
    kwargs = dict(hp, seed=seed, progress=progress)
    if m.remover is not None:
        kwargs["remover"] = rem
    sal = explain(method, model, x, target, **kwargs).detach()
    heat = to_pixels(sal, size, method_geometry(method, size, hp))

    stage(1, f"counterfactuals: {remover}")
    k = len(fractions)
    keep = TopFraction(heat, fractions).build(torch.arange(k), image=torch.zeros(k),
                                              device=heat.device, dtype=heat.dtype)
    with torch.inference_mode():
        cfs = rem(x, keep).clone()

    stage(2, "deletion curve")
    curve = deletion_curve(model, x, heat, target, remover=rem, mode="deletion", steps=steps,
                           progress=progress)
    stage(3, "done")
    return Exploration(method, remover, hp, ropts, sal, heat, fractions, cfs, curve)
