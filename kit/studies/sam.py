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
  pairs, SAM's ``Basic`` scripts), after :func:`kit.maps.to_pixels` and the pre-normalisation
  (:func:`kit.metrics.sensitivity.scaling`: every map divided by its max ``|H|``). An image's
  value is the mean over its variants (:func:`per_image`); :func:`pool_params` pools a method's
  hyperparameters. Spearman is the headline (:data:`kit.metrics.sensitivity.HEADLINE`).
* **Floor: maps of other images** (``floor=True``, labelled :func:`floor_label`): the same pairs,
  but the second map of each pair is the one of *another* image (image ``n`` against image
  ``n - 1``, cyclically) of the same method and configuration. It has the maps' own amplitude,
  grid and smoothness, so it says what "similar" means by chance for this method (a fixed
  U[0,1) floor does not: unscaled SSIM of SP-G maps of different images was 0.92 in the 2026-12
  audit). :func:`beside_floor` puts each metric beside its floor with both CIs;
  :func:`above_floor` says which methods beat theirs with disjoint CIs.
* **Undefined values** (a constant map has no Spearman/HOG correlation) make the image NaN; they
  are counted (``n_nan``, :mod:`kit.metrics.stats`), never dropped silently.
* **Runs** go through :func:`kit.distributed.map_tasks` when a ``client`` is given (the sweep's
  configurations are independent computations).

Usage::

    from kit.studies import sam
    per_image = sam.run_sweep("SP-G", clf, batch.images, batch.labels, floor=True)
    summary = kit.report.summarize(per_image, sens.HIGHER_IS_BETTER, by=("method", "param"))
    summary = kit.metrics.stats.with_nan_counts(summary, per_image, by=("method", "param"))
    sam.beside_floor(summary[summary["param"] == "all"])   # metric, its floor, both CIs
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from kit import checks
from kit.distributed import map_tasks
from kit.maps import geometry_of, to_pixels
from kit.metrics.sensitivity import METRICS, prenormalise, scaling, similarity

__all__ = [
    "SWEEPS",
    "Sweep",
    "Variant",
    "above_floor",
    "applicable",
    "beside_floor",
    "compare",
    "floor_label",
    "per_image",
    "pool_params",
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

def _every_rung(sweeps: dict[str, dict[str, Sweep]]) -> dict[str, dict[str, Sweep]]:
    """The hand-listed sweeps, extended to every rung of each method's ladder (X, X-G, X-R, X-O:
    :func:`kit.attributors.methods.ladder`), so the rungs of one method share its sweep."""
    from kit.attributors.methods import ladder

    out = dict(sweeps)
    for rungs in ladder().values():
        given = next((sweeps[n] for n in rungs.values() if n in sweeps), None)
        if given is not None:
            for n in rungs.values():
                out.setdefault(n, given)
    return out


SWEEPS = _every_rung(SWEEPS)
"""Method name -> hyperparameter -> :class:`Sweep` (64×64 values; 224 values in ``reference``).
These are the hyperparameters a method can be swept over (:func:`sweep_maps`); every rung of
a ladder has its method's sweep (the project's shared sweeps, one per method)."""


def floor_label(method: str) -> str:
    """The ``method`` label of ``method``'s floor (maps of other images) in the study's tables."""
    return f"other images ({method})"


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


@dataclass(frozen=True)
class _VariantTask:
    """One configuration of a sweep (a :func:`kit.distributed.map_tasks` task)."""

    name: str
    param: str | None
    value: object
    config: dict
    seed: int
    batch_size: int | None
    cache: bool


def _variant(task: _VariantTask, *, model, x: torch.Tensor, target,
             backgrounds: torch.Tensor | None = None) -> Variant:
    """The maps of one sweep configuration (module level: Dask workers import it by name)."""
    from kit.mapcache import compute_maps

    maps = compute_maps([task.name], model, x, target, overrides={task.name: task.config},
                        seed=task.seed, batch_size=task.batch_size, cache=task.cache,
                        backgrounds=backgrounds)
    # each window's grid has its own coverage geometry, which the maps carry
    return Variant(task.param, task.value, maps[task.name].cpu(), geometry_of(maps, task.name),
                   {**task.config, "seed": task.seed})


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
    client=None,
    backgrounds: torch.Tensor | None = None,
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
        batch_size, cache: as :func:`kit.mapcache.compute_maps`.
        progress: a bar over the configurations.
        client: None = the configurations one after the other in this process; a
            ``distributed.Client`` (:func:`kit.distributed.get_client`) = one task per
            configuration (:func:`kit.distributed.map_tasks`; the model and images are sent to
            each worker once). The maps are the same either way (each configuration carries
            its seed) and land in the same disk cache.
        backgrounds: ``(N,3,H,W)`` true backgrounds aligned with ``x``, for an O rung (the
            oracle remover; :func:`kit.mapcache.compute_maps` raises without them).

    Returns:
        ``[default, variant, ...]``: the default :class:`Variant` (``param`` None) first, then one
        per (hyperparameter, value) in the order given; maps ``(N,1,h,w)`` at the native grid.

    Raises:
        ValueError: unknown method or hyperparameter, empty sweep, bad seed.
    """

    values = _check_sweep(name, sweep)
    checks.images("x", x)
    if base is not None and not isinstance(base, Mapping):
        raise TypeError(f"base: expected a mapping of overrides or None, got {type(base).__name__}")
    base = dict(base or {})
    if "seed" in base:
        raise ValueError("base: pass the seed as seed=, not inside base")
    seed = checks.seed("seed", seed)
    side = int(min(x.shape[-2:]))

    tasks = [_VariantTask(name, None, None, base, seed, batch_size, cache)]
    for param, vals in values.items():
        default = _effective(name, param, base, seed, side)
        for v in vals:
            if v == default:
                continue
            if param == "seed":
                tasks.append(_VariantTask(name, param, v, base, checks.seed("sweep['seed']", v),
                                          batch_size, cache))
            else:
                tasks.append(_VariantTask(name, param, v, {**base, param: v}, seed, batch_size,
                                          cache))
    shared = {"model": model, "x": x, "target": target}
    if backgrounds is not None:
        shared["backgrounds"] = backgrounds
    return map_tasks(_variant, tasks, client=client, shared=shared, progress=progress,
                     desc=f"sam-{name}")


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
    other_images: bool = False,
) -> pd.DataFrame:
    """Similarities of a sweep's maps, one row per (image, compared pair, metric).

    Args:
        variants: :func:`sweep_maps` output, default first.
        method: the label written in the ``method`` column.
        size: the image size the maps are brought to (``H`` or ``(H, W)``).
        rescale, data_range: the method's pre-normalisation
            (:func:`kit.metrics.sensitivity.scaling`).
        against: ``"default"`` — each variant vs the default map (SAM's
            ``*_Comp_With_Default_Settings``); ``"all"`` — all pairs among the default and the
            variants of the same hyperparameter (SAM's ``Basic`` scripts).
        cell: HOG cell (None = ``kit.defaults``).
        images: image indices for the ``image`` column (default ``0..N-1``).
        other_images: the floor: compare image ``n``'s first map of each pair with image
            ``n - 1``'s second map (cyclically), i.e. maps of different images; needs N >= 2.

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
    checks.boolean("other_images", other_images)
    if other_images and n < 2:
        raise ValueError(f"variants: the other-images floor needs at least 2 images, got {n}")
    pix = [v.pixels(size, rescale=rescale) for v in variants]
    # image n against image n-1: every image appears once on each side of the floor's pairs
    shift = 1 if other_images else 0
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
        second = pix[j].roll(shift, 0)
        for metric, vals in similarity(pix[i], second, data_range=data_range, cell=cell).items():
            frames.append(pd.DataFrame({"image": idx, "method": method, "param": param,
                                        "variant": label, "metric": metric, "value": vals}))
    return pd.concat(frames, ignore_index=True)


def compare(
    variants: Mapping[str, Sequence[Variant]],
    size,
    *,
    against: str = "default",
    floor: bool = False,
    cell: int | None = None,
) -> pd.DataFrame:
    """:func:`variant_table` of several methods, each with its own
    :func:`kit.metrics.sensitivity.scaling`.

    Args:
        variants: method name -> :func:`sweep_maps` output.
        size: image size the maps are brought to.
        against: as :func:`variant_table`.
        floor: append each method's floor, the same pairs on maps of other images
            (``variant_table(other_images=True)``), labelled :func:`floor_label`
            (``"other images (<method>)"``).
        cell: HOG cell (None = ``kit.defaults``).

    Returns:
        The concatenated per-pair long table (methods first, then their floors).
    """
    checks.boolean("floor", floor)
    tables, floors = [], []
    for name, vs in variants.items():
        rescale, data_range = scaling(name)
        kw = {"rescale": rescale, "data_range": data_range, "against": against, "cell": cell}
        tables.append(variant_table(vs, name, size, **kw))
        if floor:
            floors.append(variant_table(vs, floor_label(name), size, other_images=True, **kw))
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
    pairs; images with a NaN pair are left out of both and counted in ``n_nan``.

    Returns:
        ``method, param, metric, mean, std, n, n_nan`` (n = images kept).
    """
    rows = []
    for (method, param, metric), g in table.groupby(["method", "param", "metric"], sort=False):
        w = g.pivot_table(index="image", columns="variant", values="value", aggfunc="first",
                          dropna=False)
        nan = w.isna().any(axis=1)
        v = w[~nan].to_numpy(np.float64)
        rows.append({"method": method, "param": param, "metric": metric,
                     "mean": float(v.mean(1).mean()) if len(v) else float("nan"),
                     "std": float(np.sqrt(v.var(1).mean())) if len(v) else float("nan"),
                     "n": len(v), "n_nan": int(nan.sum())})
    return pd.DataFrame(rows, columns=["method", "param", "metric", "mean", "std", "n", "n_nan"])


def _floor_rows(summary: pd.DataFrame, methods: Sequence[str] | None) -> tuple[pd.DataFrame,
                                                                                list[str]]:
    """``summary`` indexed by (method, metric), checked, and the methods that have a floor."""
    _require(summary, "summary", ["method", "metric", "mean", "ci_low", "ci_high"])
    if summary.duplicated(["method", "metric"]).any():
        raise ValueError("summary: expected one row per (method, metric); select one param "
                         "first, e.g. summary[summary['param'] == 'all']")
    present = set(summary["method"])
    if methods is None:
        methods = [m for m in dict.fromkeys(summary["method"]) if floor_label(m) in present]
    methods = list(methods)
    missing = [m for m in methods if m not in present or floor_label(m) not in present]
    if missing:
        raise ValueError(f"methods: no rows for {missing} or their floor in summary; "
                         f"methods with a floor: "
                         f"{', '.join(m for m in present if floor_label(m) in present)}")
    return summary.set_index(["method", "metric"]), methods


def beside_floor(summary: pd.DataFrame, methods: Sequence[str] | None = None) -> pd.DataFrame:
    """Each method's similarity beside its floor (maps of other images), both with their CIs.

    Args:
        summary: :func:`kit.report.summarize` output (ideally through
            :func:`kit.metrics.stats.with_nan_counts`) with one row per (method, metric), e.g.
            the pooled rows (``param == "all"``), floors included (``floor=True``).
        methods: rows in this order; None = every method of ``summary`` that has a floor row.

    Returns:
        DataFrame ``method, metric, mean, ci_low, ci_high, n[, n_nan], floor_mean,
        floor_ci_low, floor_ci_high, above_floor``, metrics in :data:`METRICS` order (Spearman,
        the headline, first); ``above_floor`` = the method's ``ci_low`` above the floor's
        ``ci_high``.

    Raises:
        ValueError: missing columns, several rows per (method, metric), or a method without
            its floor rows.
    """
    s, methods = _floor_rows(summary, methods)
    counts = [c for c in ("n", "n_nan") if c in s.columns]
    metrics = [k for k in METRICS if k in set(summary["metric"])]
    rows = []
    for m in methods:
        for k in metrics:
            r, f = s.loc[(m, k)], s.loc[(floor_label(m), k)]
            rows.append({"method": m, "metric": k, "mean": r["mean"], "ci_low": r["ci_low"],
                         "ci_high": r["ci_high"], **{c: int(r[c]) for c in counts},
                         "floor_mean": f["mean"], "floor_ci_low": f["ci_low"],
                         "floor_ci_high": f["ci_high"],
                         "above_floor": bool(r["ci_low"] > f["ci_high"])})
    return pd.DataFrame(rows, columns=["method", "metric", "mean", "ci_low", "ci_high", *counts,
                                       "floor_mean", "floor_ci_low", "floor_ci_high",
                                       "above_floor"])


def above_floor(summary: pd.DataFrame, methods: Sequence[str] | None = None) -> pd.DataFrame:
    """Whether each method's similarity is above its floor (maps of other images) with
    disjoint 95% CIs: :func:`beside_floor`'s ``above_floor`` as one row per method.

    Args:
        summary, methods: as :func:`beside_floor`.

    Returns:
        Boolean DataFrame, index ``methods`` (named ``"above floor"``), one column per metric of
        :data:`kit.metrics.sensitivity.METRICS` present.
    """
    t = beside_floor(summary, methods)
    order = list(dict.fromkeys(t["method"]))
    out = t.pivot(index="method", columns="metric", values="above_floor")
    metrics = [k for k in METRICS if k in out.columns]
    out = out.loc[order, metrics].astype(bool)
    out.index.name, out.columns.name = "above floor", None
    return out


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
    client=None,
    backgrounds: torch.Tensor | None = None,
) -> pd.DataFrame:
    """SAM sensitivity of one method over images: per-image long table.

    Computes :func:`sweep_maps`, compares them (:func:`compare`, the method's scaling) and
    averages each image's pairs (:func:`per_image`).

    Args:
        name, model, x, target, sweep, base, seed, batch_size, cache, progress, client,
            backgrounds: as :func:`sweep_maps`.
        against: as :func:`variant_table`.
        floor: also append the floor's rows (maps of other images), labelled
            :func:`floor_label` (``"other images (<name>)"``).

    Returns:
        DataFrame ``image, method, param, metric, value`` with metrics ``spearman``, ``ssim``,
        ``hog_pearson`` (all higher is better); NaN where a map is constant.
    """
    variants = sweep_maps(name, model, x, target, sweep=sweep, base=base, seed=seed,
                          batch_size=batch_size, cache=cache, progress=progress, client=client,
                          backgrounds=backgrounds)
    return per_image(compare({name: variants}, tuple(x.shape[-2:]), against=against,
                             floor=floor))
