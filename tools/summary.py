#!/usr/bin/env python3
"""Assemble ``results/summary.md`` from the result tables the notebooks wrote.

A build step of ``make run`` (``tools/run_notebooks.py`` calls :func:`write_summary` after the
notebooks), not part of the ``kit`` package: it knows the notebooks' file layout (one
``results/NN_*.csv`` summary per notebook, auxiliary tables under the same prefix, notebook 04's
pooled ``param == "all"`` rows). The tables themselves come from :mod:`kit.report`
(:func:`kit.report.save_results`); which method pairs are X vs X-G twins comes from
:data:`kit.report.PAIRS` (derived from ``METHODS``), every other compared pair (FIDO's SSR vs SDR)
is reported on its own.

Every notebook's methods also read as a **ladder** (:func:`ladder_markdown`): per metric, one row
per perturbation method and the columns X, X-G, X-R, X-O (the remover rungs of
:func:`kit.attributors.methods.ladder`), "–" where a rung is absent (older results have X and X-G
only). A method that :func:`kit.studies.convergence.budget_limited` lists (its map had not
converged at the run's budget) is flagged "budget-limited" in its cell.

Usage::

    python tools/summary.py               # <KIT_OUTPUT or the repository>/results/summary.md
    python tools/summary.py --out docs/results/summary.md --figures 0
    # one notebook rerun: keep the others' sections from the page, their verdicts from pairs/
    python tools/summary.py --root R --out docs/results/summary.md --figures 0 \
        --keep docs/results/summary.md --keep-pairs docs/results/pairs
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from kit import report
from kit.cache import write_atomic_bytes
from kit.paths import output_root

__all__ = ["write_summary", "kept_sections", "reflag", "notebook_stems",
           "headline_pairs", "ladder_markdown",
           "pairs_markdown", "summary_markdown", "budget_limited_methods", "claim_counts",
           "claims_markdown", "copy_pairs", "CLAIMS", "PAIRS_LABEL"]

TIE = "tie"
"""The ``winner`` value of :func:`kit.report.compare_pairs` when the interval contains 0."""

_PAIR_COLUMNS = ("metric", "x", "x_g", "rung", "mean_x", "mean_x_g", "diff", "ci_low", "ci_high",
                 "n", "frac_x_g_better", "higher_is_better", "winner", "n_nan")

PAIRS_LABEL = "X vs its rungs"
"""The bold label above a notebook's comparison table (``tools/readme_results.py`` reads it;
summaries written before the R and O rungs were compared label it ``X vs X-G``)."""

CLAIMS = {"01": "plausibility", "02": "localisation", "03": "deletion / insertion",
          "04": "robustness (SAM)", "05": "GAD"}
"""The paper's claim each notebook tests, by its number."""


def _rungs(pairs: pd.DataFrame) -> pd.Series:
    """Each row's rung (``G``, ``R``, ``O``, ``""``): the column, or for a table written before
    it existed, :func:`kit.report.pair_rung` of the row's pair."""
    if "rung" in pairs.columns:
        return pairs["rung"].fillna("").astype(str)
    return pd.Series([report.pair_rung(x, g) for x, g in
                      zip(pairs["x"], pairs["x_g"], strict=True)], index=pairs.index)


_SUMMARY_COLUMNS = ("metric", "mean", "ci_low", "ci_high", "n", "n_nan", "higher_is_better")


def _fmt(v: float, digits: int = 3) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def pairs_markdown(pairs: pd.DataFrame) -> list[str]:
    """Markdown table lines of a :func:`kit.report.compare_pairs` table, one row per comparison:
    X, the rung it is compared with (``X-G``, ``X-R``, ``X-O``; "–" for a pair that is not X and
    one of its rungs) and that method ("vs")."""
    extra = [c for c in pairs.columns if c not in _PAIR_COLUMNS]
    head = [*extra, "metric", "better", "X", "rung", "vs", "mean X", "mean vs",
            "vs − X [95% CI]", "vs better on", "n", "NaN left out", "winner"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rungs = _rungs(pairs)
    for r, rung in zip(pairs.itertuples(index=False), rungs, strict=True):
        d = r._asdict()
        cells = [str(d[c]) for c in extra] + [
            d["metric"], "higher" if d["higher_is_better"] else "lower", d["x"],
            RUNG_LABELS[rung] if rung else "–", d["x_g"],
            _fmt(d["mean_x"]), _fmt(d["mean_x_g"]),
            f"{_fmt(d['diff'])} [{_fmt(d['ci_low'])}, {_fmt(d['ci_high'])}]",
            "–" if not np.isfinite(d["frac_x_g_better"]) else f"{100 * d['frac_x_g_better']:.0f}%",
            str(d["n"]), str(d.get("n_nan", 0)), f"**{d['winner']}**",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def summary_markdown(summary: pd.DataFrame) -> list[str]:
    """Methods × metrics table lines of ``mean [low, high]`` cells (``mean`` alone without CIs);
    empty when the table has no grouping column besides the metric."""
    keys = [c for c in summary.columns if c not in _SUMMARY_COLUMNS]
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


RUNG_LABELS = {"X": "X", "G": "X-G", "R": "X-R", "O": "X-O"}
"""Column label of each ladder rung."""

BUDGET_LIMITED = "budget-limited"
"""The flag of a method whose map had not converged at the run's budget."""


def budget_limited_methods(res: Path | None = None) -> set[str]:
    """The methods :func:`kit.studies.convergence.budget_limited` lists, or none.

    Reads ``<res>/convergence.csv`` when a run wrote one there, else the study's default table
    (``docs/results/convergence.csv``). Imported lazily: without the study, or without any
    table, nothing is flagged.
    """
    try:
        from kit.studies.convergence import budget_limited
    except ImportError:
        return set()
    local = None if res is None else Path(res) / "convergence.csv"
    try:
        found = budget_limited(local) if local is not None and local.exists() else budget_limited()
    except (FileNotFoundError, KeyError, ValueError, pd.errors.EmptyDataError):
        return set()
    return set(found)


def ladder_markdown(summary: pd.DataFrame, limited: set[str] | frozenset = frozenset()
                    ) -> list[str]:
    """One table per metric: rows = perturbation methods, columns = the rungs X, X-G, X-R, X-O.

    Cells are ``mean [low, high]`` (``mean`` alone without CIs), "–" for a rung absent from the
    table, with " (budget-limited)" for a method in ``limited``. Other grouping columns of the
    table (``set``, ``remover``, ``param``) lead each row. Empty when no ladder method is in the
    table.

    Args:
        summary: a :func:`kit.report.summarize` table (``method``, ``metric``, ``mean``, ...).
        limited: method names to flag as budget-limited.
    """
    from kit.attributors.methods import RUNGS, ladder

    if "method" not in summary.columns or not {"metric", "mean"} <= set(summary.columns):
        return []
    lad = ladder(set(summary["method"]))
    if not lad:
        return []
    extra = [c for c in summary.columns if c not in (*_SUMMARY_COLUMNS, "method", "n_nan")]
    has_ci = {"ci_low", "ci_high"} <= set(summary.columns)
    directions = (dict(zip(summary["metric"], summary["higher_is_better"], strict=False))
                  if "higher_is_better" in summary.columns else {})
    arrow = {True: " (↑)", False: " (↓)"}
    lines: list[str] = []
    for metric, g in summary.groupby("metric", sort=False):
        cells: dict[tuple, dict[str, str]] = {}
        for r in g.itertuples(index=False):
            d = r._asdict()
            for base, rungs in lad.items():
                for rung, name in rungs.items():
                    if name != d["method"]:
                        continue
                    text = (f"{_fmt(d['mean'])} [{_fmt(d['ci_low'])}, {_fmt(d['ci_high'])}]"
                            if has_ci else _fmt(d["mean"]))
                    if name in limited:
                        text += f" ({BUDGET_LIMITED})"
                    cells.setdefault((*[d[c] for c in extra], base), {})[rung] = text
        if not cells:
            continue
        head = [*extra, "method", *(RUNG_LABELS[r] for r in RUNGS)]
        lines += [f"*{metric}{arrow.get(directions.get(metric), '')}*", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for key, row in cells.items():
            lines.append("| " + " | ".join([*map(str, key), *(row.get(r, "–") for r in RUNGS)])
                         + " |")
        lines.append("")
    return lines[:-1] if lines else []


def notebook_stems(res: Path) -> list[str]:
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


def headline_pairs(pairs: pd.DataFrame) -> pd.DataFrame:
    """The comparisons the headline counts: where a table holds per-hyperparameter rows *and*
    their pooled ``param == "all"`` rows (notebook 04), only the pooled ones, so that one
    method pair is not counted once per hyperparameter and again pooled."""
    if "param" in pairs.columns and (pairs["param"] == "all").any():
        return pairs[pairs["param"] == "all"]
    return pairs


def _headline(cat: pd.DataFrame) -> str:
    """The headline sentence: X vs X-G wins over :data:`kit.report.PAIRS`, then X vs X-R and X vs
    X-O where the tables have them, then every other compared pair (FIDO's objectives) on its
    own."""
    rungs = _rungs(cat)
    twin = rungs == "G"
    counts = cat.loc[twin, "winner"].value_counts()
    head = (f"**Headline.** Over {int(twin.sum())} paired X vs X-G comparisons (pairs × "
            f"metrics × settings): X-G wins {int(counts.get('X-G', 0))}, X wins "
            f"{int(counts.get('X', 0))}, ties {int(counts.get(TIE, 0))}.")
    for rung in ("R", "O"):
        sel = rungs == rung
        if sel.any():
            c = cat.loc[sel, "winner"].value_counts()
            label = RUNG_LABELS[rung]
            head += (f" X vs {label}, over {int(sel.sum())}: {label} wins "
                     f"{int(c.get(label, 0))}, X wins {int(c.get('X', 0))}, "
                     f"ties {int(c.get(TIE, 0))}.")
    for (x, x_g), g in cat[rungs == ""].groupby(["x", "x_g"], sort=False):
        c = g["winner"].value_counts()
        head += (f" {x} vs {x_g} (not an X vs X-G pair), over {len(g)}: {x_g} wins "
                 f"{int(c.get('X-G', 0))}, {x} wins {int(c.get('X', 0))}, "
                 f"ties {int(c.get(TIE, 0))}.")
    return head


def claim_counts(cat: pd.DataFrame) -> pd.DataFrame:
    """Per notebook (the claim it tests, :data:`CLAIMS`) and rung: how often X-<rung> beats X.

    Args:
        cat: the headline's comparisons (:func:`headline_pairs` of every notebook's table, with a
            ``notebook`` column).

    Returns:
        DataFrame ``notebook, claim, rung, n, wins, losses, ties, verdict`` (rungs G, R, O that
        the notebook compared). ``verdict``: ``"holds"`` when X-<rung> wins more comparisons
        than X and than the ties, ``"fails"`` when X wins more than X-<rung>, else ``"mixed"``.
    """
    rows = []
    rungs = _rungs(cat)
    for stem in dict.fromkeys(cat["notebook"]):
        for rung in ("G", "R", "O"):
            g = cat[(cat["notebook"] == stem) & (rungs == rung)]
            if not len(g):
                continue
            c = g["winner"].value_counts()
            wins, losses, ties = (int(c.get(RUNG_LABELS[rung], 0)), int(c.get("X", 0)),
                                  int(c.get(TIE, 0)))
            verdict = ("holds" if wins > losses and wins > ties else
                       "fails" if losses > wins else "mixed")
            rows.append({"notebook": stem, "claim": CLAIMS.get(stem[:2], stem), "rung": rung,
                         "n": len(g), "wins": wins, "losses": losses, "ties": ties,
                         "verdict": verdict})
    return pd.DataFrame(rows, columns=["notebook", "claim", "rung", "n", "wins", "losses", "ties",
                                       "verdict"])


def claims_markdown(counts: pd.DataFrame) -> list[str]:
    """The claims table: one row per notebook, one column per rung, cells
    ``wins / losses / ties (verdict)`` of X-<rung> against X (:func:`claim_counts`)."""
    if not len(counts):
        return []
    rungs = [r for r in ("G", "R", "O") if (counts["rung"] == r).any()]
    head = ["claim", "notebook", *[f"{RUNG_LABELS[r]} vs X" for r in rungs]]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---|" * len(rungs)]
    for stem, g in counts.groupby("notebook", sort=False):
        by = {r.rung: r for r in g.itertuples(index=False)}
        cells = [g["claim"].iloc[0], stem] + [
            "–" if r not in by else
            f"{by[r].wins} / {by[r].losses} / {by[r].ties} ({by[r].verdict})" for r in rungs]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def kept_sections(path: Path) -> dict[str, list[str]]:
    """The notebook sections (``## NN_*`` to the next such heading) of an earlier summary page,
    by stem, each as its lines (heading included)."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.startswith("## ") and line[3:5].isdigit():
            current = sections.setdefault(line[3:].strip(), [])
        if current is not None:
            current.append(line)
    for lines in sections.values():
        while lines and not lines[-1].strip():
            lines.pop()
        lines.append("")
    return sections


def reflag(lines: list[str], limited: set[str] | frozenset) -> list[str]:
    """A kept section's ladder tables with the budget-limited flags of today's convergence table.

    A kept section was written against the convergence table of its own run; a later check (a
    rung measured for the first time) must flag or unflag its cells as :func:`ladder_markdown`
    would now. Cells of rung columns (``X``, ``X-G``, ``X-R``, ``X-O``) gain or lose the
    `` (budget-limited)`` suffix by the method named by the row's ``method`` and the column;
    every other line is returned as it is.
    """
    from kit.attributors.methods import ladder

    lad = ladder()
    labels = {label: rung for rung, label in RUNG_LABELS.items()}
    suffix = f" ({BUDGET_LIMITED})"
    out: list[str] = []
    columns: list[str] | None = None
    for line in lines:
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") \
            else None
        if cells is None:
            columns = None
        elif "method" in cells and set(RUNG_LABELS.values()) <= set(cells):
            columns = cells
        elif columns is not None and len(cells) == len(columns) and not set(cells[0]) <= {"-"}:
            base = cells[columns.index("method")]
            for i, col in enumerate(columns):
                name = lad.get(base, {}).get(labels.get(col, ""))
                if name is None or cells[i] == "–":
                    continue
                cells[i] = cells[i].removesuffix(suffix) + (suffix if name in limited else "")
            line = "| " + " | ".join(cells) + " |"
        out.append(line)
    return out


def write_summary(
    *, root: Path | None = None, out: Path | None = None, figures_per_notebook: int = 3,
    keep: Path | None = None, keep_pairs: Path | None = None,
) -> Path:
    """Assemble ``results/summary.md`` from the notebooks' result files.

    For every ``results/NN_*.csv`` summary (in notebook order): the X vs X-G table from
    ``NN_*_pairs.csv`` when present, the methods × metrics table, and links to the notebook's first
    figures under ``figures/NN_*/``, then the ladder tables (:func:`ladder_markdown`), methods
    that :func:`budget_limited_methods` lists flagged. A headline counts X-G wins, X wins and ties
    over the :data:`kit.report.PAIRS` rows of all tables and metrics (pooled over
    hyperparameters where a table also has per-hyperparameter rows; other compared pairs apart);
    wall times come from ``results/run_times.csv`` when ``make run`` wrote it.

    Args:
        root: output root (default: :func:`kit.paths.output_root`).
        out: destination (default ``<root>/results/summary.md``); written atomically.
        figures_per_notebook: figures linked per notebook.
        keep: an earlier summary page (``make run NB=04`` after a full run whose ``results/`` is
            gone): the sections of notebooks that ``root`` has no results for are kept from it
            verbatim, in notebook order (their ladder cells re-flagged by today's convergence
            table, :func:`reflag`), and their verdicts enter the headline and the claims from
            ``keep_pairs``.
        keep_pairs: folder of those notebooks' ``NN_*_pairs.csv`` (:func:`copy_pairs`'s
            ``docs/results/pairs``); required with ``keep`` for every kept section of 01-05.

    Returns:
        The path written.

    Raises:
        FileNotFoundError: ``keep`` is not a file, or a kept section of 01-05 has no pairs file
            in ``keep_pairs`` (its verdicts would silently drop out of the headline).
    """
    root = Path(root) if root is not None else output_root()
    res = root / "results"
    out = Path(out) if out is not None else res / "summary.md"
    lines = ["# Results summary", "",
             "Generated by `make run` (`tools/summary.py`) from `results/*.csv`;",
             "every number is what the notebooks computed. Means over images with 95%",
             "percentile-bootstrap CIs; X vs X-G differences are paired over images, and a side",
             "*wins* only when the CI of the difference excludes 0 (↑ higher is better, ↓ lower).",
             ""]
    all_pairs = []
    body: list[str] = []
    limited = budget_limited_methods(res)
    stems = notebook_stems(res)
    kept: dict[str, list[str]] = {}
    if keep is not None:
        if not Path(keep).is_file():
            raise FileNotFoundError(f"keep: expected an earlier summary page, got {keep} "
                                    "(not a file)")
        kept = {k: v for k, v in kept_sections(keep).items() if k not in stems}
    for stem in sorted([*stems, *kept]):
        if stem in kept:
            body += reflag(kept[stem], limited)
            if stem[:2] in CLAIMS and any(line.startswith(f"**{PAIRS_LABEL}") or
                                          line.startswith("**X vs X-G")
                                          for line in kept[stem]):
                path = Path(keep_pairs or "") / f"{stem}_pairs.csv"
                if keep_pairs is None or not path.is_file():
                    raise FileNotFoundError(
                        f"keep_pairs: the kept section {stem} needs its verdicts, "
                        f"{stem}_pairs.csv, in keep_pairs; got {keep_pairs} (pass "
                        "--keep-pairs docs/results/pairs)")
                all_pairs.append(headline_pairs(pd.read_csv(path)).assign(notebook=stem))
            continue
        tables = report.load_results(stem, root=root)
        body += [f"## {stem}", ""]
        if "pairs" in tables and len(tables["pairs"]):
            all_pairs.append(headline_pairs(tables["pairs"]).assign(notebook=stem))
            body += [f"**{PAIRS_LABEL}**", "", *pairs_markdown(tables["pairs"]), ""]
        if "summary" in tables and {"metric", "mean"} <= set(tables["summary"].columns):
            md = summary_markdown(tables["summary"])
            if md:
                body += ["**All methods**", "", *md, ""]
            md = ladder_markdown(tables["summary"], limited)
            if md:
                body += ["**Ladder** (remover rungs: X gray/blur, X-G completion inpainter, "
                         "X-R removal inpainter, X-O true background)", "", *md, ""]
        figs = sorted((root / "figures" / stem).glob("*.png"))[:figures_per_notebook]
        for f in figs:
            rel = os.path.relpath(f, out.parent)
            body += [f"![{stem}: {f.stem}]({rel})", ""]
    if all_pairs:
        cat = pd.concat(all_pairs, ignore_index=True)
        lines += [_headline(cat), ""]
        claims = claims_markdown(claim_counts(cat))
        if claims:
            lines += ["**Claims**", "",
                      "Which rung makes each claim hold: per notebook, X-<rung> wins / X wins / "
                      "ties over its comparisons (pairs × metrics × settings, as the headline "
                      "counts them); *holds* = X-<rung> wins more than X and more than the ties, "
                      "*fails* = X wins more. X-O fills with the true background, which equals "
                      "the image off the object: its localisation leaks the mask (02's "
                      "within-object agreement does not).", "", *claims, ""]
    times = res / "run_times.csv"
    if times.exists():
        t = pd.read_csv(times)
        if {"notebook", "seconds"} <= set(t.columns):
            total = float(t["seconds"].sum())
            lines += [f"**Run time.** {total / 60:.1f} min for {len(t)} notebooks (" + ", ".join(
                f"{r.notebook} {r.seconds:.0f} s" for r in t.itertuples()) + ").", ""]
    text = "\n".join(lines + body).rstrip() + "\n"
    return write_atomic_bytes(text.encode("utf-8"), out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="output root (default: KIT_OUTPUT or the repo)")
    parser.add_argument("--out", type=Path, help="destination (default <root>/results/summary.md)")
    parser.add_argument("--figures", type=int, default=3, help="figures linked per notebook")
    parser.add_argument("--pairs-dir", type=Path, default=None,
                        help="also copy each notebook's NN_*_pairs.csv here (docs/results/pairs: "
                             "the verdicts the notebooks' teach runs are checked against)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="an earlier summary page: keep its sections of notebooks this root "
                             "has no results for (their verdicts from --keep-pairs)")
    parser.add_argument("--keep-pairs", type=Path, default=None,
                        help="the kept notebooks' NN_*_pairs.csv (docs/results/pairs)")
    args = parser.parse_args(argv)
    print(write_summary(root=args.root, out=args.out, figures_per_notebook=args.figures,
                        keep=args.keep, keep_pairs=args.keep_pairs))
    if args.pairs_dir is not None:
        for path in copy_pairs(args.pairs_dir, root=args.root):
            print(path)
    return 0


def copy_pairs(dest: Path, *, root: Path | None = None) -> list[Path]:
    """Copy every ``results/NN_*_pairs.csv`` of 01-05 to ``dest`` (atomically), as the reference
    verdicts of :func:`kit.report.reference_pairs`; returns the paths written."""
    res = (Path(root) if root is not None else output_root()) / "results"
    written = []
    for stem in notebook_stems(res):
        src = res / f"{stem}_pairs.csv"
        if stem[:2] in CLAIMS and src.exists():
            written.append(write_atomic_bytes(src.read_bytes(), Path(dest) / src.name))
    return written


if __name__ == "__main__":
    sys.exit(main())
