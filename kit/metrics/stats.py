"""Dataset-level statistics shared by the metrics.

Every aggregate reports ``n`` (the images its mean and CI are computed from) and ``n_nan`` (the
images where the metric is undefined, e.g. the mass inside of an all-zero map or the Spearman
correlation of a constant one): undefined values are counted, never dropped silently
(:func:`describe` for one sample, :func:`nan_counts` / :func:`with_nan_counts` for long tables).
"""

from __future__ import annotations

import numpy as np


def bootstrap_ci(
    values, *, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean over images.

    Args:
        values: 1-D per-image values.
        confidence: coverage of the interval.
        n_resamples: bootstrap resamples.
        seed: seed of the private generator.

    Returns:
        ``(low, high)``; ``(nan, nan)`` for fewer than 2 values.
    """
    from scipy.stats import bootstrap

    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size < 2:
        return (float("nan"), float("nan"))
    if np.all(v == v[0]):  # degenerate sample: the interval is the value itself
        return (float(v[0]), float(v[0]))
    res = bootstrap(
        (v,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
        method="percentile", rng=np.random.default_rng(seed), vectorized=True,
    )
    return (float(res.confidence_interval.low), float(res.confidence_interval.high))


def t_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean (for a few values, e.g. retraining seeds).

    A percentile bootstrap over 3–5 values has too few distinct resamples to mean anything; the
    t-interval assumes roughly normal values instead.

    Args:
        values: 1-D values.
        confidence: coverage of the interval.

    Returns:
        ``(low, high)``; ``(nan, nan)`` for fewer than 2 values, the value itself for constant ones.
    """
    import math

    from scipy import stats

    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size < 2:
        return (float("nan"), float("nan"))
    m, se = float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size))
    half = float(stats.t.ppf(0.5 + confidence / 2, v.size - 1)) * se
    return (m - half, m + half)


def describe(values, *, confidence: float = 0.95, n_resamples: int = 2000,
             seed: int = 0) -> dict[str, float | int]:
    """Mean and bootstrap CI over the defined values, with the undefined ones counted.

    A metric is NaN on an image where it is undefined (an all-zero map has no mass to
    distribute, a constant map no ranks). Those images are left out of the mean, never silently:
    ``n_nan`` says how many there were.

    Args:
        values: 1-D per-image values; NaN = undefined on that image.
        confidence, n_resamples, seed: as :func:`bootstrap_ci`.

    Returns:
        ``{"mean", "ci_low", "ci_high", "n", "n_nan"}``: ``n`` counts the finite values the mean
        and CI are computed from, ``n_nan`` the NaN ones; the mean is NaN when ``n == 0``.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    nan = np.isnan(v)
    kept = v[~nan]
    low, high = bootstrap_ci(kept, confidence=confidence, n_resamples=n_resamples, seed=seed)
    return {"mean": float(kept.mean()) if kept.size else float("nan"), "ci_low": low,
            "ci_high": high, "n": int(kept.size), "n_nan": int(nan.sum())}


def nan_counts(per_image, by=("method",)):
    """Per group and metric of a long table, how many values are defined and how many are NaN.

    Args:
        per_image: long table with the ``by`` columns, ``metric`` and ``value``.
        by: grouping columns besides ``metric``.

    Returns:
        DataFrame ``*by, metric, n, n_nan`` in first-seen group order (``n`` = defined values).
    """
    import pandas as pd

    by = list(by)
    missing = [c for c in [*by, "metric", "value"] if c not in per_image.columns]
    if missing:
        raise ValueError(f"per_image: missing column(s) {missing}; expected at least "
                         f"{[*by, 'metric', 'value']}, got {list(per_image.columns)}")
    nan = per_image["value"].isna()
    g = per_image.assign(_nan=nan, _ok=~nan).groupby([*by, "metric"], sort=False, dropna=False)
    out = g[["_ok", "_nan"]].sum().astype(int).reset_index()
    return pd.DataFrame(out.rename(columns={"_ok": "n", "_nan": "n_nan"}))[
        [*by, "metric", "n", "n_nan"]]


def with_nan_counts(summary, per_image, by=("method",)):
    """``summary`` (:func:`kit.report.summarize` of ``per_image``) with an ``n_nan`` column after
    ``n``: how many images each row's mean and CI leave out because the metric is NaN there.

    Raises:
        ValueError: ``summary`` lacks the ``by`` / ``metric`` / ``n`` columns, or its ``n`` does
            not match ``per_image``'s defined values (it summarises another table).
    """
    by = list(by)
    need = [*by, "metric", "n"]
    missing = [c for c in need if c not in summary.columns]
    if missing:
        raise ValueError(f"summary: missing column(s) {missing}; expected {need}")
    counts = nan_counts(per_image, by)
    out = summary.drop(columns=[c for c in ("n_nan",) if c in summary.columns]).merge(
        counts.rename(columns={"n": "_n"}), on=[*by, "metric"], how="left", validate="1:1")
    if not (out["_n"].fillna(-1).astype(int) == out["n"].astype(int)).all():
        raise ValueError("summary: its n does not match per_image's defined values; pass the "
                         "per-image table the summary was computed from")
    out["n_nan"] = out["n_nan"].fillna(0).astype(int)
    cols = [c for c in summary.columns if c != "n_nan"]
    cols.insert(cols.index("n") + 1, "n_nan")
    return out[cols]
