"""Resolution-dependent defaults (methods.md §1.5): one table, 224×224 reference vs 64×64 world.

Hyperparameters that are grid-like scale with the image size (project choice); attributors take
``None`` for them and resolve through :func:`resolve`.
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
