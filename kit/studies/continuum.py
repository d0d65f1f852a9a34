"""The fill continuum: how good must the remover be for X-G to beat X?

A perturbation method's ladder (:func:`kit.attributors.methods.ladder`) has two generative
extremes: the completion inpainter (X-G, which paints the object back where it is partly hidden)
and the true background (X-O, the perfect removal). Between them lies the remover ``blend``
(:class:`kit.removers.Blend`),

    F_lam = lam * true background + (1 - lam) * completion fill,

with ``lam = 0`` exactly the ``inpaint`` remover (X-G) and ``lam = 1`` exactly the oracle (X-O).
:func:`continuum` runs one method's attributor at ``lam`` in :data:`LAMBDAS` on world images and
reports, against ``lam``:

* **localisation**: ``mass_inside`` and ``pointing_game`` against the object mask
  (:mod:`kit.metrics.localization`, each map by its own geometry). At ``lam = 1`` the fill equals
  the image off the object, so this leaks the mask (a floor no real remover can reach);
* **within-object agreement** with the ``lam = 1`` map (:mod:`kit.metrics.agreement`): does the
  map order the object's own positions as the oracle does (1 at ``lam = 1`` by definition).

The method's X rung (gray or blur) is reported beside, with ``lam`` NaN, so the ``lam`` at which
the continuum first matches X (:func:`matching_lambda`) answers the question above as a number.
Maps are cached through :mod:`kit.cache` (namespace ``continuum``; keys: method, ``lam``,
hyperparameters, seed, image, target and background bytes, classifier weights, the completion
inpainter's file or weights, kit's attributor code).

Usage::

    from kit.studies import continuum
    b = world.sample(32, seed=0, split="test")
    per_image = continuum.continuum_per_image("SP", clf, b, overrides={"stride": 4})
    table = continuum.summarize(per_image)  # method, fill, lam, metric, mean, CI, n, n_nan
    continuum.matching_lambda(table, "mass_inside")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from kit import cache as store
from kit.maps import Maps, method_geometry

__all__ = ["LAMBDAS", "METRICS", "HIGHER_IS_BETTER", "continuum_maps", "continuum_per_image",
           "continuum_table", "matching_lambda", "resolve_method", "summarize"]

LAMBDAS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
"""The share of the true background in the fill: 0 = X-G (completion), 1 = X-O (oracle)."""

METRICS = ("mass_inside", "pointing_game", "within_object_agreement")
"""What :func:`continuum_per_image` measures per image and ``lam``."""

HIGHER_IS_BETTER = {m: True for m in METRICS}
"""Direction of every metric of the study."""

_CODE = ("attributors", "engine.py", "removers.py", "masks.py", "models", "nets.py",
         "defaults.py", "checks.py")
# the kit sources a map depends on (as kit.mapcache.SOURCES): editing one recomputes the maps


def resolve_method(method: str) -> tuple[str, dict[str, str]]:
    """The ladder family of ``method``: ``(base name, {rung: method name})``.

    Args:
        method: a ladder base (``"SP"``, ``"FIDO-SDR"``) or any rung's name (``"SP-G"``).

    Raises:
        ValueError: a name that is no perturbation method's (the message lists the bases), or a
            family without an O rung.
    """
    from kit.attributors.methods import ladder

    lad = ladder()
    for base, rungs in lad.items():
        if method == base or method in rungs.values():
            if "O" not in rungs:
                raise ValueError(f"method: {method!r} has no oracle rung to blend towards")
            return base, dict(rungs)
    raise ValueError(f"method: {method!r} is not a perturbation method of the ladder; valid "
                     f"names: {', '.join(lad)} (or any of their rungs)")


def _lambdas(lambdas) -> tuple[float, ...]:
    from kit.checks import number

    lams = tuple(number("lambdas", v, minimum=0.0, maximum=1.0) for v in lambdas)
    if not lams or len(set(lams)) != len(lams):
        raise ValueError(f"lambdas: expected distinct values in [0, 1], got {tuple(lambdas)!r}")
    return lams


def _inpainter_digest(inpainter) -> str:
    if isinstance(inpainter, str):
        from kit.removers import remover_files

        files = remover_files("blend") if inpainter == "world" else ()
        return store.digest(inpainter, *[store.file_digest(f) for f in files if f.exists()])
    return store.model_digest(inpainter)


def continuum_maps(method: str, model, x: torch.Tensor, target, backgrounds: torch.Tensor, *,
                   lambdas: Sequence[float] = LAMBDAS, overrides: Mapping | None = None,
                   inpainter="world", seed: int = 0, batch_size: int | None = None,
                   cache: bool = True) -> Maps:
    """The method's maps with the fill ``F_lam`` at every ``lam``.

    Args:
        method: a ladder base or rung name (:func:`resolve_method`).
        model: the classifier.
        x: ``(N,3,H,W)`` world images; target: int or ``(N,)``.
        backgrounds: ``(N,3,H,W)`` their true backgrounds (``WorldBatch.backgrounds``).
        lambdas: values in [0, 1].
        overrides: the attributor's hyperparameters, the same at every ``lam`` (``local=True``
            is refused: the blend is tied to the full image).
        inpainter: the completion inpainter (a :func:`kit.models.load_inpainter` name or an
            :class:`~kit.models.Inpainter`); ``"world"`` is the X-G rung's.
        seed, batch_size: passed to the attributor.
        cache: read and write ``<cache root>/continuum``.

    Returns:
        :class:`kit.maps.Maps` keyed ``"lam=0.25"`` etc., each with the method's geometry.
    """
    from kit.attributors import explain
    from kit.checks import images
    from kit.removers import Blend

    _, rungs = resolve_method(method)
    lams = _lambdas(lambdas)
    images("x", x)
    images("backgrounds", backgrounds)
    if backgrounds.shape != x.shape:
        raise ValueError(f"backgrounds: expected shape {tuple(x.shape)} (aligned with x), got "
                         f"{tuple(backgrounds.shape)}")
    oracle = rungs["O"]
    params = dict(overrides or {})
    target = torch.as_tensor(target, dtype=torch.long)
    kw = {**params, "seed": seed}
    if batch_size is not None:
        kw["batch_size"] = batch_size
    geometry = method_geometry(oracle, tuple(x.shape[-2:]), params)
    key_parts = None
    if cache:
        key_parts = [oracle, repr(sorted(params.items())), str(int(seed)),
                     store.model_digest(model), _inpainter_digest(inpainter), x, target,
                     backgrounds, store.code_digest(*_CODE)]
    out = Maps()
    for lam in lams:
        path = None
        sal = None
        if cache:
            path = store.path("continuum", f"{oracle}-{lam:g}-{store.digest(*key_parts, lam)}.pt")
            sal = store.read(path)
        if sal is None:
            remover = Blend(backgrounds, lam=lam, model=inpainter)
            sal = explain(oracle, model, x, target, remover=remover, **kw).detach().cpu()
            if path is not None:
                store.write(sal, path)
        name = f"lam={lam:g}"
        out[name] = sal
        out.geometry[name] = dict(geometry)
    return out


def continuum_per_image(method: str, model, batch, *, lambdas: Sequence[float] = LAMBDAS,
                        overrides: Mapping | None = None, x_overrides: Mapping | None = None,
                        inpainter="world", include_x: bool = True, seed: int = 0,
                        batch_size: int | None = None, cache: bool = True):
    """Per-image localisation and within-object agreement of one method along the continuum.

    Args:
        method: a ladder base or rung name (:func:`resolve_method`).
        model: the classifier.
        batch: a :class:`kit.world.WorldBatch` (images, labels as targets, masks, backgrounds).
        lambdas, overrides, inpainter, seed, batch_size, cache: as in :func:`continuum_maps`.
        x_overrides: hyperparameters of the X rung (default ``overrides``).
        include_x: add the method's X rung (``fill`` its remover, ``lam`` NaN), when it has one.

    Returns:
        DataFrame ``image, method, fill, lam, metric, value`` (``fill`` is ``"blend"`` along the
        continuum); agreement is against the ``lam = 1`` map, computed for it when ``lambdas``
        lack 1. NaN values (a map without positive mass, an object too small for a rank
        correlation) stay in the table.
    """
    import pandas as pd

    from kit.attributors import METHODS
    from kit.metrics import agreement, localization

    base, rungs = resolve_method(method)
    lams = _lambdas(lambdas)
    wanted = lams if 1.0 in lams else (*lams, 1.0)
    maps = continuum_maps(method, model, batch.images, batch.labels, batch.backgrounds,
                          lambdas=wanted, overrides=overrides, inpainter=inpainter, seed=seed,
                          batch_size=batch_size, cache=cache)
    ref = "lam=1"
    rows = [(f"lam={lam:g}", "blend", lam) for lam in lams]
    if include_x and "X" in rungs:
        from kit.mapcache import compute_maps

        xname = rungs["X"]
        xo = dict(overrides or {}) if x_overrides is None else dict(x_overrides)
        got = compute_maps([xname], model, batch.images, batch.labels, overrides={xname: xo},
                           seed=seed, batch_size=batch_size, cache=cache)
        maps[xname] = got[xname]
        maps.geometry[xname] = got.spec(xname)
        rows.append((xname, METHODS[xname].remover, float("nan")))
    masks = batch.masks
    frames = []
    for name, fill, lam in rows:
        g = maps.spec(name)
        mode = g.pop("mode")
        vals = {
            "mass_inside": localization.mass_inside(maps[name], masks, upsample_mode=mode, **g),
            "pointing_game": localization.pointing_game(maps[name], masks, upsample_mode=mode,
                                                        **g),
        }
        if maps[name].shape == maps[ref].shape:
            vals["within_object_agreement"] = agreement.within_object_agreement(
                maps[name], maps[ref], masks, geometry=maps.spec(name),
                reference_geometry=maps.spec(ref))
        for metric, v in vals.items():
            frames.append(pd.DataFrame({"image": np.arange(v.shape[0]), "method": base,
                                        "fill": fill, "lam": lam, "metric": metric,
                                        "value": v.double().numpy()}))
    return pd.concat(frames, ignore_index=True)


def continuum_table(methods: Sequence[str], model, batch, *, profile: str = "full",
                    lambdas: Sequence[float] = LAMBDAS, seed: int = 0,
                    batch_size: int | None = None, cache: bool = True):
    """:func:`continuum_per_image` for several methods at a budget profile's hyperparameters.

    Each method runs along the continuum with its O rung's entry of
    :data:`kit.attributors.PROFILES` ``[profile]`` (the O rung: never SP's local windows, which
    the blend refuses), its X rung with the X rung's entry, so the X maps are the ones notebooks
    01-04 compute at that profile (the same :mod:`kit.mapcache` entries).

    Args:
        methods: ladder base or rung names (:func:`resolve_method`), e.g. ``["SP", "LIME"]``.
        model, batch, lambdas, seed, batch_size, cache: as :func:`continuum_per_image`.
        profile: a key of :data:`kit.attributors.PROFILES`.

    Returns:
        The methods' :func:`continuum_per_image` tables, one after the other.

    Raises:
        ValueError: no methods, an unknown method or profile.
    """
    import pandas as pd

    from kit.attributors import budget

    methods = list(methods)
    if not methods:
        raise ValueError("methods: expected at least one ladder method, got none")
    frames = []
    for m in methods:
        _, rungs = resolve_method(m)
        names = [rungs["O"], *([rungs["X"]] if "X" in rungs else [])]
        params = budget(profile, names)
        frames.append(continuum_per_image(
            m, model, batch, lambdas=lambdas, overrides=params.get(rungs["O"], {}),
            x_overrides=params.get(rungs.get("X"), {}), seed=seed, batch_size=batch_size,
            cache=cache))
    return pd.concat(frames, ignore_index=True)


def summarize(per_image, *, confidence: float = 0.95):
    """Means with Student-t intervals per ``method, fill, lam, metric``; NaN images counted.

    Returns:
        DataFrame ``method, fill, lam, metric, mean, ci_low, ci_high, n, n_nan,
        higher_is_better`` (``n`` the images with a defined value; the mean is over them).
    """
    import pandas as pd

    from kit.metrics.stats import t_interval

    keys = ["method", "fill", "lam", "metric"]
    rows = []
    for key, g in per_image.groupby(keys, sort=False, dropna=False):
        v = g["value"].to_numpy(np.float64)
        ok = v[np.isfinite(v)]
        low, high = t_interval(ok, confidence)
        rows.append({**dict(zip(keys, key, strict=True)),
                     "mean": float(ok.mean()) if ok.size else float("nan"),
                     "ci_low": low, "ci_high": high, "n": int(ok.size),
                     "n_nan": int(v.size - ok.size),
                     "higher_is_better": HIGHER_IS_BETTER.get(key[-1], True)})
    return pd.DataFrame(rows, columns=[*keys, "mean", "ci_low", "ci_high", "n", "n_nan",
                                       "higher_is_better"])


def matching_lambda(table, metric: str = "mass_inside"):
    """Per method, the smallest ``lam`` at which the continuum's mean reaches the X rung's.

    Linear between the grid's ``lam`` values; NaN when the continuum never reaches X (or the
    table has no X row), 0 when it does already at ``lam = 0`` (X-G matches X).

    Args:
        table: :func:`summarize` output.
        metric: one of :data:`METRICS` (higher is better for all).

    Returns:
        DataFrame ``method, metric, x_mean, lam``.
    """
    import pandas as pd

    rows = []
    for method, g in table[table["metric"] == metric].groupby("method", sort=False):
        xs = g[g["lam"].isna()]
        line = g[g["lam"].notna()].sort_values("lam")
        x_mean = float(xs["mean"].iloc[0]) if len(xs) else float("nan")
        lam = float("nan")
        if np.isfinite(x_mean):
            lv, mv = line["lam"].to_numpy(float), line["mean"].to_numpy(float)
            for i in range(len(lv)):
                if mv[i] >= x_mean:
                    if i == 0:
                        lam = float(lv[0])
                    else:  # between the last point below and this one
                        t = (x_mean - mv[i - 1]) / (mv[i] - mv[i - 1])
                        lam = float(lv[i - 1] + t * (lv[i] - lv[i - 1]))
                    break
        rows.append({"method": method, "metric": metric, "x_mean": x_mean, "lam": lam})
    return pd.DataFrame(rows, columns=["method", "metric", "x_mean", "lam"])
