#!/usr/bin/env python3
"""Execute the numbered notebooks in order with papermill and record their wall times.

Default mode (``make run``): ``notebooks/NN_*.ipynb`` -> ``runs/<stem>.ipynb``, with the parameters
of ``params/<stem>.yaml`` when that file exists (the full-run configuration) and the notebook's own
defaults otherwise. Wall times go to ``results/run_times.csv`` (rows of notebooks not run this time
are kept), and ``results/summary.md`` is assembled from the notebooks' result tables
(``tools/summary.py``). ``runs/`` and ``results/`` lie under ``KIT_OUTPUT`` when it is
set, as in :mod:`kit.paths` (the repository is this file's, not wherever ``kit`` is installed from).

``--in-place`` (``make refresh-notebooks``): re-executes the committed notebooks at their defaults
(never params/), replacing each notebook only once it ran through; times go to
``results/refresh_times.csv``.

Stops at the first failing notebook, names the cell and the error, and exits 1.

Usage::

    python tools/run_notebooks.py                  # all, in order
    python tools/run_notebooks.py --only 00,03     # by two-digit prefix (or full stem)
    python tools/run_notebooks.py --in-place
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import papermill as pm
import yaml
from clean_notebooks import write_atomic  # sibling script (tools/ is sys.path[0])

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
PARAMS_DIR = ROOT / "params"
FIELDS = ("notebook", "params", "seconds", "status")


def find_notebooks(only: str | None) -> list[Path]:
    """``notebooks/NN_*.ipynb`` in order, restricted to the ``--only`` prefixes or stems."""
    notebooks = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if not only:
        return notebooks
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    chosen = [nb for nb in notebooks if any(nb.stem == w or nb.stem[:2] == w for w in wanted)]
    missing = [w for w in wanted if not any(nb.stem == w or nb.stem[:2] == w for nb in notebooks)]
    if missing:
        raise SystemExit(f"run_notebooks: no notebook matches --only {','.join(missing)}")
    return chosen


def load_params(stem: str) -> tuple[dict, Path | None]:
    """Parameters from ``params/<stem>.yaml`` (a mapping), or ``{}`` when there is none."""
    path = PARAMS_DIR / f"{stem}.yaml"
    if not path.exists():
        return {}, None
    params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(params, dict):
        raise SystemExit(f"run_notebooks: {path} must hold a mapping of parameter names to values")
    return params, path


def write_csv_atomic(path: Path, rows: list[dict]) -> None:
    """Write ``rows`` as CSV through a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, buf.getvalue())


def record(times_path: Path, row: dict) -> None:
    """Insert or replace ``row`` (keyed by notebook) in the times CSV, kept in notebook order."""
    rows: dict[str, dict] = {}
    if times_path.exists():
        with times_path.open(newline="", encoding="utf-8") as f:
            rows = {r["notebook"]: r for r in csv.DictReader(f) if r.get("notebook")}
    rows[row["notebook"]] = row
    write_csv_atomic(times_path, [rows[k] for k in sorted(rows)])


def describe_failure(exc: BaseException) -> str:
    """One line naming the failing cell and error."""
    if isinstance(exc, pm.PapermillExecutionError):
        return f"cell {exc.cell_index} (In [{exc.exec_count}]): {exc.ename}: {exc.evalue}"
    return f"{type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated two-digit prefixes or stems, e.g. 00,03")
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="re-execute notebooks/ in place at their default parameters (make refresh-notebooks)",
    )
    args = parser.parse_args(argv)

    notebooks = find_notebooks(args.only)
    if not notebooks:
        print("run_notebooks: no notebooks/NN_*.ipynb to run")
        return 0
    out = Path(os.environ.get("KIT_OUTPUT", ROOT))  # as kit.paths.output_root()
    runs_dir = out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    times_path = out / "results" / ("refresh_times.csv" if args.in_place else "run_times.csv")

    total = 0.0
    for nb in notebooks:
        params, params_path = ({}, None) if args.in_place else load_params(nb.stem)
        if args.in_place:
            # Execute next to the notebook, replace it only on success: a failed run leaves the
            # committed notebook untouched and its partial output in runs/.
            fd, tmp = tempfile.mkstemp(prefix=f".{nb.stem}.", suffix=".ipynb", dir=nb.parent)
            os.close(fd)
            target = Path(tmp)
        else:
            target = runs_dir / f"{nb.stem}.ipynb"
        label = params_path.relative_to(ROOT).as_posix() if params_path else "defaults"
        print(f"[{nb.stem}] running ({label}) -> {nb if args.in_place else target}", flush=True)

        start = time.perf_counter()
        try:
            pm.execute_notebook(
                str(nb),
                str(target),
                parameters=params,
                kernel_name="python3",
                cwd=str(ROOT),
                progress_bar=False,
            )
        except BaseException as exc:
            seconds = time.perf_counter() - start
            record(
                times_path,
                dict(notebook=nb.stem, params=label, seconds=f"{seconds:.1f}", status="failed"),
            )
            if args.in_place:
                shutil.move(target, runs_dir / f"{nb.stem}.failed.ipynb")
                target = runs_dir / f"{nb.stem}.failed.ipynb"
            print(
                f"\nFAILED: {nb.relative_to(ROOT)} after {seconds:.1f} s\n"
                f"  {describe_failure(exc)}\n"
                f"  executed notebook with the traceback: {target}\n"
                f"  notebooks after it were not run.",
                file=sys.stderr,
            )
            return 130 if isinstance(exc, KeyboardInterrupt) else 1
        seconds = time.perf_counter() - start
        total += seconds
        if args.in_place:
            os.chmod(target, nb.stat().st_mode & 0o777)  # mkstemp made it 0600
            os.replace(target, nb)
        record(
            times_path, dict(notebook=nb.stem, params=label, seconds=f"{seconds:.1f}", status="ok")
        )
        print(f"[{nb.stem}] ok in {seconds:.1f} s", flush=True)

    print(f"run_notebooks: {len(notebooks)} notebook(s) in {total:.1f} s; times in {times_path}")
    if not args.in_place:
        from summary import write_summary  # sibling script; imports kit (and torch) only here

        print(f"run_notebooks: summary in {write_summary(root=out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
