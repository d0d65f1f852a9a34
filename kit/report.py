"""Dataset-level tables for the notebooks and the ``make run`` summary.

Every evaluation notebook produces one *per-image long table*: a pandas DataFrame with the columns

    image (int) · method (str) · metric (str) · value (float)

plus optional grouping columns (for example ``remover`` for deletion curves or ``alpha`` for GAD).
From it :func:`summarize` computes the mean and a 95% bootstrap confidence interval over images for
every (method, metric) group, and :func:`compare_pairs` the *paired* difference X-G − X over the
images both methods were run on, with its own bootstrap interval and the side that wins given the
metric's direction. :func:`save_results` writes the three tables to ``results/``, and
:func:`write_summary` (called by ``make run``) assembles ``results/summary.md`` from whatever
``results/*_pairs.csv`` and summary tables the notebooks wrote.

Usage::

    per_image = pd.DataFrame(rows)                      # image, method, metric, value
    hib = {"mass_inside": True, "deletion_auc": False}
    summary = report.summarize(per_image, hib)
    pairs = report.compare_pairs(per_image, hib)
    report.save_results("02_localization", per_image, summary, pairs)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from kit.metrics.stats import bootstrap_ci
from kit.paths import output_root, results_dir

__all__ = [
    "PAIRS",
    "LONG_COLUMNS",
    "summarize",
    "compare_pairs",
    "wide",
    "save_results",
    "load_results",
    "write_summary",
]

PAIRS: list[tuple[str, str]] = [
    ("SP", "SP-G"),
    ("LIME", "LIME-G"),
    ("MP", "MP-G"),
    ("MP2", "MP2-G"),
    ("FIDO-CA-SSR", "FIDO-CA-SDR"),
]
"""(X, X-G) method pairs compared by :func:`compare_pairs`. FIDO has no non-generative twin in the
paper; its two objectives (SSR vs SDR, both with the inpainter) are compared instead."""

LONG_COLUMNS = ("image", "method", "metric", "value")
"""Required columns of a per-image long table."""

_TIE = "tie"


def _check_long(per_image: pd.DataFrame, by: Sequence[str]) -> None:
    if not isinstance(per_image, pd.DataFrame):
        raise TypeError(f"per_image: expected a pandas DataFrame, got {type(per_image).__name__}")
    missing = [c for c in ("image", "metric", "value", *by) if c not in per_image.columns]
    if missing:
        raise ValueError(
            f"per_image: missing column(s) {missing}; expected at least "
            f"{['image', *by, 'metric', 'value']}, got {list(per_image.columns)}"
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

    NaN values (an undefined metric on an image, e.g. SSIM of two constant maps) are dropped per
    group; ``n`` counts the images that remain.

    Args:
        per_image: long table with ``image``, the ``by`` columns, ``metric`` and ``value``.
        higher_is_better: direction of every metric in the table.
        by: grouping columns besides ``metric``.
        confidence: coverage of the percentile bootstrap interval.
        n_resamples: bootstrap resamples.
        seed: seed of the bootstrap generator.

    Returns:
        DataFrame with columns ``*by, metric, mean, ci_low, ci_high, n, higher_is_better``, in the
        order the groups first appear.
    """
    by = list(by)
    _check_long(per_image, by)
    _check_directions(per_image, higher_is_better)
    rows = []
    for key, group in per_image.groupby([*by, "metric"], sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        values = group["value"].to_numpy(dtype=np.float64)
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
            "higher_is_better": bool(higher_is_better[metric]),
        })
    return pd.DataFrame(rows, columns=[*by, "metric", "mean", "ci_low", "ci_high", "n",
                                       "higher_is_better"])


def _winner(diff: float, low: float, high: float, higher: bool) -> str:
    """Which side of X-G − X wins: the interval must exclude 0, then the direction decides."""
    if not np.isfinite(diff) or not (np.isfinite(low) and np.isfinite(high)):
        return _TIE
    if low > 0:
        return "X-G" if higher else "X"
    if high < 0:
        return "X" if higher else "X-G"
    return _TIE


def compare_pairs(
    per_image: pd.DataFrame,
    higher_is_better: Mapping[str, bool],
    *,
    pairs: Iterable[tuple[str, str]] = PAIRS,
    by: str = "method",
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Paired X vs X-G comparison over the images both methods were scored on.

    Columns of ``per_image`` other than ``image``, ``by``, ``metric`` and ``value`` (for example
    ``remover``) are kept as extra grouping keys. Pairs whose methods are absent are skipped.

    Args:
        per_image: long table.
        higher_is_better: direction of every metric.
        pairs: ``(X, X-G)`` method names.
        by: the column holding the method names.
        confidence, n_resamples, seed: bootstrap settings of the interval of the mean difference.

    Returns:
        DataFrame with columns ``*extra, metric, x, x_g, mean_x, mean_x_g, diff, ci_low, ci_high,
        n, frac_x_g_better, higher_is_better, winner``; ``diff`` is the mean of X-G − X, ``winner``
        is ``"X-G"``, ``"X"`` or ``"tie"`` (the interval contains 0), ``frac_x_g_better`` the share
        of images on which X-G is strictly better.
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
            both = wide[[x, xg]].dropna()
            a, b = both[x].to_numpy(np.float64), both[xg].to_numpy(np.float64)
            d = b - a
            low, high = bootstrap_ci(d, confidence=confidence, n_resamples=n_resamples, seed=seed)
            diff = float(d.mean()) if d.size else float("nan")
            better = (d > 0) if higher else (d < 0)
            rows.append({
                **dict(zip(extra, key[:-1], strict=False)),
                "metric": metric, "x": x, "x_g": xg,
                "mean_x": float(a.mean()) if a.size else float("nan"),
                "mean_x_g": float(b.mean()) if b.size else float("nan"),
                "diff": diff, "ci_low": low, "ci_high": high, "n": int(d.size),
                "frac_x_g_better": float(better.mean()) if d.size else float("nan"),
                "higher_is_better": higher,
                "winner": _winner(diff, low, high, higher),
            })
    cols = [*extra, "metric", "x", "x_g", "mean_x", "mean_x_g", "diff", "ci_low", "ci_high", "n",
            "frac_x_g_better", "higher_is_better", "winner"]
    return pd.DataFrame(rows, columns=cols)


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
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)


def save_results(
    stem: str,
    per_image: pd.DataFrame,
    summary: pd.DataFrame,
    pairs: pd.DataFrame | None = None,
) -> list[Path]:
    """Write ``results/<stem>.csv`` (summary), ``<stem>_per_image.csv`` and ``<stem>_pairs.csv``.

    Each file is written atomically. A stale ``<stem>_pairs.csv`` is removed when ``pairs`` is None
    so :func:`write_summary` never reports pairs from an older run.

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


def _fmt(v: float, digits: int = 3) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def _pairs_markdown(pairs: pd.DataFrame) -> list[str]:
    extra = [c for c in pairs.columns if c not in (
        "metric", "x", "x_g", "mean_x", "mean_x_g", "diff", "ci_low", "ci_high", "n",
        "frac_x_g_better", "higher_is_better", "winner")]
    head = [*extra, "metric", "better", "X", "X-G", "mean X", "mean X-G",
            "X-G − X [95% CI]", "X-G better on", "n", "winner"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in pairs.itertuples(index=False):
        d = r._asdict()
        cells = [str(d[c]) for c in extra] + [
            d["metric"], "higher" if d["higher_is_better"] else "lower", d["x"], d["x_g"],
            _fmt(d["mean_x"]), _fmt(d["mean_x_g"]),
            f"{_fmt(d['diff'])} [{_fmt(d['ci_low'])}, {_fmt(d['ci_high'])}]",
            "–" if not np.isfinite(d["frac_x_g_better"]) else f"{100 * d['frac_x_g_better']:.0f}%",
            str(d["n"]), f"**{d['winner']}**",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _summary_markdown(summary: pd.DataFrame) -> list[str]:
    """Methods × metrics table of ``mean [low, high]`` cells."""
    keys = [c for c in summary.columns if c not in (
        "metric", "mean", "ci_low", "ci_high", "n", "higher_is_better")]
    if not keys:
        return []
    if {"ci_low", "ci_high"} <= set(summary.columns):
        cells = [f"{_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}]" for m, lo, hi in
                 zip(summary["mean"], summary["ci_low"], summary["ci_high"], strict=False)]
    else:  # a table of means without bootstrap CIs
        cells = [_fmt(m) for m in summary["mean"]]
    cell = summary.assign(cell=cells)
    directions = (dict(zip(summary["metric"], summary["higher_is_better"], strict=False))
                  if "higher_is_better" in summary.columns else {})
    wide = cell.pivot_table(index=keys, columns="metric", values="cell", aggfunc="first",
                            sort=False)
    metrics = list(dict.fromkeys(summary["metric"]))
    arrow = {True: " (↑)", False: " (↓)"}
    head = [*keys, *[f"{m}{arrow.get(directions.get(m), '')}" for m in metrics]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for idx, row in wide.iterrows():
        idx = idx if isinstance(idx, tuple) else (idx,)
        lines.append("| " + " | ".join([*map(str, idx), *[
            str(row.get(m, "–")) if isinstance(row.get(m), str) else "–" for m in metrics]]) + " |")
    return lines


def _notebook_stems(res: Path) -> list[str]:
    """One stem per notebook: of the ``NN_*.csv`` files sharing a two-digit prefix, the one that
    prefixes the others (``02_localization``, not its auxiliary ``02_localization_thresholds``)."""
    by_prefix: dict[str, list[str]] = {}
    for p in res.glob("[0-9][0-9]_*.csv"):
        by_prefix.setdefault(p.stem[:2], []).append(p.stem)
    stems = []
    for prefix in sorted(by_prefix):
        main = min(by_prefix[prefix], key=len)
        if all(s.startswith(main) for s in by_prefix[prefix]):
            stems.append(main)
        else:  # unrelated tables under one prefix (not written by kit): show each on its own
            stems += sorted(s for s in by_prefix[prefix]
                            if not s.endswith(("_per_image", "_pairs")))
    return stems


def _headline_pairs(pairs: pd.DataFrame) -> pd.DataFrame:
    """The comparisons the headline counts: where a table holds per-hyperparameter rows *and*
    their pooled ``param == "all"`` rows (notebook 04), only the pooled ones, so that one
    method pair is not counted once per hyperparameter and again pooled."""
    if "param" in pairs.columns and (pairs["param"] == "all").any():
        return pairs[pairs["param"] == "all"]
    return pairs


def write_summary(
    *, root: Path | None = None, out: Path | None = None, figures_per_notebook: int = 3,
) -> Path:
    """Assemble ``results/summary.md`` from the notebooks' result files.

    For every ``results/NN_*.csv`` summary (in notebook order): the X vs X-G table from
    ``NN_*_pairs.csv`` when present, the methods × metrics table, and links to the notebook's first
    figures under ``figures/NN_*/``. A headline counts X-G wins, X wins and ties over all pairs and
    metrics (pooled over hyperparameters where a table also has per-hyperparameter rows); wall
    times come from ``results/run_times.csv`` when ``make run`` wrote it.

    Args:
        root: output root (default: :func:`kit.paths.output_root`).
        out: destination (default ``<root>/results/summary.md``); written atomically.
        figures_per_notebook: figures linked per notebook.

    Returns:
        The path written.
    """
    root = Path(root) if root is not None else output_root()
    res = root / "results"
    out = Path(out) if out is not None else res / "summary.md"
    stems = _notebook_stems(res)
    lines = ["# Results summary", "",
             "Generated by `make run` (`kit.report.write_summary`) from `results/*.csv`;",
             "every number is what the notebooks computed. Means over images with 95%",
             "percentile-bootstrap CIs; X vs X-G differences are paired over images, and a side",
             "*wins* only when the CI of the difference excludes 0 (↑ higher is better, ↓ lower).",
             ""]
    all_pairs = []
    body: list[str] = []
    for stem in stems:
        tables = load_results(stem, root=root)
        body += [f"## {stem}", ""]
        if "pairs" in tables and len(tables["pairs"]):
            all_pairs.append(_headline_pairs(tables["pairs"]).assign(notebook=stem))
            body += ["**X vs X-G**", "", *_pairs_markdown(tables["pairs"]), ""]
        if "summary" in tables and {"metric", "mean"} <= set(tables["summary"].columns):
            md = _summary_markdown(tables["summary"])
            if md:
                body += ["**All methods**", "", *md, ""]
        figs = sorted((root / "figures" / stem).glob("*.png"))[:figures_per_notebook]
        for f in figs:
            rel = os.path.relpath(f, out.parent)
            body += [f"![{stem}: {f.stem}]({rel})", ""]
    if all_pairs:
        cat = pd.concat(all_pairs, ignore_index=True)
        # Only X vs X-G pairs (same method, with and without the inpainter) make the headline;
        # pairs such as FIDO-CA-SSR vs FIDO-CA-SDR (both generative) are counted on their own.
        twin = cat["x_g"] == cat["x"] + "-G"
        counts = cat.loc[twin, "winner"].value_counts()
        head = (f"**Headline.** Over {int(twin.sum())} paired X vs X-G comparisons (pairs × "
                f"metrics × settings): X-G wins {int(counts.get('X-G', 0))}, X wins "
                f"{int(counts.get('X', 0))}, ties {int(counts.get(_TIE, 0))}.")
        for (x, x_g), g in cat[~twin].groupby(["x", "x_g"], sort=False):
            c = g["winner"].value_counts()
            head += (f" {x} vs {x_g} (not an X vs X-G pair), over {len(g)}: {x_g} wins "
                     f"{int(c.get('X-G', 0))}, {x} wins {int(c.get('X', 0))}, "
                     f"ties {int(c.get(_TIE, 0))}.")
        lines += [head, ""]
    times = res / "run_times.csv"
    if times.exists():
        t = pd.read_csv(times)
        if {"notebook", "seconds"} <= set(t.columns):
            total = float(t["seconds"].sum())
            lines += [f"**Run time.** {total / 60:.1f} min for {len(t)} notebooks (" + ", ".join(
                f"{r.notebook} {r.seconds:.0f} s" for r in t.itertuples()) + ").", ""]
    text = "\n".join(lines + body).rstrip() + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    return out
