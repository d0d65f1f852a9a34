"""SAM's study: how much a method's map changes under its own hyperparameters (methods.md §4.5).

Bansal, Agarwal & Nguyen (SAM, CVPR 2020) change one hyperparameter of a method at a time and
compare the new map with the default one, using the similarities of
:mod:`kit.metrics.sensitivity` (SSIM, HOG-Pearson, Spearman; all higher = more robust).

* **Sweeps** (:data:`SWEEPS`, the project's shared sweeps for X vs X-G): one hyperparameter at a
  time, the others at the run's base configuration. :func:`sweep_maps` computes a method's default
  map and one map per swept value (:class:`Variant`, each with the geometry that brings it to
  pixels, as :func:`kit.mapcache.compute_maps` returns it).
* **Comparison** (:func:`variant_table`, :func:`compare`): every variant's map is compared with
  the default map (SAM's ``*_Comp_With_Default_Settings`` scripts; ``against="all"`` compares all
  pairs, SAM's ``Basic`` scripts), after :func:`kit.maps.to_pixels` and the method's
  pre-normalisation (:func:`kit.metrics.sensitivity.scaling`). An image's value is the mean over
  its variants (:func:`per_image`); :func:`pool_params` pools a method's hyperparameters.
* **Random floor** (:func:`random_variants`): every map replaced by i.i.d. U[0,1) values at the
  same native grid and processed identically: what the similarities give for unrelated maps.
  :func:`above_floor` says which methods beat theirs.

Usage::

    from kit.studies import sam
    per_image = sam.run_sweep("SP-G", clf, batch.images, batch.labels, floor=True)
    summary = kit.report.summarize(per_image, sens.HIGHER_IS_BETTER, by=("method", "param"))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch

from kit import checks
from kit.maps import geometry_of, to_pixels
from kit.metrics.sensitivity import METRICS, prenormalise, scaling, similarity

__all__ = [
    "SWEEPS",
    "Sweep",
    "Variant",
    "above_floor",
    "applicable",
    "compare",
    "floor_label",
    "per_image",
    "pool_params",
    "random_variants",
    "run_sweep",
    "sam_aggregate",
    "sweep_maps",
    "variant_table",
]


@dataclass(frozen=True)
class Sweep:
    """Values of one swept hyperparameter.

    Attributes:
        values: the values compared at 64×64 (the default among them).
        default: the attributor's own default at 64×64 (the map every variant is compared with
            when the run's base configuration does not set the hyperparameter).
        reference: the 224×224 values, for the record.
        resolved: the :data:`kit.defaults.DEFAULTS` entry the attributor resolves this
            hyperparameter from when it is left unset (it then depends on the image size);
            None = ``default`` holds at every size.
    """

    values: tuple
    default: object
    reference: str = ""
    resolved: str | None = None


_SEEDS = Sweep((0, 1, 2, 3, 4), 0, "seed {0, 1, 2, 3, 4} (default 0), as at 64")
_WINDOW = Sweep((5, 8, 11), 8, "window {17, 29, 41} (default 29), stride 3", resolved="sp_window")
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
"""Method name -> hyperparameter -> :class:`Sweep` (64×64 values; 224 values in ``reference``).
These are the hyperparameters a method can be swept over (:func:`sweep_maps`)."""


def floor_label(method: str) -> str:
    """The ``method`` label of ``method``'s random floor in the study's tables."""
    return f"random ({method})"


# --------------------------------------------------------------------------- sweeps


@dataclass(frozen=True)
class Variant:
    """The maps of one configuration in a sweep.

    Attributes:
        param: the swept hyperparameter, None for the default configuration.
        value: its value (the default configuration: None).
        sal: ``(N,1,h,w)`` native-grid maps on the CPU.
        upsample: the maps' geometry, a :func:`kit.maps.to_pixels` spec (``mode``, and
            ``window``/``stride`` for sliding-patch grids).
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

    def pixels(self, size, *, rescale: bool) -> torch.Tensor:
        """The maps at image ``size`` by their geometry, pre-normalised: ``(N,1,H,W)``."""
        return prenormalise(to_pixels(self.sal, size, self.upsample), rescale=rescale)


def _effective(name: str, param: str, base: Mapping, seed: int, side: int):
    """The value ``param`` (declared in ``SWEEPS[name]``) has in the default configuration."""
    from kit.attributors import METHODS
    from kit.defaults import resolve

    if param == "seed":
        return seed
    if param in base:
        return base[param]
    if param in METHODS[name].params:
        return METHODS[name].params[param]
    sweep = SWEEPS[name][param]
    return sweep.default if sweep.resolved is None else resolve(sweep.resolved, side)


def _check_sweep(name: str, sweep) -> dict[str, tuple]:
    """``sweep`` (None = the :data:`SWEEPS` values) as ``{param: values}``, checked against the
    hyperparameters ``SWEEPS[name]`` declares."""
    from kit.attributors import METHODS

    checks.choice("name", name, METHODS, "method")
    if name not in SWEEPS:
        raise ValueError(f"name: no SAM sweep for {name!r}; methods with one: "
                         f"{', '.join(SWEEPS)}")
    if sweep is None:
        return {p: tuple(s.values) for p, s in SWEEPS[name].items()}
    if not isinstance(sweep, Mapping) or not sweep:
        raise ValueError(f"sweep: expected a non-empty mapping {{param: values}}, got {sweep!r}")
    out = {}
    for param, values in sweep.items():
        if param not in SWEEPS[name]:
            raise ValueError(f"sweep: {name!r} has no hyperparameter {param!r} to sweep; valid: "
                             f"{', '.join(SWEEPS[name])}")
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
        name: a key of :data:`SWEEPS` (a :data:`kit.attributors.METHODS` name).
        model: the classifier.
        x: ``(N,3,H,W)`` images in [0,1].
        target: int or ``(N,)`` classes explained.
        sweep: ``{hyperparameter: values}`` over hyperparameters ``SWEEPS[name]`` declares;
            None = the :data:`SWEEPS` values. ``"seed"`` sweeps the attributor's seed. Values
            equal to the default configuration's are skipped (that map is the default).
        base: overrides of the default configuration (e.g. a :data:`kit.attributors.PROFILES`
            entry); swept values replace one entry at a time.
        seed: the default configuration's seed.
        batch_size, cache, progress: as :func:`kit.mapcache.compute_maps`.

    Returns:
        ``[default, variant, ...]``: the default :class:`Variant` (``param`` None) first, then one
        per (hyperparameter, value) in the order given; maps ``(N,1,h,w)`` at the native grid.

    Raises:
        ValueError: unknown method or hyperparameter, empty sweep, bad seed.
    """
    from kit.mapcache import compute_maps

    values = _check_sweep(name, sweep)
    checks.images("x", x)
    if base is not None and not isinstance(base, Mapping):
        raise TypeError(f"base: expected a mapping of overrides or None, got {type(base).__name__}")
    base = dict(base or {})
    if "seed" in base:
        raise ValueError("base: pass the seed as seed=, not inside base")
    seed = checks.seed("seed", seed)
    side = int(min(x.shape[-2:]))

    def variant(param, value, config: dict, s: int) -> Variant:
        maps = compute_maps([name], model, x, target, overrides={name: config}, seed=s,
                            batch_size=batch_size, cache=cache, progress=progress)
        # each window's grid has its own coverage geometry, which the maps carry
        return Variant(param, value, maps[name], geometry_of(maps, name), {**config, "seed": s})

    out = [variant(None, None, base, seed)]
    for param, vals in values.items():
        default = _effective(name, param, base, seed, side)
        for v in vals:
            if v == default:
                continue
            if param == "seed":
                out.append(variant(param, v, base, checks.seed("sweep['seed']", v)))
            else:
                out.append(variant(param, v, {**base, param: v}, seed))
    return out


def random_variants(variants: Sequence[Variant], *, seed: int = 0) -> list[Variant]:
    """The random floor of a sweep: every map replaced by i.i.d. U[0,1) values.

    Same native grids and geometry as ``variants`` (so processed identically by
    :func:`variant_table`); variant ``k`` draws from ``torch.Generator().manual_seed(seed + k)``,
    so two variants are independent and the result is deterministic under ``seed``.
    """
    seed = checks.seed("seed", seed)
    out = []
    for k, v in enumerate(variants):
        g = torch.Generator().manual_seed(seed + k)
        out.append(replace(v, sal=torch.rand(v.sal.shape, generator=g)))
    return out


# --------------------------------------------------------------------------- tables


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
        rescale, data_range: the method's pre-normalisation
            (:func:`kit.metrics.sensitivity.scaling`).
        against: ``"default"`` — each variant vs the default map (SAM's
            ``*_Comp_With_Default_Settings``); ``"all"`` — all pairs among the default and the
            variants of the same hyperparameter (SAM's ``Basic`` scripts).
        cell: HOG cell (None = ``kit.defaults``).
        images: image indices for the ``image`` column (default ``0..N-1``).

    Returns:
        Long DataFrame: ``image, method, param, variant, metric, value``; ``variant`` names the
        compared configuration(s), e.g. ``"window=5"`` or ``"seed=1|seed=2"``.
    """
    checks.choice("against", against, ("default", "all"))
    if not variants or variants[0].param is not None:
        raise ValueError("variants: expected the default Variant (param None) first")
    if len(variants) < 2:
        raise ValueError("variants: nothing to compare (the sweep produced only the default map)")
    n = variants[0].sal.shape[0]
    idx = np.arange(n) if images is None else np.asarray(images)
    if idx.shape != (n,):
        raise ValueError(f"images: expected {n} indices, got shape {idx.shape}")
    pix = [v.pixels(size, rescale=rescale) for v in variants]
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
    """:func:`variant_table` of several methods, each with its own
    :func:`kit.metrics.sensitivity.scaling`.

    Args:
        variants: method name -> :func:`sweep_maps` output.
        size: image size the maps are brought to.
        against: as :func:`variant_table`.
        floor: append each method's random floor (:func:`random_variants` with ``seed``),
            labelled :func:`floor_label` (``"random (<method>)"``).
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
            floors.append(variant_table(random_variants(vs, seed=seed), floor_label(name),
                                        size, **kw))
    if not tables:
        raise ValueError("variants: expected at least one method")
    return pd.concat(tables + floors, ignore_index=True)


def _require(table: pd.DataFrame, name: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{name}: missing column(s) {missing}; expected {list(columns)}")


def _mean(v: pd.Series) -> float:
    # np.mean, not pandas' skipna mean: one NaN pair makes the image NaN (SAM drops such images)
    return float(np.mean(v.to_numpy(np.float64)))


def per_image(table: pd.DataFrame) -> pd.DataFrame:
    """Mean over each image's compared pairs: ``image, method, param, metric, value``.

    A NaN pair makes the image's value NaN (SAM drops such images).
    """
    keys = ["image", "method", "param", "metric"]
    _require(table, "table", [*keys, "value"])
    out = table.groupby(keys, sort=False, dropna=False)["value"].agg(_mean).reset_index()
    return out[["image", "method", "param", "metric", "value"]]


def pool_params(per_image_table: pd.DataFrame, label: str = "all") -> pd.DataFrame:
    """Each image's mean over a method's swept hyperparameters, with ``param = label``.

    Use it beside the per-parameter rows for one number per (image, method, metric); NaN
    propagates as in :func:`per_image`.
    """
    keys = ["image", "method", "metric"]
    _require(per_image_table, "per_image_table", [*keys, "param", "value"])
    out = (per_image_table.groupby(keys, sort=False, dropna=False)["value"].agg(_mean)
           .reset_index())
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


def above_floor(summary: pd.DataFrame, methods: Sequence[str] | None = None) -> pd.DataFrame:
    """Whether each method's similarity is above its random floor with disjoint 95% CIs.

    Args:
        summary: :func:`kit.report.summarize` output with one row per (method, metric), e.g. the
            pooled rows (``param == "all"``); needs ``method, metric, ci_low, ci_high``.
        methods: rows in this order; None = every method of ``summary`` that has a floor row.

    Returns:
        Boolean DataFrame, index ``methods`` (named ``"above random floor"``), one column per
        metric of :data:`kit.metrics.sensitivity.METRICS` present: ``ci_low`` of the method >
        ``ci_high`` of :func:`floor_label` ``(method)``.

    Raises:
        ValueError: missing columns, several rows per (method, metric) (filter ``param`` first),
            or a method without its floor rows.
    """
    _require(summary, "summary", ["method", "metric", "ci_low", "ci_high"])
    if summary.duplicated(["method", "metric"]).any():
        raise ValueError("summary: expected one row per (method, metric); select one param "
                         "first, e.g. summary[summary['param'] == 'all']")
    s = summary.set_index(["method", "metric"])
    present = set(summary["method"])
    if methods is None:
        methods = [m for m in dict.fromkeys(summary["method"]) if floor_label(m) in present]
    methods = list(methods)
    missing = [m for m in methods if m not in present or floor_label(m) not in present]
    if missing:
        raise ValueError(f"methods: no rows for {missing} or their random floor in summary; "
                         f"methods with a floor: "
                         f"{', '.join(m for m in present if floor_label(m) in present)}")
    metrics = [k for k in METRICS if k in set(summary["metric"])]
    return pd.DataFrame(
        {k: [bool(s.loc[(m, k), "ci_low"] > s.loc[(floor_label(m), k), "ci_high"])
             for m in methods] for k in metrics},
        index=pd.Index(methods, name="above random floor"))


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

    Computes :func:`sweep_maps`, compares them (:func:`compare`, the method's scaling) and
    averages each image's pairs (:func:`per_image`).

    Args:
        name, model, x, target, sweep, base, seed, batch_size, cache, progress: as
            :func:`sweep_maps`.
        against: as :func:`variant_table`.
        floor: also append the random floor's rows, labelled ``"random (<name>)"``.

    Returns:
        DataFrame ``image, method, param, metric, value`` with metrics ``ssim``, ``hog_pearson``,
        ``spearman`` (all higher is better).
    """
    variants = sweep_maps(name, model, x, target, sweep=sweep, base=base, seed=seed,
                          batch_size=batch_size, cache=cache, progress=progress)
    return per_image(compare({name: variants}, tuple(x.shape[-2:]), against=against,
                             floor=floor, seed=seed))
