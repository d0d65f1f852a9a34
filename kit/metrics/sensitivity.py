"""SAM sensitivity: how much a method's map changes under its own hyperparameters (methods.md §4.5).

Bansal, Agarwal & Nguyen, "SAM: The Sensitivity of Attribution Methods to Hyperparameters"
(CVPR 2020) compare the maps one method gives for the same image when one hyperparameter changes,
with three similarities (all higher = more similar = more robust, :data:`HIGHER_IS_BETTER`):

* :func:`ssim` — ``skimage.metrics.structural_similarity(win_size=5, gaussian_weights=False,
  use_sample_covariance=True)`` with ``data_range`` 2 for signed maps and 1 for non-negative ones;
* :func:`hog_pearson` — Pearson correlation (``scipy.stats.pearsonr``) of the maps' HOG features
  (``skimage.feature.hog``: 9 orientations, 3×3-cell blocks, L2-Hys, no sqrt; cell side
  ``kit.defaults`` ``hog_cell``: 16 at 224, 8 at 64);
* :func:`spearman` — Spearman rank correlation (``scipy.stats.spearmanr``) of the flattened maps.

**Before comparing**, maps go from their native grid to the image size with :func:`to_pixels`
(:func:`kit.masks.upsample`: ``coverage`` for sliding-patch grids, ``bilinear`` otherwise) and are
pre-normalised as SAM does (:func:`prenormalise`): divided by their max ``|H|`` except the SP and MP
families, which are compared as they are (:data:`SCALING`). The similarity functions themselves take
two batches of equal shape ``(N,1,H,W)``.

**Sweeps** (:data:`SWEEPS`, the project's shared sweeps for X vs X-G): one hyperparameter at a time,
the others at the run's base configuration; every variant's map is compared with the default map
(SAM's ``*_Comp_With_Default_Settings`` scripts; ``against="all"`` compares all pairs, SAM's
``Basic`` scripts). An image's value is the mean over its variants. The **random floor**
(:func:`random_variants`) replaces every map by i.i.d. U[0,1) values at the same native grid and
processes them identically, so it is what the three similarities give for unrelated maps.

**Undefined values.** Spearman and HOG-Pearson correlations are undefined (NaN) when one map is
constant (no ranks, or an all-zero HOG vector); SSIM is always defined (two identical constant
maps give 1). NaN images are dropped at dataset level (:func:`kit.report.summarize`, as SAM does).

Usage::

    from kit.metrics import sensitivity as sens
    per_image = sens.run_sweep("SP-G", clf, batch.images, batch.labels)     # image, method, ...
    summary = kit.report.summarize(per_image, sens.HIGHER_IS_BETTER, by=("method", "param"))
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch

__all__ = [
    "HIGHER_IS_BETTER",
    "METRICS",
    "SCALING",
    "SWEEPS",
    "Sweep",
    "Variant",
    "applicable",
    "compare",
    "hog_pearson",
    "per_image",
    "plot_bars",
    "plot_sweep",
    "pool_params",
    "prenormalise",
    "random_variants",
    "run_sweep",
    "sam_aggregate",
    "scaling",
    "similarity",
    "spearman",
    "ssim",
    "sweep_maps",
    "to_pixels",
    "variant_table",
]

HIGHER_IS_BETTER = {"ssim": True, "hog_pearson": True, "spearman": True}
"""All three similarities: higher = the map changed less = more robust."""

METRICS = tuple(HIGHER_IS_BETTER)


@dataclass(frozen=True)
class Sweep:
    """Values of one swept hyperparameter.

    Attributes:
        values: the values compared at 64×64 (the default among them).
        default: the default value at 64×64 (the map every variant is compared with).
        reference: the 224×224 values, for the record.
    """

    values: tuple
    default: object
    reference: str = ""


_SEEDS = Sweep((0, 1, 2, 3, 4), 0, "seed {0, 1, 2, 3, 4} (default 0), as at 64")
_WINDOW = Sweep((5, 8, 11), 8, "window {17, 29, 41} (default 29), stride 3")
_LIME = {"seed": _SEEDS,
         "n_samples": Sweep((500, 1000), 500, "samples {500, 1000} (default 500; SAM's is 1000)")}

SWEEPS: dict[str, dict[str, Sweep]] = {
    # Project choice (methods.md §4.5, "shared sweeps"): the same sweeps for X and X-G.
    "SP": {"window": _WINDOW},
    "SP-G": {"window": _WINDOW},
    "LIME": _LIME,
    "LIME-G": _LIME,
    "MP": {"seed": _SEEDS},
    "MP-G": {"seed": _SEEDS},
    "MP2": {"seed": _SEEDS},
    "MP2-G": {"seed": _SEEDS},
    "FIDO-CA-SDR": {"seed": _SEEDS},
    "FIDO-CA-SSR": {"seed": _SEEDS},
    "RISE": {"seed": _SEEDS},
    "SmoothGrad": {
        "seed": _SEEDS,
        "spread": Sweep((0.1, 0.15, 0.2), 0.15, "spread {0.1, 0.15, 0.2} (default 0.15)"),
    },
}
"""Method name -> hyperparameter -> :class:`Sweep` (64×64 values; 224 values in ``reference``)."""

# attributor -> (divide by max|H|, data_range of SSIM). SAM rescales signed maps to [-1, 1] and
# leaves SP (probability drops, already in [-1, 1]) and MP (1 - mask, in [0, 1]) as they are; the
# SSIM data range is the width of the value range after that step.
_SCALING_BY_ATTRIBUTOR: dict[str, tuple[bool, float]] = {
    "sliding_patch": (False, 2.0),
    "meaningful_perturbation": (False, 1.0),
    "mp2": (False, 1.0),
    "lime": (True, 2.0),
    "fido": (True, 2.0),
    "input_x_gradient": (True, 2.0),
    "integrated_gradients": (True, 2.0),
    "rise": (True, 1.0),             # >= 0
    "saliency": (True, 1.0),         # max_c |g| >= 0
    "smoothgrad": (True, 1.0),       # max_c |.| of the mean gradient >= 0
    "smoothgrad_sq": (True, 1.0),
    "vargrad": (True, 1.0),
    "guided_backprop": (True, 1.0),
    "grad_cam": (True, 1.0),
    "random": (True, 1.0),
}


def scaling(name: str) -> tuple[bool, float]:
    """``(rescale, data_range)`` of method ``name`` (a :data:`kit.attributors.METHODS` key).

    Raises:
        ValueError: unknown method, or an attributor without a declared scaling.
    """
    from kit.attributors import METHODS

    if name not in METHODS:
        raise ValueError(f"name: unknown method {name!r}; valid names: {', '.join(METHODS)}")
    attributor = METHODS[name].attributor
    if attributor not in _SCALING_BY_ATTRIBUTOR:
        raise ValueError(f"name: no SAM scaling declared for attributor {attributor!r} of {name!r}")
    return _SCALING_BY_ATTRIBUTOR[attributor]


def _methods_scaling() -> dict[str, tuple[bool, float]]:
    from kit.attributors import METHODS

    return {n: _SCALING_BY_ATTRIBUTOR[m.attributor] for n, m in METHODS.items()
            if m.attributor in _SCALING_BY_ATTRIBUTOR}


SCALING: dict[str, tuple[bool, float]] = _methods_scaling()
"""Method name -> ``(rescale by max|H|, SSIM data_range)`` (methods.md §4.5 pre-normalisation)."""


# --------------------------------------------------------------------------- checks and helpers


def _check_maps(name: str, sal) -> torch.Tensor:
    if not isinstance(sal, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of shape (N,1,H,W), got "
                        f"{type(sal).__name__}")
    if sal.dim() != 4 or sal.shape[1] != 1:
        raise ValueError(f"{name}: expected shape (N,1,H,W), got {tuple(sal.shape)}")
    if not sal.is_floating_point():
        raise TypeError(f"{name}: expected a float tensor, got dtype {sal.dtype}")
    return sal


def _check_pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = _check_maps("a", a), _check_maps("b", b)
    if a.shape != b.shape:
        raise ValueError(
            f"a and b must have the same shape (bring native maps to the image size with "
            f"kit.masks.upsample / sensitivity.to_pixels first), got {tuple(a.shape)} and "
            f"{tuple(b.shape)}")
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError("a and b must be finite")
    return (a.detach().to("cpu", torch.float64)[:, 0].numpy(),
            b.detach().to("cpu", torch.float64)[:, 0].numpy())


def _constant(h: np.ndarray) -> bool:
    return bool(np.all(h == h.flat[0]))


# --------------------------------------------------------------------------- pre-processing


def to_pixels(sal: torch.Tensor, size, *, mode: str = "bilinear", window: int | None = None,
              stride: int | None = None) -> torch.Tensor:
    """Native-grid maps ``(N,1,h,w)`` -> ``(N,1,H,W)`` through :func:`kit.masks.upsample`.

    Maps already at ``size`` are returned unchanged (as float32).

    Args:
        sal: ``(N,1,h,w)`` maps.
        size: ``H`` (square) or ``(H, W)``.
        mode, window, stride: as :func:`kit.masks.upsample` (``"coverage"`` with the patch
            geometry for sliding-patch grids).
    """
    from kit.masks import upsample

    sal = _check_maps("sal", sal).float()
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(sal.shape[-2:]) == hw:
        return sal
    kw = {"window": window, "stride": stride} if mode == "coverage" else {}
    return upsample(sal, hw, mode=mode, **kw)


def prenormalise(sal: torch.Tensor, *, rescale: bool) -> torch.Tensor:
    """SAM's pre-normalisation: each map divided by its max ``|H|`` when ``rescale``.

    An all-zero map stays zero (there is nothing to rescale).

    Args:
        sal: ``(N,1,H,W)`` maps.
        rescale: divide by the per-map max ``|H|`` (signed maps -> [-1, 1]).
    """
    sal = _check_maps("sal", sal)
    if not isinstance(rescale, bool):
        raise TypeError(f"rescale: expected a bool, got {rescale!r}")
    if not rescale:
        return sal
    peak = sal.abs().amax(dim=(1, 2, 3), keepdim=True)
    return torch.where(peak > 0, sal / torch.where(peak > 0, peak, 1), sal)


# --------------------------------------------------------------------------- the three similarities


def ssim(a: torch.Tensor, b: torch.Tensor, *, data_range: float) -> np.ndarray:
    """Per-image SSIM (window 5, uniform weights, sample covariance) of two map batches.

    Args:
        a, b: ``(N,1,H,W)`` maps of equal shape, already at the image size and pre-normalised.
        data_range: 2 for maps in [-1, 1], 1 for maps in [0, 1] (SAM; MP uses 1).

    Returns:
        ``(N,)`` float64 in [-1, 1]; identical maps give 1 (also when constant).

    Raises:
        ValueError: shapes differ, maps smaller than 5×5, non-finite values, bad ``data_range``.
    """
    from skimage.metrics import structural_similarity

    a, b = _check_pair(a, b)
    if isinstance(data_range, bool) or not isinstance(data_range, (int, float)) \
            or not data_range > 0:
        raise ValueError(f"data_range: expected a positive number (2 or 1), got {data_range!r}")
    if min(a.shape[-2:]) < 5:
        raise ValueError(f"a, b: SSIM with win_size=5 needs maps of at least 5x5, got "
                         f"{a.shape[-2:]}")
    return np.array([
        structural_similarity(h1, h2, win_size=5, data_range=float(data_range),
                              gaussian_weights=False, use_sample_covariance=True)
        for h1, h2 in zip(a, b, strict=True)], dtype=np.float64)


def _hog(h: np.ndarray, cell: int) -> np.ndarray:
    from skimage.feature import hog

    # skimage-0.15 defaults as SAM used them: 9 orientations, 3x3 cells per block, L2-Hys,
    # no power-law compression, flattened.
    return hog(h, orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(3, 3),
               block_norm="L2-Hys", transform_sqrt=False, feature_vector=True, channel_axis=None)


def hog_pearson(a: torch.Tensor, b: torch.Tensor, *, cell: int | None = None) -> np.ndarray:
    """Per-image Pearson correlation of the two maps' HOG features.

    Args:
        a, b: ``(N,1,H,W)`` maps of equal shape, at the image size and pre-normalised.
        cell: HOG cell side in pixels; None = ``kit.defaults`` ``hog_cell`` for the map size
            (8 at 64, 16 at 224). The map must hold at least 3×3 cells (one block).

    Returns:
        ``(N,)`` float64 in [-1, 1]; NaN where a HOG vector is constant (e.g. a constant map,
        whose gradients and so features are all zero).
    """
    from scipy.stats import pearsonr

    from kit.defaults import resolve

    a, b = _check_pair(a, b)
    h, w = a.shape[-2:]
    cell = resolve("hog_cell", min(h, w)) if cell is None else cell
    if isinstance(cell, bool) or not isinstance(cell, int) or cell < 1:
        raise ValueError(f"cell: expected a positive int, got {cell!r}")
    if min(h, w) < 3 * cell:
        raise ValueError(f"cell: maps of {h}x{w} hold fewer than 3x3 cells of {cell} px "
                         f"(one HOG block)")
    out = np.full(len(a), np.nan)
    for i, (h1, h2) in enumerate(zip(a, b, strict=True)):
        f1, f2 = _hog(h1, cell), _hog(h2, cell)
        if not (_constant(f1) or _constant(f2)):  # pearsonr warns and returns NaN otherwise
            out[i] = pearsonr(f1, f2).statistic
    return out


def spearman(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Per-image Spearman rank correlation of the flattened maps (ties get average ranks).

    Args:
        a, b: ``(N,1,H,W)`` maps of equal shape (any common grid).

    Returns:
        ``(N,)`` float64 in [-1, 1]; NaN where one map is constant (no ranking).
    """
    from scipy.stats import spearmanr

    a, b = _check_pair(a, b)
    out = np.full(len(a), np.nan)
    for i, (h1, h2) in enumerate(zip(a, b, strict=True)):
        if not (_constant(h1) or _constant(h2)):  # spearmanr warns and returns NaN otherwise
            out[i] = spearmanr(h1, h2, axis=None).statistic
    return out


def similarity(a: torch.Tensor, b: torch.Tensor, *, data_range: float,
               cell: int | None = None) -> dict[str, np.ndarray]:
    """All three similarities, ``{metric: (N,)}`` in the order of :data:`METRICS`."""
    return {"ssim": ssim(a, b, data_range=data_range),
            "hog_pearson": hog_pearson(a, b, cell=cell),
            "spearman": spearman(a, b)}


# --------------------------------------------------------------------------- sweeps


@dataclass(frozen=True)
class Variant:
    """The maps of one configuration in a sweep.

    Attributes:
        param: the swept hyperparameter, None for the default configuration.
        value: its value (the default configuration: None).
        sal: ``(N,1,h,w)`` native-grid maps on the CPU.
        upsample: keyword arguments of :func:`to_pixels` (``mode``, and ``window``/``stride``
            for sliding-patch grids).
        config: the overrides and seed the maps were computed with (for the record).
    """

    param: str | None
    value: object
    sal: torch.Tensor
    upsample: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return "default" if self.param is None else f"{self.param}={self.value}"


def _attributor_params(name: str) -> dict[str, inspect.Parameter]:
    from kit.attributors import METHODS, get_attributor

    return dict(inspect.signature(get_attributor(METHODS[name].attributor)).parameters)


def _effective(name: str, param: str, base: Mapping, seed: int, side: int):
    """The value ``param`` has in the default configuration of method ``name``."""
    from kit.attributors import METHODS
    from kit.defaults import resolve

    if param == "seed":
        return seed
    if param in base:
        return base[param]
    if param in METHODS[name].params:
        return METHODS[name].params[param]
    default = _attributor_params(name)[param].default
    if default is None and param in ("window", "stride"):  # resolved from the image size
        return resolve(f"sp_{param}", side)
    return default


def _upsample_kw(name: str, config: Mapping, side: int) -> dict:
    from kit.attributors import METHODS
    from kit.defaults import resolve

    if METHODS[name].attributor == "sliding_patch":
        return {"mode": "coverage",
                "window": config.get("window") or resolve("sp_window", side),
                "stride": config.get("stride") or resolve("sp_stride", side)}
    return {"mode": "bilinear"}


def _check_sweep(name: str, sweep) -> dict[str, tuple]:
    from kit.attributors import METHODS

    if name not in METHODS:
        raise ValueError(f"name: unknown method {name!r}; valid names: {', '.join(METHODS)}")
    if sweep is None:
        if name not in SWEEPS:
            raise ValueError(f"name: no default sweep for {name!r} (pass sweep=); methods with "
                             f"one: {', '.join(SWEEPS)}")
        return {p: tuple(s.values) for p, s in SWEEPS[name].items()}
    if not isinstance(sweep, Mapping) or not sweep:
        raise ValueError(f"sweep: expected a non-empty mapping {{param: values}}, got {sweep!r}")
    accepted = _attributor_params(name)
    out = {}
    for param, values in sweep.items():
        if param not in accepted or accepted[param].kind is not inspect.Parameter.KEYWORD_ONLY \
                or param in ("remover", "progress", "batch_size"):
            valid = [p for p, v in accepted.items() if v.kind is inspect.Parameter.KEYWORD_ONLY
                     and p not in ("remover", "progress", "batch_size")]
            raise ValueError(f"sweep: {name!r} has no hyperparameter {param!r}; valid: "
                             f"{', '.join(valid)}")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ValueError(f"sweep[{param!r}]: expected a non-empty list of values, got "
                             f"{values!r}")
        out[param] = tuple(values)
    return out


def applicable(name: str, sweep: Mapping[str, Sequence] | None = None) -> dict[str, list]:
    """The entries of ``sweep`` that method ``name`` sweeps (its :data:`SWEEPS` hyperparameters).

    Lets a notebook hold one ``{hyperparameter: values}`` mapping for all methods.

    Args:
        name: a key of :data:`SWEEPS`.
        sweep: ``{hyperparameter: values}``; None = the method's :data:`SWEEPS` values.

    Raises:
        ValueError: ``name`` has no sweep (the message lists the valid names), or ``sweep``
            holds none of its hyperparameters.
    """
    if name not in SWEEPS:
        raise ValueError(f"methods: no SAM sweep for {name!r}; valid names: {', '.join(SWEEPS)}")
    if sweep is None:
        return {p: list(s.values) for p, s in SWEEPS[name].items()}
    if not isinstance(sweep, Mapping):
        raise TypeError(f"sweep: expected a mapping {{hyperparameter: values}}, got "
                        f"{type(sweep).__name__}")
    out = {p: list(v) for p, v in sweep.items() if p in SWEEPS[name]}
    if not out:
        raise ValueError(f"sweep: none of {name!r}'s hyperparameters {list(SWEEPS[name])} in "
                         f"{list(sweep)}")
    return out


def sweep_maps(
    name: str,
    model,
    x: torch.Tensor,
    target,
    *,
    sweep: Mapping[str, Sequence] | None = None,
    base: Mapping | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    cache: bool = True,
    progress: bool = False,
) -> list[Variant]:
    """The maps of method ``name`` at its default configuration and at every sweep value.

    Maps come from :func:`kit.mapcache.compute_maps` (batched over images, cached on disk), so the
    default maps are the ones notebooks 02/03 computed with the same ``base`` and ``seed``.

    Args:
        name: a :data:`kit.attributors.METHODS` key.
        model: the classifier.
        x: ``(N,3,H,W)`` images in [0,1].
        target: int or ``(N,)`` classes explained.
        sweep: ``{hyperparameter: values}``; None = :data:`SWEEPS` ``[name]``. ``"seed"`` sweeps
            the attributor's seed. Values equal to the default configuration's are skipped (that
            map is the default).
        base: overrides of the default configuration (e.g. a :data:`kit.attributors.PROFILES`
            entry); swept values replace one entry at a time.
        seed: the default configuration's seed.
        batch_size, cache, progress: as :func:`kit.mapcache.compute_maps`.

    Returns:
        ``[default, variant, ...]``: the default :class:`Variant` (``param`` None) first, then one
        per (hyperparameter, value) in the order given.

    Raises:
        ValueError: unknown method or hyperparameter, empty sweep, non-integer seed.
    """
    from kit.mapcache import compute_maps
    from kit.models import _check_images

    values = _check_sweep(name, sweep)
    _check_images("x", x)
    if base is not None and not isinstance(base, Mapping):
        raise TypeError(f"base: expected a mapping of overrides or None, got {type(base).__name__}")
    base = dict(base or {})
    if "seed" in base:
        raise ValueError("base: pass the seed as seed=, not inside base")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed: expected an int, got {seed!r}")
    side = int(min(x.shape[-2:]))

    def maps(config: dict, s: int) -> torch.Tensor:
        return compute_maps([name], model, x, target, overrides={name: config}, seed=s,
                            batch_size=batch_size, cache=cache, progress=progress)[name]

    out = [Variant(None, None, maps(base, seed), _upsample_kw(name, base, side),
                   {**base, "seed": seed})]
    for param, vals in values.items():
        default = _effective(name, param, base, seed, side)
        for v in vals:
            if v == default:
                continue
            if param == "seed":
                if isinstance(v, bool) or not isinstance(v, int):
                    raise ValueError(f"sweep['seed']: expected ints, got {v!r}")
                config, s = base, v
            else:
                config, s = {**base, param: v}, seed
            out.append(Variant(param, v, maps(config, s), _upsample_kw(name, config, side),
                               {**config, "seed": s}))
    return out


def random_variants(variants: Sequence[Variant], *, seed: int = 0) -> list[Variant]:
    """The random floor of a sweep: every map replaced by i.i.d. U[0,1) values.

    Same native grids and upsampling as ``variants`` (so processed identically by
    :func:`variant_table`); variant ``k`` draws from ``torch.Generator().manual_seed(seed + k)``,
    so two variants are independent and the result is deterministic under ``seed``.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed: expected an int, got {seed!r}")
    out = []
    for k, v in enumerate(variants):
        g = torch.Generator().manual_seed(seed + k)
        out.append(replace(v, sal=torch.rand(v.sal.shape, generator=g)))
    return out


def _pixels(v: Variant, side_hw, rescale: bool) -> torch.Tensor:
    return prenormalise(to_pixels(v.sal, side_hw, **v.upsample), rescale=rescale)


def variant_table(
    variants: Sequence[Variant],
    method: str,
    size,
    *,
    rescale: bool,
    data_range: float,
    against: str = "default",
    cell: int | None = None,
    images: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Similarities of a sweep's maps, one row per (image, compared pair, metric).

    Args:
        variants: :func:`sweep_maps` (or :func:`random_variants`) output, default first.
        method: the label written in the ``method`` column.
        size: the image size the maps are brought to (``H`` or ``(H, W)``).
        rescale, data_range: the method's pre-normalisation (:func:`scaling`).
        against: ``"default"`` — each variant vs the default map (SAM's
            ``*_Comp_With_Default_Settings``); ``"all"`` — all pairs among the default and the
            variants of the same hyperparameter (SAM's ``Basic`` scripts).
        cell: HOG cell (None = ``kit.defaults``).
        images: image indices for the ``image`` column (default ``0..N-1``).

    Returns:
        Long DataFrame: ``image, method, param, variant, metric, value``; ``variant`` names the
        compared configuration(s), e.g. ``"window=5"`` or ``"seed=1|seed=2"``.
    """
    if against not in ("default", "all"):
        raise ValueError(f"against: expected 'default' or 'all', got {against!r}")
    if not variants or variants[0].param is not None:
        raise ValueError("variants: expected the default Variant (param None) first")
    if len(variants) < 2:
        raise ValueError("variants: nothing to compare (the sweep produced only the default map)")
    n = variants[0].sal.shape[0]
    idx = np.arange(n) if images is None else np.asarray(images)
    if idx.shape != (n,):
        raise ValueError(f"images: expected {n} indices, got shape {idx.shape}")
    pix = [_pixels(v, size, rescale) for v in variants]
    pairs: list[tuple[int, int, str]] = []
    params = list(dict.fromkeys(v.param for v in variants[1:]))
    for p in params:
        members = [0] + [k for k, v in enumerate(variants) if v.param == p]
        if against == "default":
            pairs += [(0, k, variants[k].label) for k in members[1:]]
        else:
            pairs += [(i, j, f"{variants[i].label}|{variants[j].label}")
                      for a_, i in enumerate(members) for j in members[a_ + 1:]]
    frames = []
    for i, j, label in pairs:
        param = variants[j].param
        for metric, vals in similarity(pix[i], pix[j], data_range=data_range, cell=cell).items():
            frames.append(pd.DataFrame({"image": idx, "method": method, "param": param,
                                        "variant": label, "metric": metric, "value": vals}))
    return pd.concat(frames, ignore_index=True)


def compare(
    variants: Mapping[str, Sequence[Variant]],
    size,
    *,
    against: str = "default",
    floor: bool = False,
    seed: int = 0,
    cell: int | None = None,
) -> pd.DataFrame:
    """:func:`variant_table` of several methods, each with its own :func:`scaling`.

    Args:
        variants: method name -> :func:`sweep_maps` output.
        size: image size the maps are brought to.
        against: as :func:`variant_table`.
        floor: append each method's random floor (:func:`random_variants` with ``seed``),
            labelled ``"random (<method>)"``.
        seed: seed of the random floor.
        cell: HOG cell (None = ``kit.defaults``).

    Returns:
        The concatenated per-pair long table (methods first, then their floors).
    """
    tables, floors = [], []
    for name, vs in variants.items():
        rescale, data_range = scaling(name)
        kw = {"rescale": rescale, "data_range": data_range, "against": against, "cell": cell}
        tables.append(variant_table(vs, name, size, **kw))
        if floor:
            floors.append(variant_table(random_variants(vs, seed=seed), f"random ({name})",
                                        size, **kw))
    if not tables:
        raise ValueError("variants: expected at least one method")
    return pd.concat(tables + floors, ignore_index=True)


def per_image(table: pd.DataFrame) -> pd.DataFrame:
    """Mean over each image's compared pairs: ``image, method, param, metric, value``.

    A NaN pair makes the image's value NaN (SAM drops such images).
    """
    keys = ["image", "method", "param", "metric"]
    missing = [c for c in [*keys, "value"] if c not in table.columns]
    if missing:
        raise ValueError(f"table: missing column(s) {missing}; expected {[*keys, 'value']}")
    out = (table.groupby(keys, sort=False, dropna=False)["value"]
           .agg(lambda v: float(np.mean(v.to_numpy(np.float64)))).reset_index())
    return out[["image", "method", "param", "metric", "value"]]


def pool_params(per_image_table: pd.DataFrame, label: str = "all") -> pd.DataFrame:
    """Each image's mean over a method's swept hyperparameters, with ``param = label``.

    Use it beside the per-parameter rows for one number per (image, method, metric); NaN
    propagates as in :func:`per_image`.
    """
    keys = ["image", "method", "metric"]
    missing = [c for c in [*keys, "param", "value"] if c not in per_image_table.columns]
    if missing:
        raise ValueError(f"per_image_table: missing column(s) {missing}")
    out = (per_image_table.groupby(keys, sort=False, dropna=False)["value"]
           .agg(lambda v: float(np.mean(v.to_numpy(np.float64)))).reset_index())
    out.insert(2, "param", label)
    return out[["image", "method", "param", "metric", "value"]]


def sam_aggregate(table: pd.DataFrame) -> pd.DataFrame:
    """SAM's dataset aggregation of a :func:`variant_table`: mean over images of the per-image
    means, and ``std = sqrt(mean over images of the per-image variance)`` over the compared
    pairs; images with a NaN are dropped.

    Returns:
        ``method, param, metric, mean, std, n`` (n = images kept).
    """
    rows = []
    for (method, param, metric), g in table.groupby(["method", "param", "metric"], sort=False):
        w = g.pivot_table(index="image", columns="variant", values="value", aggfunc="first",
                          dropna=False)
        w = w[~w.isna().any(axis=1)]
        v = w.to_numpy(np.float64)
        rows.append({"method": method, "param": param, "metric": metric,
                     "mean": float(v.mean(1).mean()) if len(v) else float("nan"),
                     "std": float(np.sqrt(v.var(1).mean())) if len(v) else float("nan"),
                     "n": len(v)})
    return pd.DataFrame(rows, columns=["method", "param", "metric", "mean", "std", "n"])


def run_sweep(
    name: str,
    model,
    x: torch.Tensor,
    target,
    *,
    sweep: Mapping[str, Sequence] | None = None,
    base: Mapping | None = None,
    seed: int = 0,
    against: str = "default",
    floor: bool = False,
    batch_size: int | None = None,
    cache: bool = True,
    progress: bool = False,
) -> pd.DataFrame:
    """SAM sensitivity of one method over images: per-image long table.

    Computes :func:`sweep_maps`, compares them (:func:`variant_table`, the method's
    :func:`scaling`) and averages each image's pairs (:func:`per_image`).

    Args:
        name, model, x, target, sweep, base, seed, batch_size, cache, progress: as
            :func:`sweep_maps`.
        against: as :func:`variant_table`.
        floor: also append the random floor's rows, labelled ``"random (<name>)"``.

    Returns:
        DataFrame ``image, method, param, metric, value`` with metrics ``ssim``, ``hog_pearson``,
        ``spearman`` (all :data:`HIGHER_IS_BETTER`).
    """
    variants = sweep_maps(name, model, x, target, sweep=sweep, base=base, seed=seed,
                          batch_size=batch_size, cache=cache, progress=progress)
    return per_image(compare({name: variants}, tuple(x.shape[-2:]), against=against,
                             floor=floor, seed=seed))


# --------------------------------------------------------------------------- figures


def plot_bars(summary: pd.DataFrame, methods: Sequence[str], *,
              floor: Mapping[str, str] | None = None, titles: Mapping[str, str] | None = None):
    """One panel per metric: a bar per method with its 95% CI, the random floor as a black tick.

    Args:
        summary: :func:`kit.report.summarize` output (``method, metric, mean, ci_low, ci_high``;
            one row per method and metric, e.g. summarised with ``by=("method",)``).
        methods: bars in this order.
        floor: method -> the label of its random floor in ``summary`` (e.g.
            ``"random (SP)"``); None = ``"random (<method>)"`` where present.
        titles: metric -> panel title.
    """
    import matplotlib.pyplot as plt

    s = summary.set_index(["method", "metric"])
    metrics = [m for m in METRICS if m in set(summary["metric"])]
    titles = dict(titles or {})
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    colors = ["tab:blue" if not m.endswith(("-G", "-SDR")) else "tab:orange" for m in methods]
    for ax, metric in zip(axes[0], metrics, strict=True):
        mean = np.array([s["mean"].get((m, metric), np.nan) for m in methods], dtype=float)
        lo = np.array([s["ci_low"].get((m, metric), np.nan) for m in methods], dtype=float)
        hi = np.array([s["ci_high"].get((m, metric), np.nan) for m in methods], dtype=float)
        err = np.stack([mean - lo, hi - mean])
        ax.bar(range(len(methods)), mean, yerr=np.nan_to_num(err), color=colors, capsize=3)
        drawn = False
        for i, m in enumerate(methods):
            f = s["mean"].get(((floor or {}).get(m, f"random ({m})"), metric), np.nan)
            if np.isfinite(f):
                ax.hlines(f, i - 0.4, i + 0.4, colors="black", linewidth=2,
                          label=None if drawn else "random floor")
                drawn = True
        ax.axhline(0, color="gray", linewidth=0.5)
        ax.set_xticks(range(len(methods)), methods, rotation=40, ha="right", fontsize=8)
        ax.set_title(titles.get(metric, metric) + " (higher = more robust)", fontsize=9)
        ax.set_ylim(min(-0.1, np.nanmin(lo) - 0.05) if np.isfinite(lo).any() else -0.1, 1.05)
    from matplotlib.patches import Patch

    handles, labels = axes[0, -1].get_legend_handles_labels()
    handles += [Patch(color="tab:blue"), Patch(color="tab:orange")]
    labels += ["X", "X-G (FIDO: SDR)"]
    axes[0, -1].legend(handles, labels, fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def plot_sweep(rows: Mapping[str, Sequence[Variant]], image: int, size, *,
               rescale: Mapping[str, bool] | None = None, picture: torch.Tensor | None = None):
    """SAM Fig. 1 style: one image's maps across each method's sweep.

    Args:
        rows: row label -> variants (:func:`sweep_maps`), default first.
        image: index of the image in the variants' batch.
        size: image size for :func:`to_pixels`.
        rescale: row label -> divide by max ``|H|`` (default True); each panel uses a symmetric
            colour scale around 0 for signed maps.
        picture: optional ``(3,H,W)`` image drawn in an extra first column.
    """
    import matplotlib.pyplot as plt

    off = 0 if picture is None else 1
    ncol = max(len(v) for v in rows.values()) + off
    fig, axes = plt.subplots(len(rows), ncol, figsize=(1.6 * ncol, 1.7 * len(rows)),
                             squeeze=False)
    for r, (label, variants) in enumerate(rows.items()):
        for c in range(ncol):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if off and c == 0:
                ax.imshow(picture.detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy())
                continue
            if c - off >= len(variants):
                ax.axis("off")
                continue
            v = variants[c - off]
            h = _pixels(v, size, (rescale or {}).get(label, True))[image, 0].numpy()
            if h.min() < 0:
                lim = float(np.abs(h).max()) or 1.0
                ax.imshow(h, cmap="RdBu_r", vmin=-lim, vmax=lim)
            else:
                ax.imshow(h, cmap="inferno", vmin=0, vmax=float(h.max()) or 1.0)
            ax.set_title(v.label, fontsize=7)
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.tight_layout()
    return fig

