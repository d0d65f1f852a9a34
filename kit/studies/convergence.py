"""Convergence check of a profile's budgets: is a method's map at budget B the map at 4B?

Sampling and optimising methods are run at a budget (LIME, KernelSHAP: samples / coalitions;
RISE: masks; MP, MP2, FIDO: Adam iterations) that ``make run`` cuts to fit two CPU cores
(:data:`kit.attributors.PROFILES`). A verdict drawn from an under-converged map says more about
the budget than about the method (science audit §2–§4), so every budgeted method of a profile is
checked: its map at the profile's budget ``B`` against its map at ``factor × B`` (default 4) on
the same world test images, by the per-image Spearman correlation of the two maps' values at the
method's native grid (:func:`scipy.stats.spearmanr`), with a mean and a bootstrap CI over images
(:func:`kit.metrics.stats.describe`). A method **passes** when the mean is at least
:data:`THRESHOLD` (0.95) and no image is undefined (a constant map against a non-constant one);
otherwise it is *budget-limited* at that profile (:func:`budget_limited`), and the summary flags
its verdicts.

The maps go through :func:`kit.mapcache.compute_maps` with the profile's overrides
(:func:`kit.attributors.budget`) and the notebooks' images (``world.sample(n, seed, "test")``,
targets = labels, attributor seed = ``seed``), so the ``B`` maps are the ones ``make run``
computes for its first images, cached once for both.

Usage::

    from kit.studies import convergence
    table = convergence.check_budgets(["MP", "LIME"], profile="full", n_images=16)
    convergence.budget_limited("docs/results/convergence.csv")   # {"LIME", ...}

CLI (writes one row per budgeted method of the profile; rows not run now keep their earlier
result or say ``not run``)::

    python -m kit.studies.convergence --out docs/results/convergence.csv --methods MP MP2
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from kit import checks

__all__ = ["BUDGETS", "THRESHOLD", "COLUMNS", "budgeted", "budget_of", "spearman_per_image",
           "check_budgets", "write_table", "budget_limited", "main"]

BUDGETS: dict[str, tuple[str, int]] = {
    "lime": ("n_samples", 500),
    "kernel_shap": ("n_samples", 2048),
    "rise": ("n_masks", 4000),
    "meaningful_perturbation": ("iterations", 300),
    "mp2": ("iterations", 300),
    "fido": ("iterations", 300),
}
"""Attributor -> (its budget hyperparameter, the attributor's default value), explicit."""

THRESHOLD = 0.95
"""Mean per-image Spearman (map at B vs map at factor × B) a budget must reach."""

COLUMNS = ["method", "attributor", "param", "budget", "budget_high", "profile", "n_images",
           "seed", "spearman_mean", "ci_low", "ci_high", "spearman_min", "n_nan", "threshold",
           "passed", "status", "s_per_image", "s_per_image_high"]
"""Columns of :func:`check_budgets`' table (and of ``docs/results/convergence.csv``). ``status``
is ``"run"`` or says why a row was not run; ``s_per_image*`` are the measured seconds per image
at B and at factor × B (NaN when served from the map cache)."""


def budgeted(methods: Sequence[str] | None = None) -> list[str]:
    """The methods among ``methods`` (default: all of :data:`kit.attributors.METHODS`) whose
    attributor has a budget in :data:`BUDGETS`."""
    from kit.attributors import METHODS

    names = list(METHODS) if methods is None else list(methods)
    _check_methods(names)
    return [m for m in names if METHODS[m].attributor in BUDGETS]


def budget_of(method: str, profile: str = "full") -> tuple[str, int]:
    """``(param, B)``: the budget hyperparameter of ``method`` and its value in ``profile``
    (the profile's override, else the attributor's default).

    Raises:
        ValueError: unknown method or profile, or a method without a budget.
    """
    from kit.attributors import METHODS, PROFILES

    _check_methods([method])
    if profile not in PROFILES:
        raise ValueError(f"profile: unknown profile {profile!r}; valid names: "
                         f"{', '.join(PROFILES)}")
    attributor = METHODS[method].attributor
    if attributor not in BUDGETS:
        raise ValueError(f"method: {method!r} ({attributor}) has no sample or iteration budget; "
                         f"budgeted attributors: {', '.join(BUDGETS)}")
    param, default = BUDGETS[attributor]
    value = PROFILES[profile].get(method, {}).get(param, METHODS[method].params.get(param,
                                                                                    default))
    return param, int(value)


def spearman_per_image(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Per-image Spearman correlation of two ``(N,1,h,w)`` maps at the same grid.

    Identical maps give 1 (a deterministic method at any budget, constant maps included); a
    constant map against a different one gives NaN (no ranks to compare), counted by the caller.

    Returns:
        ``(N,)`` float64.
    """
    from scipy.stats import spearmanr

    if a.shape != b.shape:
        raise ValueError(f"b: expected the shape of a {tuple(a.shape)}, got {tuple(b.shape)}")
    out = np.empty(a.shape[0])
    fa, fb = a.flatten(1).double().numpy(), b.flatten(1).double().numpy()
    for i in range(a.shape[0]):
        if np.array_equal(fa[i], fb[i]):
            out[i] = 1.0
        elif np.ptp(fa[i]) == 0 or np.ptp(fb[i]) == 0:
            out[i] = np.nan
        else:
            out[i] = float(spearmanr(fa[i], fb[i]).statistic)
    return out


def _check_methods(names) -> None:
    from kit.attributors import METHODS

    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise ValueError(f"methods: unknown method(s) {unknown}; valid names: "
                         f"{', '.join(METHODS)}")


def _needs_backgrounds(name: str) -> bool:
    from kit.attributors import METHODS
    from kit.removers import REMOVERS

    rem = METHODS[name].remover
    return isinstance(rem, str) and bool(getattr(REMOVERS.get(rem), "needs_backgrounds", False))


def _maps(name, model, batch, overrides, seed, cache, progress) -> tuple[torch.Tensor, float]:
    from kit import mapcache

    timings: dict = {}
    kw = {"backgrounds": batch.backgrounds} if _needs_backgrounds(name) else {}
    maps = mapcache.compute_maps([name], model, batch.images, batch.labels,
                                 overrides={name: overrides}, seed=seed, cache=cache,
                                 progress=progress, timings=timings, **kw)
    spent = timings.get(name, 0.0)
    return maps[name], (spent / batch.images.shape[0] if spent > 0 else float("nan"))


def check_budgets(methods: Sequence[str] | None = None, profile: str = "full",
                  n_images: int = 16, factor: int = 4, seed: int = 0, *, model=None,
                  batch=None, overrides: Mapping[str, Mapping] | None = None,
                  threshold: float = THRESHOLD, cache: bool = True,
                  progress: bool = False) -> pd.DataFrame:
    """Each budgeted method's map at the profile's budget B against its map at ``factor × B``.

    Args:
        methods: method names (default: every budgeted method of :data:`METHODS`); methods
            without a budget get a row with status ``"no budget"`` (nothing to converge).
        profile: a :data:`kit.attributors.PROFILES` key; its overrides are the run's
            (:func:`kit.attributors.budget`), B is its budget value (:func:`budget_of`).
        n_images: world test images (``world.sample(n_images, seed=seed, split="test")``).
        factor: the higher budget is ``factor × B`` (an integer >= 2).
        seed: the images' and the attributors' seed (the notebooks use one seed for both).
        model: the classifier (default ``load_classifier("world")``).
        batch: a :class:`kit.world.WorldBatch` instead of the sampled one (tests).
        overrides: ``{method: {param: value}}`` on top of the profile's (tests: a toy budget).
        threshold: the mean Spearman a method must reach.
        cache: read and write the map cache.
        progress: tqdm bars of :func:`kit.mapcache.compute_maps`.

    Returns:
        One row per method with the columns of :data:`COLUMNS`.

    Raises:
        ValueError: unknown method or profile, bad ``n_images`` / ``factor`` / ``threshold``.
    """
    from kit.attributors import METHODS, budget
    from kit.metrics.stats import describe

    names = budgeted() if methods is None else list(methods)
    _check_methods(names)
    checks.positive_int("n_images", n_images)
    checks.positive_int("factor", factor, 2)
    checks.seed("seed", seed)
    threshold = checks.number("threshold", threshold, minimum=-1.0)
    if model is None:
        from kit.models import load_classifier

        model = load_classifier("world")
    if batch is None:
        from kit import world

        batch = world.sample(n_images, seed=seed, split="test")
    base = budget(profile, names)
    extra = dict(overrides or {})
    rows = []
    for name in names:
        attributor = METHODS[name].attributor
        row = {"method": name, "attributor": attributor, "profile": profile,
               "n_images": int(batch.images.shape[0]), "seed": seed, "threshold": threshold}
        if attributor not in BUDGETS:
            rows.append({**row, "status": "no budget", "passed": True})
            continue
        ov = {**base.get(name, {}), **dict(extra.get(name, {}))}
        param, b = budget_of(name, profile)
        b = int(ov.get(param, b))
        high = {**ov, param: factor * b}
        lo_map, lo_s = _maps(name, model, batch, {**ov, param: b}, seed, cache, progress)
        hi_map, hi_s = _maps(name, model, batch, high, seed, cache, progress)
        rho = spearman_per_image(lo_map, hi_map)
        d = describe(rho, seed=seed)
        finite = rho[np.isfinite(rho)]
        rows.append({**row, "param": param, "budget": b, "budget_high": factor * b,
                     "spearman_mean": d["mean"], "ci_low": d["ci_low"], "ci_high": d["ci_high"],
                     "spearman_min": float(finite.min()) if finite.size else float("nan"),
                     "n_nan": d["n_nan"],
                     "passed": bool(d["n_nan"] == 0 and d["mean"] >= threshold),
                     "status": "run", "s_per_image": lo_s, "s_per_image_high": hi_s})
    return pd.DataFrame(rows, columns=COLUMNS)


def write_table(table: pd.DataFrame, path, *, profile: str = "full", merge: bool = True,
                note: str = "not run") -> pd.DataFrame:
    """Write ``table`` to ``path`` (CSV, atomically), one row per budgeted method of METHODS.

    Rows of ``table`` replace the file's rows of the same method (``merge``); budgeted methods in
    neither get a row whose status is ``note`` (so the file says which rows were not run), with
    the profile's current budget.

    Returns:
        The table written.
    """
    from kit.cache import write_atomic_bytes

    path = Path(path)
    old = (pd.read_csv(path) if merge and path.exists() else pd.DataFrame(columns=COLUMNS))
    new = table.set_index("method")
    rows = []
    for name in budgeted():
        if name in new.index:
            rows.append({"method": name, **new.loc[name].to_dict()})
        elif name in set(old[old["status"] != note]["method"]):  # an earlier result
            rows.append(old[old["method"] == name].iloc[0].to_dict())
        else:
            param, b = budget_of(name, profile)
            rows.append({"method": name, "param": param, "budget": b, "profile": profile,
                         "status": note})
    extra = [r for r in new.index if r not in {x["method"] for x in rows}]
    rows += [{"method": name, **new.loc[name].to_dict()} for name in extra]
    out = pd.DataFrame(rows, columns=COLUMNS)
    buf = io.StringIO()
    out.to_csv(buf, index=False, float_format="%.4g")
    write_atomic_bytes(buf.getvalue().encode(), path)
    return out


def budget_limited(path="docs/results/convergence.csv") -> set[str]:
    """The methods whose budget was checked and did not pass (``status == "run"``, ``passed``
    false), read from a table written by :func:`write_table`; methods not run are not in it.

    Raises:
        FileNotFoundError: no such table.
    """
    from kit.paths import ROOT

    path = Path(path)
    if not path.is_absolute() and not path.exists():
        path = ROOT / path
    table = pd.read_csv(path)
    ran = table[table["status"] == "run"]
    failed = ran[~ran["passed"].astype(str).str.lower().isin(["true", "1", "1.0"])]
    return set(failed["method"])


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    """CLI: ``python -m kit.studies.convergence --out docs/results/convergence.csv``."""
    parser = argparse.ArgumentParser(prog="python -m kit.studies.convergence",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/results/convergence.csv")
    parser.add_argument("--methods", nargs="*", default=None,
                        help="method names (default: every budgeted method of the profile)")
    parser.add_argument("--profile", default="full")
    parser.add_argument("--n-images", type=int, default=16)
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--budget", type=int, default=0,
                        help="check this B instead of the profile's (0: the profile's), to try "
                             "a raised budget before putting it in the profile")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    extra = None
    if args.budget:
        extra = {m: {budget_of(m, args.profile)[0]: args.budget} for m in budgeted(args.methods)}
    table = check_budgets(args.methods, args.profile, args.n_images, args.factor, args.seed,
                          overrides=extra, cache=not args.no_cache, progress=True)
    out = write_table(table, args.out, profile=args.profile)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(out)
    return out


if __name__ == "__main__":
    main()
