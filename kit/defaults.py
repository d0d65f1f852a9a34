"""Resolution-dependent defaults (methods.md §1.5): one table, 224×224 reference vs 64×64 world.

Hyperparameters that are grid-like scale with the image size (project choice); attributors take
``None`` for them and resolve through :func:`resolve`.

**Penalty scales** (docs/methods.md, "Penalties normalised for the image size"). The mask
optimisers' regularisers are sums over a grid whose size follows the image, so a weight tuned at
224×224 is weaker at 64×64. The kit keeps the published weights as the *reference* values and
applies them rescaled so that deleting a given **fraction** ``f`` of the image costs what it
costs in the reference configuration at 224×224:

* area (L1) term ``λ·Σ_cells v``: applied as ``λ · A_ref / A · Σ v = λ · A_ref · mean(v)``, with
  ``A`` the number of terms of the sum here and ``A_ref`` their number at the reference
  (:func:`area_scale`; MP ``A_ref = 28² = 784``, MP2 ``14² = 196``, FIDO ``224² = 50176`` pixels).
  A mask deleting fraction ``f`` (``v = 1`` on ``f·A`` cells) costs ``λ · A_ref · f`` at any size.
  At 64×64 with the default grids: MP ×12.25 (8×8 grid), MP2 ×3.06 (8×8), FIDO ×12.25 (64²).
* boundary (TV_β on the mask grid, MP) ``μ·Σ_edges |Δm|^β``: a sharp-edged deleted region of a
  fixed fraction of the image crosses a number of grid edges proportional to the grid side ``g``,
  so it is applied as ``μ · g_ref / g`` (:func:`boundary_scale`; MP ×3.5 at 8×8). FIDO's optional
  TV ``Σ (∇p)²`` runs over pixels of the upsampled probabilities, where a smooth region of fixed
  fraction has a size-independent cost, so it is not rescaled.
"""

from __future__ import annotations

DEFAULTS: dict[str, dict[int, float | int]] = {
    # name: {image side: value}
    "sp_window": {224: 29, 64: 8},
    "sp_stride": {224: 3, 64: 2},
    "lime_sigma": {224: 3.0, 64: 1.0},
    "mp_grid": {224: 28, 64: 8},
    "mp_jitter": {224: 4, 64: 1},
    "mp2_grid": {224: 14, 64: 8},
    "fido_grid": {224: 56, 64: 16},
    "hog_cell": {224: 16, 64: 8},
    "blur_sigma": {224: 10.0, 64: 3.0},
}


def resolve(name: str, size: int):
    """The default of ``name`` for square images of side ``size``.

    Exact table entries are returned as they are; other sizes scale the 224 reference
    proportionally (rounded for integers, at least 1).
    """
    if name not in DEFAULTS:
        raise ValueError(f"unknown default {name!r}; valid names: {', '.join(DEFAULTS)}")
    table = DEFAULTS[name]
    if size in table:
        return table[size]
    ref = table[224]
    value = ref * size / 224
    return max(1, round(value)) if isinstance(ref, int) else value


REFERENCE_SIDE = 224
"""Image side of the published settings the penalty scales refer to."""

_PIXELS = "pixels"


def reference_cells(name: str) -> int:
    """Number of terms of an area sum at the 224×224 reference.

    Args:
        name: a grid default of :data:`DEFAULTS` (``"mp_grid"``, ``"mp2_grid"``, ``"fido_grid"``:
            the sum runs over its ``g×g`` cells, ``g`` its value at 224) or ``"pixels"`` (the
            sum runs over the image's pixels: ``224²``).

    Raises:
        ValueError: unknown name (valid names listed).
    """
    if name == _PIXELS:
        return REFERENCE_SIDE * REFERENCE_SIDE
    if name not in DEFAULTS or not name.endswith("_grid"):
        valid = [k for k in DEFAULTS if k.endswith("_grid")] + [_PIXELS]
        raise ValueError(f"name: unknown penalty grid {name!r}; valid names: {', '.join(valid)}")
    g = int(DEFAULTS[name][REFERENCE_SIDE])
    return g * g


def area_scale(name: str, cells: int) -> float:
    """``A_ref / A``: the factor on an area (L1) weight summed over ``cells`` terms.

    With it, ``λ · area_scale(name, A) · Σ v`` equals ``λ · A_ref · mean(v)``: deleting a fraction
    ``f`` of the image costs ``λ · A_ref · f`` whatever the grid or image size, which is what the
    published weight ``λ`` costs at 224×224.

    Args:
        name: see :func:`reference_cells`.
        cells: number of terms of the sum here (``g*g`` for a grid, ``H*W`` for pixels).
    """
    if not isinstance(cells, int) or cells < 1:
        raise ValueError(f"cells: expected an integer >= 1, got {cells!r}")
    return reference_cells(name) / cells


def boundary_scale(name: str, side: int) -> float:
    """``g_ref / g``: the factor on a TV weight summed over the edges of a ``g×g`` mask grid.

    A sharp-edged region covering a fixed fraction of the image crosses ``∝ g`` grid edges, so
    ``μ · g_ref / g · TV`` gives it the cost it has on the reference grid ``g_ref`` (28 for MP).

    Args:
        name: a grid default of :data:`DEFAULTS` (``"mp_grid"``, ...).
        side: the grid side ``g`` here.
    """
    if not isinstance(side, int) or side < 1:
        raise ValueError(f"side: expected an integer >= 1, got {side!r}")
    if name not in DEFAULTS or not name.endswith("_grid"):
        valid = [k for k in DEFAULTS if k.endswith("_grid")]
        raise ValueError(f"name: unknown penalty grid {name!r}; valid names: {', '.join(valid)}")
    return int(DEFAULTS[name][REFERENCE_SIDE]) / side
