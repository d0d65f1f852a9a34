#!/usr/bin/env python3
"""Write ``docs/results/06_roar.md`` (and copy its tables) from notebook 06's ``results/`` CSVs.

Notebook 06 (ROAR/KAR, ROAD and the mask leak) is run on its own (``make run NB=06`` or
``make roar``), outside ``tools/summary.py``'s summary. This tool turns the tables it wrote into
one page of findings, every number read from the CSVs: the unmodified reference accuracy, per
ROAR/KAR mode and fill the best estimator and those that beat ``random``, the agreement between
fills, the same for ROAD and ROAD's agreement with ROAR, and the mask-leak accuracies. The page's
``## Findings`` bullets are copied verbatim into the README by ``tools/readme_results.py``.

Usage::

    python tools/roar_results.py --config "params/06_roar.yaml with fills [gray]"
    python tools/roar_results.py --results results --out docs/results/06_roar.md --config "..."
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
TABLES = ("06_roar.csv", "06_roar_per_image.csv", "06_roar_ranking.csv",
          "06_roar_rank_agreement.csv", "06_roar_road.csv", "06_roar_road_ranking.csv",
          "06_roar_road_agreement.csv", "06_roar_leak.csv", "06_roar_times.csv")


def _read(results: Path, name: str) -> pd.DataFrame:
    p = results / name
    if not p.is_file() or p.stat().st_size <= 1:
        return pd.DataFrame()
    try:
        return pd.read_csv(p, index_col=0)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _markdown(df: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table (floats to 3 decimals; pandas' own needs tabulate)."""
    def cell(v) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "---|" * len(df.columns)
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def _fmt_ci(mean, lo, hi) -> str:
    if pd.isna(lo) or pd.isna(hi):
        return f"{mean:.3f}"
    return f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"


def _ranking_bullet(label: str, note: str, ranks: pd.DataFrame, interval: str) -> str:
    """One ranking cell as a bullet: the estimators in rank order with their scores, and those
    that beat ``random`` (``interval`` says by which test)."""
    wins = ranks.loc[ranks["beats_random"].astype(bool), "estimator"].tolist()
    order = ", ".join(f"{r.estimator} {r.score:.3f}" for r in ranks.itertuples())
    return (f"- **{label}** ({note}): {order}. Beat random ({interval}): "
            f"{', '.join(wins) or 'none'}.")


def findings(results: Path) -> list[str]:
    """The page's findings, one bullet each, from the CSVs in ``results``."""
    per_run = _read(results, "06_roar_per_image.csv")
    ranks = _read(results, "06_roar_ranking.csv")
    agree = _read(results, "06_roar_rank_agreement.csv")
    road_ranks = _read(results, "06_roar_road_ranking.csv")
    road_agree = _read(results, "06_roar_road_agreement.csv")
    leak = _read(results, "06_roar_leak.csv")
    if per_run.empty or ranks.empty:
        raise SystemExit(f"roar_results: no ROAR tables in {results} (run notebook 06 first)")
    out = []
    ref = per_run[per_run["mode"] == "none"]
    out.append(f"- **Reference.** The recipe retrained on unmodified images reaches "
               f"{ref['accuracy'].mean():.3f} test accuracy (mean of {len(ref)} seeds; chance "
               f"0.125); {len(per_run) - len(ref)} retrainings on modified images.")
    for (mode, fill), g in ranks.groupby(["mode", "fill"], sort=False):
        better = "higher" if mode == "kar" else "lower"
        out.append(_ranking_bullet(
            f"{mode.upper()}, {fill} fill", f"mean accuracy over the fractions, {better} is better",
            g, "paired t-interval over seeds"))
    for r in agree.itertuples():
        out.append(f"- **{r.mode.upper()}, {r.fill_a} vs {r.fill_b}:** Spearman "
                   f"{r.spearman:.2f} over {r.n_estimators} estimators; same best: "
                   f"{r.same_best} ({r.best_a} / {r.best_b}).")
    for (order, fill), g in road_ranks.groupby(["order", "fill"], sort=False):
        out.append(_ranking_bullet(f"ROAD {order.upper()}, {fill} fill", "no retraining", g,
                                   "paired bootstrap over images"))
    for r in road_agree.itertuples():
        out.append(f"- **ROAD {r.order.upper()} ({r.road_fill}) vs {r.mode.upper()} "
                   f"({r.roar_fill}):** Spearman {r.spearman:.2f} over {r.n_estimators} "
                   f"estimators; same best: {r.same_best} ({r.best_road} / {r.best_roar}).")
    if not leak.empty:
        for est, g in leak.groupby("estimator", sort=False):
            cells = "; ".join(f"{r.input} {_fmt_ci(r.mean, r.ci_low, r.ci_high)}"
                              for r in g.itertuples())
            frac = g["fraction"].iloc[0]
            out.append(f"- **Mask leak, {est}** ({frac:.0%} removed, ROAR): accuracy of a "
                       f"network trained on {cells}.")
    return out


def page(results: Path, config: str) -> str:
    lines = ["# 06: ROAR/KAR, ROAD and the mask leak", "",
             f"Generated by `python tools/roar_results.py` from notebook 06's tables (copied "
             f"beside this page). Configuration: {config}.", "", "## Findings", "",
             *findings(results), ""]
    times = _read(results, "06_roar_times.csv")
    if not times.empty:
        lines += ["## Times", "", _markdown(times), ""]
    ranks = _read(results, "06_roar_ranking.csv")
    lines += ["## ROAR / KAR ranking", "", _markdown(ranks), ""]
    road_ranks = _read(results, "06_roar_road_ranking.csv")
    if not road_ranks.empty:
        lines += ["## ROAD ranking", "", _markdown(road_ranks), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=ROOT / "results")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "06_roar.md")
    ap.add_argument("--config", required=True, help="how the run was configured, in words")
    args = ap.parse_args(argv)
    text = page(args.results, args.config)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    folder = args.out.parent / "06_roar"
    folder.mkdir(exist_ok=True)
    for name in TABLES:
        if (args.results / name).is_file():
            shutil.copyfile(args.results / name, folder / name)
    args.out.write_text(text, encoding="utf-8")
    print(f"roar_results: wrote {args.out} and {folder}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
