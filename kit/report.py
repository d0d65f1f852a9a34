"""Dataset-level tables for the notebooks.

Every evaluation notebook produces one *per-image long table*: a pandas DataFrame with the columns
:data:`LONG_COLUMNS`

    image (int) · method (str) · metric (str) · value (float)

plus optional grouping columns (for example ``remover`` for deletion curves or ``alpha`` for GAD).
From it :func:`summarize` computes the mean and a 95% bootstrap confidence interval over images for
every (method, metric) group, and :func:`compare_pairs` the *paired* difference X-G − X over the
images both methods were run on (and likewise X-R − X and X-O − X: the remover ladder's rungs,
:data:`RUNG_PAIRS`), with its own bootstrap interval and the side that wins given the metric's
direction. :func:`save_results` writes the three tables to ``results/``;
``tools/summary.py`` (called by ``make run``) assembles ``results/summary.md`` from them.

Usage::

    per_image = pd.DataFrame(rows)                      # image, method, metric, value
    hib = {"mass_inside": True, "deletion_auc": False}
    summary = report.summarize(per_image, hib)
    pairs = report.compare_pairs(per_image, hib)
    report.save_results("02_localization", per_image, summary, pairs)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from kit.attributors import methods
from kit.cache import write_atomic_bytes
from kit.metrics.stats import bootstrap_ci
from kit.paths import ROOT, output_root, results_dir

__all__ = [
    "PAIRS",
    "RUNG_PAIRS",
    "FIDO_OBJECTIVES",
    "COMPARISONS",
    "LONG_COLUMNS",
    "summarize",
    "compare_pairs",
    "pair_rung",
    "verdict_agreement",
    "reference_pairs",
    "REFERENCE_DIR",
    "wide",
    "save_results",
    "load_results",
]

PAIRS: list[tuple[str, str]] = methods.pairs()
"""(X, X-G) method pairs: same attributor and parameters, the X-G twin with the generative remover
(:func:`kit.attributors.methods.pairs`, derived from ``METHODS``, not hand-listed)."""

FIDO_OBJECTIVES: tuple[str, str] = ("FIDO-CA-SSR", "FIDO-CA-SDR")
"""FIDO's two objectives, both with the inpainter: FIDO has no non-generative twin in the paper, so
its SSR vs SDR comparison is reported beside the pairs, never counted as an X vs X-G pair."""

RUNG_PAIRS: list[tuple[str, str]] = methods.rung_pairs()
"""(X, X-G), then (X, X-R), then (X, X-O) for every ladder with an X rung
(:func:`kit.attributors.methods.rung_pairs`): which rung makes "X-G beats X" hold. The first
block is :data:`PAIRS`."""

COMPARISONS: list[tuple[str, str]] = [*RUNG_PAIRS, FIDO_OBJECTIVES]
"""What :func:`compare_pairs` compares by default: every rung pair, then FIDO's objectives."""

_RUNG_OF_PAIR: dict[tuple[str, str], str] = {p: methods.rung(p[1]) for p in RUNG_PAIRS}

LONG_COLUMNS = ("image", "method", "metric", "value")
"""Required columns of a per-image long table."""

_TIE = "tie"


def _check_long(per_image: pd.DataFrame, by: Sequence[str]) -> None:
    if not isinstance(per_image, pd.DataFrame):
        raise TypeError(f"per_image: expected a pandas DataFrame, got {type(per_image).__name__}")
    # LONG_COLUMNS with its "method" column replaced by the caller's grouping columns.
    required = [LONG_COLUMNS[0], *by, *LONG_COLUMNS[2:]]
    missing = [c for c in required if c not in per_image.columns]
    if missing:
        raise ValueError(
            f"per_image: missing column(s) {missing}; expected at least "
            f"{required}, got {list(per_image.columns)}"
        )


def _check_directions(per_image: pd.DataFrame, higher_is_better: Mapping[str, bool]) -> None:
    unknown = sorted(set(per_image["metric"]) - set(higher_is_better))
    if unknown:
        raise ValueError(
            f"higher_is_better: no direction for metric(s) {unknown}; "
            f"given directions for {sorted(higher_is_better)}"
        )


def summarize(
    per_image: pd.DataFrame,
    higher_is_better: Mapping[str, bool],
    *,
    by: Sequence[str] = ("method",),
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean and bootstrap confidence interval over images for every group and metric.

    NaN values (an undefined metric on an image, e.g. SSIM of two constant maps) are left out of
    the mean and CI, never silently: ``n`` counts the images used, ``n_nan`` those left out.

    Args:
        per_image: long table with ``image``, the ``by`` columns, ``metric`` and ``value``.
        higher_is_better: direction of every metric in the table.
        by: grouping columns besides ``metric``.
        confidence: coverage of the percentile bootstrap interval.
        n_resamples: bootstrap resamples.
        seed: seed of the bootstrap generator.

    Returns:
        DataFrame with columns ``*by, metric, mean, ci_low, ci_high, n, n_nan, higher_is_better``,
        in the
        order the groups first appear.
    """
    by = list(by)
    _check_long(per_image, by)
    _check_directions(per_image, higher_is_better)
    rows = []
    for key, group in per_image.groupby([*by, "metric"], sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        values = group["value"].to_numpy(dtype=np.float64)
        undefined = int(np.isnan(values).sum())
        values = values[~np.isnan(values)]
        low, high = bootstrap_ci(values, confidence=confidence, n_resamples=n_resamples, seed=seed)
        metric = key[-1]
        rows.append({
            **dict(zip(by, key[:-1], strict=False)),
            "metric": metric,
            "mean": float(values.mean()) if values.size else float("nan"),
            "ci_low": low,
            "ci_high": high,
            "n": int(values.size),
            "n_nan": undefined,
            "higher_is_better": bool(higher_is_better[metric]),
        })
    return pd.DataFrame(rows, columns=[*by, "metric", "mean", "ci_low", "ci_high", "n", "n_nan",
                                       "higher_is_better"])


def _winner(diff: float, low: float, high: float, higher: bool, second: str = "X-G") -> str:
    """Which side of second − X wins: the interval must exclude 0, then the direction decides."""
    if not np.isfinite(diff) or not (np.isfinite(low) and np.isfinite(high)):
        return _TIE
    if low > 0:
        return second if higher else "X"
    if high < 0:
        return "X" if higher else second
    return _TIE


def pair_rung(x: str, other: str) -> str:
    """The ladder rung (``"G"``, ``"R"``, ``"O"``) that ``other`` is of ``x``'s method when
    ``(x, other)`` is one of :data:`RUNG_PAIRS`, else ``""`` (e.g. FIDO's two objectives)."""
    return _RUNG_OF_PAIR.get((x, other), "")


def compare_pairs(
    per_image: pd.DataFrame,
    higher_is_better: Mapping[str, bool],
    *,
    pairs: Iterable[tuple[str, str]] = COMPARISONS,
    by: str = "method",
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Paired X vs X-G (and X-R, X-O) comparison over the images both methods were scored on.

    Columns of ``per_image`` other than ``image``, ``by``, ``metric`` and ``value`` (for example
    ``remover``) are kept as extra grouping keys. Pairs whose methods are absent are skipped.

    Args:
        per_image: long table.
        higher_is_better: direction of every metric.
        pairs: ``(X, other)`` method names (default :data:`COMPARISONS`: every X vs X-G, X-R and
            X-O pair, and FIDO's SSR vs SDR).
        by: the column holding the method names.
        confidence, n_resamples, seed: bootstrap settings of the interval of the mean difference.

    Returns:
        DataFrame with columns ``*extra, metric, x, x_g, rung, mean_x, mean_x_g, diff, ci_low,
        ci_high, n, frac_x_g_better, higher_is_better, winner, n_nan``. ``x_g`` is the pair's
        second method (X-G, X-R or X-O; the column keeps the paper's name), ``rung`` its ladder rung
        (:func:`pair_rung`: ``"G"``, ``"R"``, ``"O"``, or ``""`` for a pair that is not X and one
        of its rungs); ``diff`` is the mean of second − X; ``winner`` is ``"X"``, the second's label
        (``"X-G"``, ``"X-R"``, ``"X-O"``; ``"X-G"`` for a pair without a rung) or ``"tie"`` (the
        interval contains 0); ``frac_x_g_better`` the share of images on which the second is
        strictly better; ``n_nan`` the number of images left out of the paired test because
        either side's value is NaN or missing (``n`` counts the images in it).
    """
    _check_long(per_image, [by])
    _check_directions(per_image, higher_is_better)
    extra = [c for c in per_image.columns if c not in ("image", by, "metric", "value")]
    present = set(per_image[by])
    rows = []
    for key, group in per_image.groupby([*extra, "metric"], sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        metric = key[-1]
        higher = bool(higher_is_better[metric])
        wide = group.pivot_table(index="image", columns=by, values="value", aggfunc="mean",
                                 dropna=False)
        for x, xg in pairs:
            if x not in present or xg not in present or x not in wide or xg not in wide:
                continue
            pair = wide[[x, xg]]
            # images with a NaN on either side (e.g. a constant map's pointing game) leave the
            # paired test; they are counted, not dropped silently
            n_nan = int(pair.isna().any(axis=1).sum())
            both = pair.dropna()
            a, b = both[x].to_numpy(np.float64), both[xg].to_numpy(np.float64)
            d = b - a
            low, high = bootstrap_ci(d, confidence=confidence, n_resamples=n_resamples, seed=seed)
            diff = float(d.mean()) if d.size else float("nan")
            better = (d > 0) if higher else (d < 0)
            r = pair_rung(x, xg)
            rows.append({
                **dict(zip(extra, key[:-1], strict=False)),
                "metric": metric, "x": x, "x_g": xg, "rung": r,
                "mean_x": float(a.mean()) if a.size else float("nan"),
                "mean_x_g": float(b.mean()) if b.size else float("nan"),
                "diff": diff, "ci_low": low, "ci_high": high, "n": int(d.size),
                "frac_x_g_better": float(better.mean()) if d.size else float("nan"),
                "higher_is_better": higher,
                "winner": _winner(diff, low, high, higher, f"X-{r or 'G'}"),
                "n_nan": n_nan,
            })
    cols = [*extra, "metric", "x", "x_g", "rung", "mean_x", "mean_x_g", "diff", "ci_low",
            "ci_high", "n", "frac_x_g_better", "higher_is_better", "winner", "n_nan"]
    return pd.DataFrame(rows, columns=cols)


_PAIR_VALUES = ("rung", "mean_x", "mean_x_g", "diff", "ci_low", "ci_high", "n", "frac_x_g_better",
                "higher_is_better", "winner", "n_nan")
"""The columns of :func:`compare_pairs` that are results, not keys of a comparison."""

REFERENCE_DIR = ROOT / "docs" / "results" / "pairs"
"""Where the full run's comparison tables are kept (``<stem>_pairs.csv``, written by
``tools/summary.py --pairs-dir``), for the notebooks' teach runs to check their verdicts against."""


def reference_pairs(stem: str, folder: Path | None = None) -> pd.DataFrame | None:
    """The full run's :func:`compare_pairs` table of notebook ``stem`` (``folder``, default
    :data:`REFERENCE_DIR`), or ``None`` when there is none."""
    path = Path(folder or REFERENCE_DIR) / f"{stem}_pairs.csv"
    return pd.read_csv(path) if path.exists() else None


def verdict_agreement(pairs: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """The comparisons two runs both made, with each run's verdict and whether they agree.

    A verdict is :func:`compare_pairs`'s ``winner`` (``"X"``, ``"X-G"``/``"X-R"``/``"X-O"`` or
    ``"tie"``); a comparison is a row's keys: ``metric``, ``x``, ``x_g`` and the grouping columns
    both tables have (``remover``, ``param``, ...). Comparisons only one run made are left out:
    a smaller run (the ``teach`` parameters) is checked on what it compares.

    Args:
        pairs: this run's :func:`compare_pairs` table.
        reference: the reference run's table (e.g. :func:`reference_pairs`).

    Returns:
        DataFrame with the key columns, ``winner``, ``winner_reference`` and ``agree`` (bool);
        ``agree.mean()`` is the share of agreeing verdicts.
    """
    for name, t in (("pairs", pairs), ("reference", reference)):
        missing = {"metric", "x", "x_g", "winner"} - set(t.columns)
        if missing:
            raise ValueError(f"{name} must be a compare_pairs table; missing columns "
                             f"{sorted(missing)}, got {list(t.columns)}")
    keys = [c for c in pairs.columns if c in reference.columns and c not in _PAIR_VALUES]
    # a CSV round trip turns grouping columns of numbers or booleans into other dtypes: compare
    # keys as strings on both sides
    a = pairs[[*keys, "winner"]].astype({k: str for k in keys})
    b = reference[[*keys, "winner"]].astype({k: str for k in keys})
    both = a.merge(b, on=keys, how="inner", suffixes=("", "_reference"))
    both["agree"] = both["winner"] == both["winner_reference"]
    return both.reset_index(drop=True)


def teach_check(stem: str, pairs: pd.DataFrame, folder: Path | None = None) -> pd.DataFrame | None:
    """The notebooks' teach check: print how many of this run's verdicts agree with make run's.

    Reads make run's table of notebook ``stem`` (:func:`reference_pairs`), prints the share of
    agreeing verdicts over the comparisons both runs made (:func:`verdict_agreement`) and returns
    their crosstab, so a notebook cell that ends with this call shows it.

    Args:
        stem: the notebook's stem, e.g. ``"02_localization"``.
        pairs: this run's :func:`compare_pairs` table.
        folder: where the reference tables are (default :data:`REFERENCE_DIR`).

    Returns:
        Crosstab of the comparisons both runs made, rows: make run's verdict (``"X"``, ``"X-G"``,
        ``"tie"``, ...), columns: this run's; ``None`` (after saying so) when there is no
        reference table for ``stem``.
    """
    folder = Path(folder or REFERENCE_DIR)
    reference = reference_pairs(stem, folder)
    if reference is None:
        print(f"no make-run verdicts for {stem} in {folder}: nothing to agree with")
        return None
    agreement = verdict_agreement(pairs, reference)
    print(f"verdicts agreeing with make run's: {agreement['agree'].mean():.0%} of "
          f"{len(agreement)} comparisons")
    return pd.crosstab(agreement["winner_reference"], agreement["winner"])


def wide(summary: pd.DataFrame, index: str | Sequence[str] = "method") -> pd.DataFrame:
    """A :func:`summarize` table as one row per ``index`` and ``<metric>``, ``<metric>_lo``,
    ``<metric>_hi`` columns (the layout :func:`kit.viz.metric_bars` draws), rows in first-seen
    order."""
    index = [index] if isinstance(index, str) else list(index)
    order = list(dict.fromkeys(map(tuple, summary[index].to_numpy())))
    parts = []
    for col, suffix in (("mean", ""), ("ci_low", "_lo"), ("ci_high", "_hi")):
        w = summary.pivot_table(index=index, columns="metric", values=col, aggfunc="first",
                                dropna=False)
        parts.append(w.rename(columns=lambda m, s=suffix: f"{m}{s}"))
    out = pd.concat(parts, axis=1)
    out = out.loc[order if len(index) > 1 else [o[0] for o in order]]
    metrics = list(dict.fromkeys(summary["metric"]))
    cols = [c for m in metrics for c in (m, f"{m}_lo", f"{m}_hi") if c in out.columns]
    out = out[cols]
    out.columns.name = None
    return out


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    write_atomic_bytes(df.to_csv(index=False).encode("utf-8"), path)


def save_results(
    stem: str,
    per_image: pd.DataFrame,
    summary: pd.DataFrame,
    pairs: pd.DataFrame | None = None,
) -> list[Path]:
    """Write ``results/<stem>.csv`` (summary), ``<stem>_per_image.csv`` and ``<stem>_pairs.csv``.

    Each file is written atomically. A stale ``<stem>_pairs.csv`` is removed when ``pairs`` is None
    so the summary page never reports pairs from an older run.

    Returns:
        The written paths, relative to the output root.
    """
    stem = Path(stem).stem
    out = results_dir()
    written = []
    for suffix, df in (("", summary), ("_per_image", per_image), ("_pairs", pairs)):
        path = out / f"{stem}{suffix}.csv"
        if df is None:
            path.unlink(missing_ok=True)
            continue
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"save_results: expected DataFrames, got {type(df).__name__}")
        _write_csv(df, path)
        written.append(path.relative_to(output_root()))
    return written


def load_results(stem: str, *, root: Path | None = None) -> dict[str, pd.DataFrame]:
    """Read back what :func:`save_results` wrote (keys ``summary``, ``per_image``, ``pairs``)."""
    base = (Path(root) if root is not None else output_root()) / "results"
    out = {}
    for key, suffix in (("summary", ""), ("per_image", "_per_image"), ("pairs", "_pairs")):
        path = base / f"{Path(stem).stem}{suffix}.csv"
        if path.exists():
            out[key] = pd.read_csv(path)
    return out
