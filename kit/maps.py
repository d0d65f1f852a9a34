"""Maps that carry their geometry, and the one way to take a map to pixels.

An attributor returns its map at its native grid (style.md §3): SP an ``n x n`` grid of patch
positions, MP2 an 8x8 mask, LIME and the gradients a full-resolution map. *How* such a map reaches
image pixels is part of the method: a sliding-patch grid is spread over the pixels each patch
covered (``coverage``), every other map is resized bilinearly. That rule is declared once per
attributor (:data:`kit.attributors.GEOMETRIES`) and looked up here, so the same map gives the same
pixels in every metric, plot, study and widget.

* :func:`geometry` — the upsampling spec of an attributor at an image size and hyperparameters,
  e.g. ``{"mode": "coverage", "window": 8, "stride": 4}`` or ``{"mode": "bilinear"}``;
* :func:`method_geometry` — the same for a :data:`kit.attributors.METHODS` name;
* :class:`Maps` — ``{method: (N,1,h,w) map}`` with ``.geometry[method]`` beside each map (what
  :func:`kit.mapcache.compute_maps` returns);
* :func:`to_pixels` — ``(N,1,H,W)`` through :func:`kit.masks.upsample` with a map's geometry.

Usage::

    maps = compute_maps(["SP", "LIME"], clf, x, y, overrides=budget("full", ["SP", "LIME"]))
    pix = maps.pixels("SP", 64)                        # coverage, window/stride of the run
    pix = to_pixels(sal, 64, geometry("sliding_patch", 64, stride=4))
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from kit.checks import size2
from kit.masks import upsample

__all__ = ["BILINEAR", "geometry", "method_geometry", "to_pixels", "Maps"]

BILINEAR = {"mode": "bilinear"}
"""The default geometry: the map is a field over the image, resized bilinearly."""


def geometry(attributor: str, size, **params) -> dict:
    """The upsampling spec of ``attributor``'s maps for images of ``size``.

    Args:
        attributor: a key of :data:`kit.attributors.ATTRIBUTORS`.
        size: image ``H`` or ``(H, W)``.
        **params: the hyperparameters the map was computed with (unknown ones are ignored).

    Returns:
        keyword arguments of :func:`kit.masks.upsample` (``mode`` and, for coverage, ``window``
        and ``stride``).
    """
    from kit.attributors import ATTRIBUTORS, GEOMETRIES

    if attributor not in ATTRIBUTORS:
        raise ValueError(f"attributor: unknown attributor {attributor!r}; valid names: "
                         f"{', '.join(ATTRIBUTORS)}")
    rule = GEOMETRIES.get(attributor)
    return dict(rule(size2("size", size), **params)) if rule is not None else dict(BILINEAR)


def method_geometry(method: str, size, overrides: Mapping | None = None) -> dict:
    """:func:`geometry` of a :data:`kit.attributors.METHODS` entry with ``overrides`` applied."""
    from kit.attributors import METHODS

    if method not in METHODS:
        raise ValueError(f"method: unknown method {method!r}; valid names: {', '.join(METHODS)}")
    m = METHODS[method]
    return geometry(m.attributor, size, **{**m.params, **dict(overrides or {})})


def to_pixels(sal: torch.Tensor, size, geometry: Mapping | None = None) -> torch.Tensor:
    """Maps ``(N,1,h,w)`` at image resolution ``(N,1,H,W)``, by their geometry.

    Args:
        sal: maps at their native grid.
        size: ``H`` or ``(H, W)``.
        geometry: an upsampling spec (:func:`geometry`); None = bilinear. A map already at
            ``size`` with a bilinear geometry is returned unchanged (as a float tensor).
    """
    spec = dict(BILINEAR if geometry is None else geometry)
    H, W = size2("size", size)
    if spec.get("mode", "bilinear") == "bilinear" and tuple(sal.shape[-2:]) == (H, W):
        return sal.float() if sal.is_floating_point() else sal
    mode = spec.pop("mode", "bilinear")
    return upsample(sal, (H, W), mode, **spec)


class Maps(dict):
    """``{method: (N,1,h,w) map}`` that remembers each map's geometry.

    Attributes:
        geometry: ``{method: upsampling spec}`` (:func:`geometry`); methods absent from it are
            bilinear.
    """

    def __init__(self, maps: Mapping | None = None, geometry: Mapping | None = None):
        super().__init__(maps or {})
        self.geometry = {k: dict(v) for k, v in dict(geometry or {}).items()}

    def spec(self, name: str) -> dict:
        """The geometry of map ``name`` (bilinear when none was recorded)."""
        if name not in self:
            raise KeyError(f"no map named {name!r}; maps: {', '.join(self)}")
        return dict(self.geometry.get(name, BILINEAR))

    def pixels(self, name: str, size) -> torch.Tensor:
        """Map ``name`` at image resolution, by its geometry."""
        return to_pixels(self[name], size, self.spec(name))

    def head(self, n: int) -> Maps:
        """The maps of the first ``n`` images, geometry included (for figures)."""
        return Maps({k: v[:n] for k, v in self.items()}, self.geometry)

    def subset(self, names) -> Maps:
        """The maps ``names`` (in that order), geometry included."""
        names = list(names)
        return Maps({n: self[n] for n in names}, {n: self.spec(n) for n in names})


def geometry_of(maps: Mapping, name: str) -> dict:
    """The geometry of ``maps[name]``: from a :class:`Maps`, else bilinear."""
    return maps.spec(name) if isinstance(maps, Maps) else dict(BILINEAR)
