#!/usr/bin/env python3
"""Execute the numbered notebooks in order with papermill, or a parameter grid on a Dask cluster.

Default mode (``make run``): ``notebooks/NN_*.ipynb`` -> ``runs/<stem>.ipynb``, with the parameters
of ``params/<stem>.yaml`` when that file exists (the full-run configuration) and the notebook's own
defaults otherwise. Wall times go to ``results/run_times.csv`` (rows of notebooks not run this time
are kept), and ``results/summary.md`` is assembled from the notebooks' result tables
(``tools/summary.py``). ``runs/`` and ``results/`` lie under ``KIT_OUTPUT`` when it is
set, as in :mod:`kit.paths` (the repository is this file's, not wherever ``kit`` is installed from).

``--in-place`` (``make refresh-notebooks``): re-executes the committed notebooks at their defaults
(never params/), replacing each notebook only once it ran through; times go to
``results/refresh_times.csv``.

Stops at the first failing notebook, names the cell and the error, and exits 1 (130 when
interrupted).

**Interrupted runs.** Nothing a run writes is ever half-written under its final name: kit writes
``results/`` and ``figures/`` through :func:`kit.cache.write_atomic_bytes`, papermill executes into
``runs/.<stem>.tmp-<pid>.ipynb`` that is renamed to ``runs/<stem>.ipynb`` once the notebook ran
through (to ``runs/<stem>.failed.ipynb`` when it failed or was interrupted). A run killed outright
(SIGKILL) can leave hidden temporaries behind (``.<name>.tmp-…``); the next run removes those in
``results/`` and ``figures/`` (a ``KIT_OUTPUT`` serves one run at a time) and its own
``.<stem>.tmp-<pid>.ipynb`` whose process is gone (:func:`sweep_stale`), then recomputes what is
missing (maps come back from the cache), so a rerun completes with the same results. The cache,
which a cluster may share, is left to :func:`kit.cache.remove_partial`.

**Grids** (``--grid params/grids/NAME.yaml``): one notebook run per point of a parameter grid,
fanned out over a Dask cluster (``--scheduler local|tcp://host:8786``; default ``KIT_SCHEDULER``,
else a LocalCluster). The grid file::

    notebook: 04_sam_sensitivity       # a notebooks/ stem
    base: params/04_sam_sensitivity.yaml  # optional: start from a parameters file (else defaults)
    parameters: {n_images: 4}          # optional: fixed overrides for every run
    grid:                              # the cartesian product of these lists, in this order
      seed: [0, 1, 2]
      sweep.window: [[5, 8], [5, 11]]  # "name.key": one key of a dict parameter

Every name must be a parameter of the notebook's ``parameters`` cell (checked before anything
runs; the error lists the valid ones). Each run executes in a private temporary folder on its
worker (its own ``KIT_OUTPUT``; workers need no shared file system for outputs) and sends its
files back; the driver writes them to ``<output>/grids/NAME/<run>/`` atomically (a temporary
folder, then a rename), so no two runs share a path and a folder is either complete or absent.
Gathered: ``grids/NAME/grid.csv`` (one row per run: its grid values, status, seconds, worker) and
``grids/NAME/results/<table>.csv`` (each results table of every run that succeeded, with ``run``
and the grid parameters as leading columns). ``--resume`` skips runs whose folder already holds
the same parameters. A failed run's files go to ``<run>.failed/``; the tool exits 1 if any failed.

Usage::

    python tools/run_notebooks.py                  # all, in order
    python tools/run_notebooks.py --only 00,03     # by two-digit prefix (or full stem)
    python tools/run_notebooks.py --in-place
    python tools/run_notebooks.py --grid params/grids/04_window_seed.yaml --scheduler local
"""

from __future__ import annotations

import argparse
import ast
import csv
import io
import itertools
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import papermill as pm
import yaml

PASS_LOG = "KIT_PASS_LOG"
"""kit.passes.ENV (not imported from there: importing kit would start this process counting)."""

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
PARAMS_DIR = ROOT / "params"
FIELDS = ("notebook", "params", "seconds", "status")
GRID_KEYS = ("notebook", "base", "parameters", "grid")
"""Top-level keys a grid file may hold."""

# This tool's temporary names carry the writing process: ".<stem>.tmp-<pid>.ipynb" (executed
# notebooks) and ".<run>.tmp-<pid>-<hex>" (grid run folders). kit.cache's ".<name>.tmp-<uuid>"
# carry none (they must be unique across machines) and never match.
_TMP_NAME = re.compile(r"^\..+\.tmp-(?P<pid>\d+)(?:-[0-9a-f]+)?(?:\.ipynb)?$")


def find_notebooks(only: str | None, notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    """``notebook_dir/NN_*.ipynb`` in order, restricted to the ``--only`` prefixes or stems."""
    notebooks = sorted(notebook_dir.glob("[0-9][0-9]_*.ipynb"))
    if not only:
        return notebooks
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    chosen = [nb for nb in notebooks if any(nb.stem == w or nb.stem[:2] == w for w in wanted)]
    missing = [w for w in wanted if not any(nb.stem == w or nb.stem[:2] == w for nb in notebooks)]
    if missing:
        raise SystemExit(f"run_notebooks: no notebook matches --only {','.join(missing)}")
    return chosen


def load_params(stem: str, params_dir: Path = PARAMS_DIR) -> tuple[dict, Path | None]:
    """Parameters from ``<params_dir>/<stem>.yaml`` (a mapping), or ``{}`` when there is none."""
    path = params_dir / f"{stem}.yaml"
    if not path.exists():
        return {}, None
    params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(params, dict):
        raise SystemExit(f"run_notebooks: {path} must hold a mapping of parameter names to values")
    return params, path


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a same-folder temporary file and ``os.replace``."""
    from kit.cache import write_atomic_bytes  # imports torch: only when something is written

    return write_atomic_bytes(data, path)


def write_csv_atomic(path: Path, rows: list[dict], fields=FIELDS) -> None:
    """Write ``rows`` as CSV atomically (:func:`write_atomic`)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, buf.getvalue().encode("utf-8"))


def record(times_path: Path, row: dict) -> None:
    """Insert or replace ``row`` (keyed by notebook) in the times CSV, kept in notebook order."""
    rows: dict[str, dict] = {}
    if times_path.exists():
        with times_path.open(newline="", encoding="utf-8") as f:
            rows = {r["notebook"]: r for r in csv.DictReader(f) if r.get("notebook")}
    rows[row["notebook"]] = row
    write_csv_atomic(times_path, [rows[k] for k in sorted(rows)])


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def sweep_stale(folders: list[Path], *, recursive: bool = True) -> list[Path]:
    """Remove temporary files and folders of atomic writes whose writing process is gone.

    A process killed outright (SIGKILL, power loss) leaves its ``.<name>.tmp-<pid>…`` behind; the
    final names are never touched. Only processes of this machine are checked, so point this at
    the output folders of runs on this machine (not at a cache shared by a cluster).

    Args:
        folders: folders to clean (missing ones are skipped).
        recursive: also look in sub-folders.

    Returns:
        The paths removed.
    """
    removed = []
    for folder in folders:
        if not folder.is_dir():
            continue
        candidates = folder.rglob(".*.tmp-*") if recursive else folder.glob(".*.tmp-*")
        for path in sorted(candidates):
            match = _TMP_NAME.match(path.name)
            if match is None or _alive(int(match["pid"])) or not path.exists():
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def describe_failure(exc: BaseException) -> str:
    """One line naming the failing cell and error."""
    if isinstance(exc, pm.PapermillExecutionError):
        return f"cell {exc.cell_index} (In [{exc.exec_count}]): {exc.ename}: {exc.evalue}"
    return f"{type(exc).__name__}: {exc}"


def _interrupted(exc: BaseException) -> bool:
    """A KeyboardInterrupt here or in the kernel (Ctrl-C reaches the whole process group)."""
    return isinstance(exc, KeyboardInterrupt) or (
        isinstance(exc, pm.PapermillExecutionError) and exc.ename == "KeyboardInterrupt")


def run_sequence(args: argparse.Namespace) -> int:
    """``make run`` / ``make refresh-notebooks``: the notebooks in order (see the module doc)."""
    notebooks = find_notebooks(args.only, args.notebooks)
    if not notebooks:
        print(f"run_notebooks: no {args.notebooks}/NN_*.ipynb to run")
        return 0
    out = Path(os.environ.get("KIT_OUTPUT", ROOT))  # as kit.paths.output_root()
    runs_dir = out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    times_path = out / "results" / ("refresh_times.csv" if args.in_place else "run_times.csv")
    # Each notebook's kernel counts its passes into runs/<stem>.passes.json (kit.passes; read by
    # benchmarks/make_run_bound.py --logs runs). This process must not count, or its own empty
    # counts, written when it exits, would replace the last kernel's: drop the variable before
    # anything here imports kit, and set it for one kernel at a time.
    os.environ.pop(PASS_LOG, None)
    from kit.cache import remove_partial

    # kit's own temporaries (.<name>.tmp-<uuid>) in this run's output folders: their writer was a
    # run killed earlier (one run per KIT_OUTPUT at a time), however young they are
    stale = [p for d in (out / "results", out / "figures") for p in remove_partial(d, older_than=0)]
    for path in stale + sweep_stale([runs_dir]) + sweep_stale([args.notebooks], recursive=False):
        print(f"run_notebooks: removed {path} (left by a killed run)", flush=True)

    total = 0.0
    for nb in notebooks:
        params, params_path = ({}, None) if args.in_place else load_params(nb.stem, args.params)
        # Execute into a temporary file next to the destination; rename it once the notebook ran
        # through, so an interrupted run never leaves a partial notebook under the final name.
        tmp = (nb.parent if args.in_place else runs_dir) / f".{nb.stem}.tmp-{os.getpid()}.ipynb"
        final = nb if args.in_place else runs_dir / f"{nb.stem}.ipynb"
        failed = runs_dir / f"{nb.stem}.failed.ipynb"
        label = params_path.relative_to(params_path.parents[1]).as_posix() if params_path else (
            "defaults")
        print(f"[{nb.stem}] running ({label}) -> {final}", flush=True)

        passes = runs_dir / f"{nb.stem}.passes.json"
        passes.unlink(missing_ok=True)  # never an earlier run's counts under this run's name
        start = time.perf_counter()
        os.environ[PASS_LOG] = str(passes)  # this notebook's kernel only
        try:
            pm.execute_notebook(
                str(nb),
                str(tmp),
                parameters=params,
                kernel_name="python3",
                cwd=str(ROOT),
                progress_bar=False,
            )
        except BaseException as exc:
            seconds = time.perf_counter() - start
            if tmp.exists():
                os.replace(tmp, failed)
            record(
                times_path,
                dict(notebook=nb.stem, params=label, seconds=f"{seconds:.1f}", status="failed"),
            )
            print(
                f"\nFAILED: {nb} after {seconds:.1f} s\n"
                f"  {describe_failure(exc)}\n"
                f"  executed notebook with the traceback: {failed}\n"
                f"  notebooks after it were not run.",
                file=sys.stderr,
            )
            return 130 if _interrupted(exc) else 1
        finally:
            os.environ.pop(PASS_LOG, None)
        seconds = time.perf_counter() - start
        total += seconds
        if args.in_place:
            os.chmod(tmp, nb.stat().st_mode & 0o777)
        os.replace(tmp, final)
        failed.unlink(missing_ok=True)
        record(
            times_path, dict(notebook=nb.stem, params=label, seconds=f"{seconds:.1f}", status="ok")
        )
        print(f"[{nb.stem}] ok in {seconds:.1f} s", flush=True)

    print(f"run_notebooks: {len(notebooks)} notebook(s) in {total:.1f} s; times in {times_path}")
    if not args.in_place:
        from summary import write_summary  # sibling script; imports kit (and torch) only here

        print(f"run_notebooks: summary in {write_summary(root=out)}")
    return 0


# ---------------------------------------------------------------------------------------------
# Grids


@dataclass(frozen=True)
class GridRun:
    """One point of a grid: its folder name, grid values and the notebook's full parameters."""

    run: str
    values: dict
    params: dict


@dataclass(frozen=True)
class Grid:
    """A parsed grid file (:func:`load_grid`)."""

    name: str
    notebook: Path
    columns: tuple[str, ...]
    runs: tuple[GridRun, ...]


def _fail(path: Path, message: str) -> SystemExit:
    return SystemExit(f"run_notebooks: {path}: {message}")


def _declared(notebook: Path) -> dict:
    """Parameter name -> default value of the notebook's ``parameters`` cell (papermill's view)."""
    defaults = {}
    for name, info in pm.inspect_notebook(str(notebook)).items():
        try:
            defaults[name] = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError):
            defaults[name] = info["default"]  # an expression: kept as its source text
    return defaults


def _label(value) -> str:
    """A short, file-name-safe rendering of a grid value."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_")[:32] or "_"


def load_grid(path: Path, notebook_dir: Path = NOTEBOOK_DIR) -> Grid:
    """Parse and check a grid file; every error names the file and what is wrong.

    Args:
        path: the YAML grid file (keys :data:`GRID_KEYS`; see the module doc).
        notebook_dir: where ``notebook`` is looked up.

    Returns:
        The grid with one :class:`GridRun` per point of the cartesian product, in file order.

    Raises:
        SystemExit: unknown keys or parameters (listing the valid ones), a missing notebook, a grid
            axis that is not a non-empty list, or a ``name.key`` axis whose parameter is no dict.
    """
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"run_notebooks: --grid: no grid file {path}")
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(spec, dict):
        raise _fail(path, f"expected a mapping with keys {list(GRID_KEYS)}, "
                          f"got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(GRID_KEYS))
    if unknown:
        raise _fail(path, f"unknown key(s) {unknown}; valid keys: {list(GRID_KEYS)}")
    available = sorted(p.stem for p in notebook_dir.glob("*.ipynb") if not p.name.startswith("."))
    stem = Path(str(spec.get("notebook", ""))).stem
    notebook = notebook_dir / f"{stem}.ipynb"
    if not stem or not notebook.is_file():
        raise _fail(path, f"notebook: expected one of {available}, got {spec.get('notebook')!r}")
    axes = spec.get("grid")
    if not isinstance(axes, dict) or not axes:
        raise _fail(path, "grid: expected a non-empty mapping of parameter names to lists")

    defaults = _declared(notebook)
    valid = sorted(defaults)
    base: dict = {}
    if spec.get("base"):
        base_path = Path(spec["base"])
        base_path = base_path if base_path.is_absolute() else ROOT / base_path
        if not base_path.is_file():
            raise _fail(path, f"base: no parameters file {base_path}")
        base = yaml.safe_load(base_path.read_text(encoding="utf-8")) or {}
        if not isinstance(base, dict):
            raise _fail(path, f"base: {base_path} must hold a mapping of parameter names to values")
    fixed = spec.get("parameters") or {}
    if not isinstance(fixed, dict):
        raise _fail(path, "parameters: expected a mapping of parameter names to values")

    names = [*base, *fixed, *(str(k).split(".", 1)[0] for k in axes)]
    bad = sorted({n for n in names if n not in defaults})
    if bad:
        raise _fail(path, f"unknown parameter(s) {bad} of notebooks/{notebook.name}; "
                          f"valid parameters: {valid}")
    start = {**base, **fixed}
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise _fail(path, f"grid: {key}: expected a non-empty list of values, got {values!r}")
        name = str(key).split(".", 1)[0]
        if "." in str(key) and not isinstance(start.get(name, defaults[name]), dict):
            raise _fail(path, f"grid: {key}: {name!r} is not a dict parameter "
                              f"(its value is {start.get(name, defaults[name])!r})")

    keys = [str(k) for k in axes]
    runs = []
    for i, point in enumerate(itertools.product(*axes.values())):
        values = dict(zip(keys, point, strict=True))
        params = dict(start)
        for key, value in values.items():
            name, _, sub = key.partition(".")
            if sub:
                params[name] = {**params.get(name, defaults[name]), sub: value}
            else:
                params[name] = value
        run = f"{i:03d}-" + "-".join(f"{k}={_label(v)}" for k, v in values.items())
        runs.append(GridRun(run=run, values=values, params=params))
    return Grid(name=path.stem, notebook=notebook, columns=tuple(keys), runs=tuple(runs))


def execute_grid_run(task: dict) -> dict:
    """Run one grid point (on a Dask worker): papermill in a private folder, files sent back.

    Self-contained (imports inside) so that Dask can ship it by value to workers that do not have
    this script. The notebook runs in a subprocess whose ``KIT_OUTPUT`` is a fresh temporary folder,
    without ``KIT_SCHEDULER`` (a run inside a cluster task computes in-process, never waiting on the
    cluster it occupies) and with ``OMP_NUM_THREADS`` shared out between the worker's threads unless
    it is set.

    Args:
        task: ``run``, ``stem``, ``source`` (the notebook's JSON text), ``params``, ``cwd``.

    Returns:
        ``run``, ``status`` (``"ok"`` / ``"failed"``), ``seconds``, ``worker``, ``error`` (the last
        lines of papermill's stderr when it failed) and ``files``: relative path -> bytes of
        everything the run wrote (``results/``, ``figures/``, ``runs/<stem>.ipynb``).
    """
    import os
    import shutil
    import socket
    import subprocess
    import sys
    import tempfile
    import time
    from pathlib import Path

    import yaml

    work = Path(tempfile.mkdtemp(prefix="kit-grid-"))
    try:
        out = work / "out"
        (out / "runs").mkdir(parents=True)
        source = work / f"{task['stem']}.ipynb"
        source.write_text(task["source"], encoding="utf-8")
        params = work / "params.yaml"
        params.write_text(yaml.safe_dump(task["params"], sort_keys=False), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k not in ("KIT_SCHEDULER", "MPLBACKEND")}
        env["KIT_OUTPUT"] = str(out)
        if "OMP_NUM_THREADS" not in env:
            try:
                from distributed import get_worker

                threads = get_worker().state.nthreads
            except (ImportError, ValueError, AttributeError):  # not on a worker
                threads = 1
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // max(1, threads)))
        cwd = task["cwd"] if os.path.isdir(task["cwd"]) else str(work)
        cmd = [sys.executable, "-m", "papermill", str(source),
               str(out / "runs" / f"{task['stem']}.ipynb"), "-f", str(params), "-k", "python3",
               "--cwd", cwd, "--no-progress-bar"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        files = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
                 if p.is_file() and not p.name.startswith(".")}
        error = "" if proc.returncode == 0 else "\n".join(proc.stderr.strip().splitlines()[-8:])
        return dict(run=task["run"], status="ok" if proc.returncode == 0 else "failed",
                    seconds=seconds, worker=socket.gethostname(), error=error, files=files)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def write_run_folder(folder: Path, files: dict[str, bytes], params: dict) -> Path:
    """Write a run's files to ``folder`` atomically: a temporary sibling folder, then renames.

    An existing ``folder`` is replaced; readers see the old folder, briefly none, or the new one,
    never a mix. ``params.yaml`` records the run's parameters (``--resume`` compares them).
    """
    token = os.urandom(4).hex()
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}-{token}")
    for rel, data in files.items():
        target = tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    if folder.exists():
        old = folder.with_name(f".{folder.name}.tmp-{os.getpid()}-{token}0")
        os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, folder)
    return folder


def _done(folder: Path, params: dict) -> bool:
    """Whether ``folder`` holds a finished run with exactly these parameters (``--resume``)."""
    saved = folder / "params.yaml"
    return saved.is_file() and yaml.safe_load(saved.read_text(encoding="utf-8")) == params


def _cell(value):
    """A grid value as a table cell: scalars as they are, lists and dicts as JSON."""
    return value if isinstance(value, (str, int, float, bool)) or value is None else json.dumps(
        value)


def gather(grid: Grid, grid_dir: Path, rows: list[dict]) -> list[Path]:
    """``grid.csv`` and one ``results/<table>.csv`` per results table of the runs that succeeded.

    Returns:
        The paths written.
    """
    import pandas as pd

    written = []
    fields = ["run", *grid.columns, "status", "seconds", "worker", "error"]
    by_run = {r.run: r for r in grid.runs}
    table_rows = [{**{k: _cell(v) for k, v in by_run[row["run"]].values.items()}, **row}
                  for row in rows]
    write_csv_atomic(grid_dir / "grid.csv", table_rows, fields)
    written.append(grid_dir / "grid.csv")
    tables: dict[str, list] = {}
    for row in rows:
        if row["status"] not in ("ok", "skipped"):
            continue
        run = by_run[row["run"]]
        for csv_path in sorted((grid_dir / run.run / "results").glob("*.csv")):
            df = pd.read_csv(csv_path)
            lead = {"run": run.run, **{k: _cell(v) for k, v in run.values.items()}}
            for j, (col, value) in enumerate(lead.items()):
                df.insert(j, col if col not in df.columns else f"grid:{col}", value)
            tables.setdefault(csv_path.name, []).append(df)
    for name, frames in tables.items():
        path = grid_dir / "results" / name
        write_atomic(path, pd.concat(frames, ignore_index=True).to_csv(index=False).encode())
        written.append(path)
    return written


def _run_on(client, grid: Grid, todo: list[GridRun], grid_dir: Path) -> list[dict]:
    """Submit ``todo`` to ``client``; write each run's folder as it finishes; its table rows."""
    from dask.distributed import as_completed

    if __name__ != "__main__":  # imported (tests): ship execute_grid_run by value all the same
        import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])
    # The notebook travels with each task without its outputs (papermill recomputes them), so
    # that a notebook with figures does not make every task megabytes large.
    nb = json.loads(grid.notebook.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    source = json.dumps(nb)
    futures = {
        client.submit(execute_grid_run,
                      dict(run=r.run, stem=grid.notebook.stem, source=source, params=r.params,
                           cwd=str(ROOT)),
                      key=f"grid-{grid.name}-{r.run}-{os.urandom(4).hex()}", pure=False,
                      retries=1): r
        for r in todo
    }
    rows = []
    for future in as_completed(futures):
        run = futures[future]
        try:
            result = future.result()
        except Exception as exc:  # the task itself failed (after Dask's retries)
            result = dict(run=run.run, status="failed", seconds=0.0, worker="", files={},
                          error=f"{type(exc).__name__}: {exc}")
        # Written as each run finishes: an interrupted grid keeps what finished (--resume).
        folder = grid_dir / (run.run if result["status"] == "ok" else f"{run.run}.failed")
        write_run_folder(folder, result["files"], run.params)
        rows.append(dict(run=run.run, status=result["status"],
                         seconds=f"{result['seconds']:.1f}", worker=result["worker"],
                         error=result["error"]))
        print(f"[{run.run}] {result['status']} in {result['seconds']:.1f} s"
              + (f"\n  {result['error']}" if result["error"] else ""), flush=True)
    return rows


def run_grid(args: argparse.Namespace) -> int:
    """``--grid``: every point of the grid on the cluster, gathered (see the module doc)."""
    grid = load_grid(args.grid, args.notebooks)  # all checks before anything connects or runs
    scheduler = args.scheduler or os.environ.get("KIT_SCHEDULER") or "local"
    out = Path(os.environ.get("KIT_OUTPUT", ROOT))
    grid_dir = out / "grids" / grid.name
    rows, todo = [], []
    for run in grid.runs:
        if args.resume and _done(grid_dir / run.run, run.params):
            rows.append(dict(run=run.run, status="skipped", seconds="", worker="", error=""))
        else:
            todo.append(run)
    print(f"run_notebooks: grid {grid.name}: {len(grid.runs)} run(s) of {grid.notebook.name} "
          f"({len(grid.runs) - len(todo)} already done)"
          + (f" on {scheduler}" if todo else ""), flush=True)
    start = time.perf_counter()
    if todo:
        from kit import distributed  # dask: only for grids

        try:
            client = distributed.get_client(scheduler)
        except ValueError as exc:
            raise SystemExit(f"run_notebooks: --scheduler: {exc}") from None
        grid_dir.mkdir(parents=True, exist_ok=True)
        sweep_stale([grid_dir], recursive=False)
        from kit.cache import remove_partial

        remove_partial(grid_dir / "results", older_than=0)  # gathered tables: one driver per grid
        try:
            rows += _run_on(client, grid, todo, grid_dir)
        finally:
            client.close()  # a "local" client owns its LocalCluster: this stops it too
    order = {r.run: i for i, r in enumerate(grid.runs)}
    rows.sort(key=lambda row: order[row["run"]])
    written = gather(grid, grid_dir, rows)
    failed = [row["run"] for row in rows if row["status"] == "failed"]
    print(f"run_notebooks: grid {grid.name}: {len(rows) - len(failed)} ok, {len(failed)} failed "
          f"in {time.perf_counter() - start:.1f} s; tables: "
          + ", ".join(str(p.relative_to(out)) for p in written))
    if failed:
        print(f"run_notebooks: failed runs (their notebooks are in <run>.failed/): {failed}",
              file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated two-digit prefixes or stems, e.g. 00,03")
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="re-execute notebooks/ in place at their default parameters (make refresh-notebooks)",
    )
    parser.add_argument("--grid", type=Path,
                        help="a grid file, e.g. params/grids/04_window_seed.yaml")
    parser.add_argument("--scheduler", help="with --grid: local or tcp://host:port "
                                            "(default: KIT_SCHEDULER, else a LocalCluster)")
    parser.add_argument("--resume", action="store_true",
                        help="with --grid: skip runs whose folder holds the same parameters")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOK_DIR, help=argparse.SUPPRESS)
    parser.add_argument("--params", type=Path, default=PARAMS_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.grid is not None:
        if args.only or args.in_place:
            parser.error("--grid runs one grid file: it takes neither --only nor --in-place")
        return run_grid(args)
    if args.scheduler or args.resume:
        parser.error("--scheduler and --resume go with --grid")
    return run_sequence(args)


if __name__ == "__main__":
    sys.exit(main())
