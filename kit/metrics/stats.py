"""Dataset-level statistics shared by the metrics."""

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
