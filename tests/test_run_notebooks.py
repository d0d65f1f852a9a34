"""``tools/run_notebooks.py``: interrupted runs leave no half-written file, and notebook grids.

The notebooks here are tiny ones the tests write themselves (a few cells that save results, a
figure and a cache entry through kit), driven through the tool in a subprocess with every output
folder (``KIT_OUTPUT``, ``KIT_CACHE``) in ``tmp_path``; every wait is bounded.

* **Interrupted** ``make run``: a run interrupted by SIGINT (Ctrl-C: the whole process group),
  then one killed by SIGKILL, each while a cell rewrites a result table and a cache entry in a
  loop; after each, every file under its final name in ``results/``, ``figures/``, ``runs/`` and
  the cache is complete, and a rerun completes with the results an uninterrupted run gives and no
  temporary file left over.
* **Grids**: the cartesian product on a LocalCluster of 2 workers, each run in its own folder, the
  results gathered with the grid's parameters as columns; an unknown parameter and an unreachable
  scheduler fail before anything runs, with messages naming them.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("papermill")

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "run_notebooks.py"
STEM = "00_tiny"
ROWS = 5000
PNG_END = b"IEND\xaeB`\x82"

sys.path.insert(0, str(ROOT / "tools"))
import run_notebooks  # noqa: E402  (a script in tools/, not a package)

# The parameters cell, then: a small table and a figure; a marker (the test interrupts after it)
# and a loop that keeps rewriting a table and a cache entry for `delay` seconds, so that a kill
# lands mid-write; the final table.
CELLS = [
    "delay = 0.0\nvalue = 1",
    "import time\n"
    "from pathlib import Path\n"
    "import matplotlib\n"
    "matplotlib.use('Agg')\n"
    "import matplotlib.pyplot as plt\n"
    "import pandas as pd\n"
    "import torch\n"
    "from kit import cache, paths, viz\n"
    f"big = pd.DataFrame({{'i': range({ROWS}), 'v': [value * i for i in range({ROWS})]}})\n"
    "paths.save_table(big.head(5), 'tiny_first')\n"
    "fig, ax = plt.subplots()\n"
    "ax.plot([0, 1], [0, value])\n"
    f"viz.save_fig(fig, 'line', notebook='{STEM}')",
    "(paths.output_root() / 'started').touch()\n"
    "end = time.monotonic() + delay\n"
    "while time.monotonic() < end:\n"
    "    paths.save_table(big, 'tiny_big')\n"
    f"    cache.write(torch.arange({ROWS}) * value, cache.path('tiny', 'entry.pt'))",
    "paths.save_table(big, 'tiny_big')\n"
    f"cache.write(torch.arange({ROWS}) * value, cache.path('tiny', 'entry.pt'))",
]


def write_notebook(folder: Path, stem: str = STEM, cells: list[str] = CELLS) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture
def setup(tmp_path):
    """Notebook and params folders, and the environment the tool runs with."""
    nbs, params = tmp_path / "notebooks", tmp_path / "params"
    write_notebook(nbs)
    params.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "KIT_SCHEDULER"}
    env.update(KIT_OUTPUT=str(tmp_path / "out"), KIT_CACHE=str(tmp_path / "cache"),
               MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    return dict(tmp=tmp_path, nbs=nbs, params=params, env=env, out=tmp_path / "out",
                cache=tmp_path / "cache")


def start(s: dict, delay: float) -> subprocess.Popen:
    """Start the tool on the tiny notebook (its own session, so a signal can reach the group)."""
    (s["params"] / f"{STEM}.yaml").write_text(f"delay: {delay}\n")
    log = (s["tmp"] / "log.txt").open("ab")
    # SIGINT back to its default: a shell without job control starts background jobs (CI under
    # nohup/&) with SIGINT ignored, and an ignored disposition is inherited, so Ctrl-C would
    # never reach the tool; a user's terminal delivers it
    return subprocess.Popen(
        [sys.executable, str(TOOL), "--notebooks", str(s["nbs"]), "--params", str(s["params"])],
        env=s["env"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def finish(s: dict, proc: subprocess.Popen, timeout: float = 90) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail(f"run_notebooks did not finish in {timeout} s:\n{log_text(s)}")


def log_text(s: dict) -> str:
    return (s["tmp"] / "log.txt").read_text(errors="replace")[-3000:]


def interrupt(s: dict, sig: int) -> int:
    """Start a long run, send ``sig`` to its process group once the loop runs; its exit code."""
    marker = s["out"] / "started"
    marker.unlink(missing_ok=True)
    proc = start(s, delay=120)
    deadline = time.monotonic() + 90
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"the tiny notebook never reached its loop:\n{log_text(s)}")
        time.sleep(0.1)
    time.sleep(1.0)  # some rewrites of the table and the cache entry
    os.killpg(proc.pid, sig)
    return finish(s, proc, timeout=60)


def final_files(s: dict) -> list[Path]:
    """Files under their final names (not ``.``-prefixed temporaries) in the output folders."""
    found = []
    for folder in (s["out"] / "results", s["out"] / "figures", s["out"] / "runs", s["cache"]):
        found += [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")]
    return found


def temporaries(s: dict) -> list[Path]:
    return [p for folder in (s["out"] / "results", s["out"] / "figures", s["out"] / "runs")
            for p in folder.rglob(".*")]


def assert_complete(s: dict) -> None:
    """Every final-name file reads back whole: tables, figures, notebooks, cache entries."""
    import pandas as pd

    from kit import cache

    for path in final_files(s):
        if path.suffix == ".csv":
            df = pd.read_csv(path)
            if path.stem == "tiny_big":
                assert len(df) == ROWS, f"{path}: {len(df)} rows of {ROWS}"
        elif path.suffix == ".png":
            assert path.read_bytes().endswith(PNG_END), f"{path}: truncated PNG"
        elif path.suffix == ".ipynb":
            nbformat.read(path, as_version=4)
        elif path.suffix == ".pt":
            assert cache.read(path) is not None, f"{path}: corrupted cache entry"


def results(s: dict) -> dict[str, bytes]:
    res = s["out"] / "results"
    return {p.name: p.read_bytes() for p in sorted(res.glob("tiny_*.csv"))}


def test_interrupted_runs_leave_complete_files_and_rerun_to_the_same_results(setup):
    import pandas as pd

    s = setup
    rc = interrupt(s, signal.SIGINT)
    assert rc == 130, log_text(s)
    assert_complete(s)
    # the notebook did not run through: no runs/<stem>.ipynb, the partial one under .failed
    assert not (s["out"] / "runs" / f"{STEM}.ipynb").exists()
    assert (s["out"] / "runs" / f"{STEM}.failed.ipynb").exists()
    assert "failed" in (s["out"] / "results" / "run_times.csv").read_text()

    interrupt(s, signal.SIGKILL)
    assert_complete(s)  # whatever the kill left: temporaries at most, never a partial file

    assert finish(s, start(s, delay=0)) == 0, log_text(s)
    assert_complete(s)
    assert temporaries(s) == [], "a killed run's temporary files outlived the rerun"
    assert (s["out"] / "runs" / f"{STEM}.ipynb").exists()
    assert not (s["out"] / "runs" / f"{STEM}.failed.ipynb").exists()
    assert "ok" in (s["out"] / "results" / "run_times.csv").read_text()
    # the same results as an uninterrupted run: the tables the notebook defines (value = 1)
    res = s["out"] / "results"
    assert set(results(s)) == {"tiny_first.csv", "tiny_big.csv"}
    big = pd.read_csv(res / "tiny_big.csv", index_col=0)
    assert list(big["i"]) == list(range(ROWS)) and (big["v"] == big["i"]).all()
    assert pd.read_csv(res / "tiny_first.csv", index_col=0).equals(big.head(5))
    from kit import cache

    assert cache.read(s["cache"] / "tiny" / "entry.pt").tolist() == list(range(ROWS))


def test_each_kernel_counts_its_passes_and_the_tool_itself_never_does(setup):
    # make run's pass logs (benchmarks/make_run_bound.py --logs runs): one per notebook, from its
    # kernel; a KIT_PASS_LOG inherited by the tool must neither receive the tool's own (empty)
    # counts nor replace the kernel's
    s = setup
    write_notebook(s["nbs"], cells=["value = 3", "import kit\nfrom kit import passes\n"
                                    "passes.record('classifier_forward', value)"])
    stray = s["tmp"] / "stray.json"
    s["env"]["KIT_PASS_LOG"] = str(stray)
    assert finish(s, start(s, delay=0)) == 0, log_text(s)
    counts = json.loads((s["out"] / "runs" / f"{STEM}.passes.json").read_text())
    assert counts == {"classifier_forward": 3, "classifier_backward": 0, "inpainter": 0,
                      "opencv": 0}
    assert not stray.exists()


def test_sweep_stale_removes_only_temporaries_of_dead_processes(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    keep = [tmp_path / "a.csv", tmp_path / f".a.csv.tmp-{os.getpid()}-ab12",
            tmp_path / ".notes.txt"]
    gone = [tmp_path / "sub" / f".a.csv.tmp-{dead.pid}-ab12",
            tmp_path / f".00_x.tmp-{dead.pid}.ipynb"]
    for p in keep + gone:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
    (tmp_path / f".007-run.tmp-{dead.pid}-ff00").mkdir()  # a grid run's temporary folder
    removed = run_notebooks.sweep_stale([tmp_path])
    assert sorted(removed) == sorted([*gone, tmp_path / f".007-run.tmp-{dead.pid}-ff00"])
    assert all(p.exists() for p in keep)


# ---------------------------------------------------------------------------------------------
# Grids


def write_grid(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    return path


def test_load_grid_is_the_cartesian_product_with_dotted_dict_keys(tmp_path):
    nbs = tmp_path / "notebooks"
    nb = write_notebook(nbs)
    src = nbformat.read(nb, as_version=4)
    src.cells[0].source += "\nsweep = {'window': [5], 'seed': [0]}"
    nbformat.write(src, nb)
    grid = run_notebooks.load_grid(
        write_grid(tmp_path, {"notebook": STEM, "parameters": {"delay": 0},
                              "grid": {"value": [1, 2, 3], "sweep.window": [[5, 8], [11]]}}),
        nbs)
    assert grid.columns == ("value", "sweep.window")
    assert len(grid.runs) == 6
    assert len({r.run for r in grid.runs}) == 6  # one folder per run
    assert grid.runs[1].params == {"delay": 0, "value": 1,
                                   "sweep": {"window": [11], "seed": [0]}}
    assert [r.values["value"] for r in grid.runs] == [1, 1, 2, 2, 3, 3]


@pytest.mark.parametrize(("spec", "expected"), [
    ({"notebook": STEM, "grid": {"windw": [1, 2]}}, "unknown parameter(s) ['windw']"),
    ({"notebook": STEM, "parameters": {"nope": 1}, "grid": {"value": [1]}},
     "unknown parameter(s) ['nope']"),
    ({"notebook": STEM, "grid": {"value.key": [1]}}, "is not a dict parameter"),
    ({"notebook": STEM, "grid": {"value": 3}}, "expected a non-empty list"),
    ({"notebook": "99_none", "grid": {"value": [1]}}, f"expected one of ['{STEM}']"),
    ({"notebook": STEM, "grids": {"value": [1]}}, "unknown key(s) ['grids']"),
])
def test_bad_grid_files_fail_naming_the_problem(tmp_path, spec, expected):
    nbs = tmp_path / "notebooks"
    write_notebook(nbs)
    with pytest.raises(SystemExit) as err:
        run_notebooks.load_grid(write_grid(tmp_path, spec), nbs)
    assert expected in str(err.value)
    if "parameter(s)" in expected:
        assert "valid parameters: ['delay', 'value']" in str(err.value)


def test_grid_with_an_unknown_parameter_fails_before_connecting(tmp_path, monkeypatch):
    nbs = tmp_path / "notebooks"
    write_notebook(nbs)
    grid = write_grid(tmp_path, {"notebook": STEM, "grid": {"windw": [1]}})
    monkeypatch.setenv("KIT_OUTPUT", str(tmp_path / "out"))
    with pytest.raises(SystemExit, match=r"unknown parameter\(s\) \['windw'\]"):
        # an address nothing listens on: the grid check must come first
        run_notebooks.main(["--grid", str(grid), "--notebooks", str(nbs),
                            "--scheduler", "tcp://127.0.0.1:9"])
    assert not (tmp_path / "out" / "grids").exists()


def test_grid_with_an_unreachable_scheduler_names_the_address(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    from kit import distributed

    nbs = tmp_path / "notebooks"
    write_notebook(nbs)
    grid = write_grid(tmp_path, {"notebook": STEM, "grid": {"value": [1]}})
    monkeypatch.setenv("KIT_OUTPUT", str(tmp_path / "out"))
    # a refused connection still waits out get_client's timeout: keep it short here
    monkeypatch.setattr(distributed, "get_client",
                        functools.partial(distributed.get_client, timeout=1.0))
    with pytest.raises(SystemExit, match=r"--scheduler: .*'tcp://127\.0\.0\.1:9'"):
        run_notebooks.main(["--grid", str(grid), "--notebooks", str(nbs),
                            "--scheduler", "tcp://127.0.0.1:9"])
    assert not list((tmp_path / "out" / "grids" / "grid").glob("0*"))


def test_run_folders_are_written_whole_and_gathered_with_the_grid_columns(tmp_path):
    import pandas as pd

    nbs = tmp_path / "notebooks"
    write_notebook(nbs)
    grid = run_notebooks.load_grid(
        write_grid(tmp_path, {"notebook": STEM, "grid": {"value": [2, 3], "delay": [[0]]}}), nbs)
    out = tmp_path / "grid"
    rows = []
    for run in grid.runs:
        table = f"i,v\n0,0\n1,{run.values['value']}\n".encode()
        files = {"results/t.csv": table}
        if run is grid.runs[1]:
            files["results/old.csv"] = b"a\n1\n"
        run_notebooks.write_run_folder(out / run.run, files, run.params)
        rows.append(dict(run=run.run, status="ok", seconds="1.0", worker="w", error=""))
    # rewriting a folder replaces it whole (no file of the old one survives)
    run_notebooks.write_run_folder(out / grid.runs[1].run,
                                   {"results/t.csv": b"i,v\n0,0\n1,3\n"}, grid.runs[1].params)
    assert not (out / grid.runs[1].run / "results" / "old.csv").exists()
    assert run_notebooks._done(out / grid.runs[0].run, grid.runs[0].params)
    assert not run_notebooks._done(out / grid.runs[0].run, grid.runs[1].params)
    written = run_notebooks.gather(grid, out, rows)
    assert written == [out / "grid.csv", out / "results" / "t.csv"]
    gathered = pd.read_csv(out / "results" / "t.csv")
    assert list(gathered.columns) == ["run", "value", "delay", "i", "v"]
    assert list(gathered["value"]) == [2, 2, 3, 3]
    assert list(gathered["delay"]) == ["[0]"] * 4  # a list value as JSON
    assert (gathered["v"] == gathered["value"] * gathered["i"]).all()
    assert not list(out.glob(".*"))  # no temporary folder left


@pytest.mark.slow  # a LocalCluster and two notebook kernels: about a minute of CPU on 2 cores
def test_grid_runs_on_a_local_cluster_each_in_its_own_folder_and_gathers_the_results(tmp_path):
    pytest.importorskip("distributed")
    import pandas as pd

    nbs = tmp_path / "notebooks"
    write_notebook(nbs)
    grid = write_grid(tmp_path, {"notebook": STEM, "parameters": {"delay": 0},
                                 "grid": {"value": [2, 3], "delay": [0]}})
    env = {k: v for k, v in os.environ.items() if k != "KIT_SCHEDULER"}
    env.update(KIT_OUTPUT=str(tmp_path / "out"), KIT_CACHE=str(tmp_path / "cache"),
               OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(TOOL), "--grid", str(grid), "--notebooks", str(nbs),
           "--scheduler", "local"]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]

    out = tmp_path / "out" / "grids" / "grid"
    table = pd.read_csv(out / "grid.csv")
    assert list(table.columns[:3]) == ["run", "value", "delay"]
    assert (table["status"] == "ok").all() and len(table) == 2
    folders = sorted(p for p in out.iterdir() if p.is_dir() and p.name[0].isdigit())
    assert [p.name for p in folders] == list(table["run"])
    for folder, value in zip(folders, table["value"], strict=True):
        assert (folder / "runs" / f"{STEM}.ipynb").is_file()
        assert (folder / "figures" / STEM / "line.png").read_bytes().endswith(PNG_END)
        big = pd.read_csv(folder / "results" / "tiny_big.csv")
        assert (big["v"] == value * big["i"]).all()  # each run saw its own parameters
    gathered = pd.read_csv(out / "results" / "tiny_big.csv")
    assert list(gathered.columns[:3]) == ["run", "value", "delay"]
    assert len(gathered) == 2 * ROWS
    assert (gathered["v"] == gathered["value"] * gathered["i"]).all()
    assert not list(out.glob(".*"))  # no temporary folder left

    # --resume: every run is done with the same parameters, nothing reruns
    again = subprocess.run([*cmd, "--resume"], env=env, cwd=ROOT, capture_output=True, text=True,
                           timeout=180, check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (pd.read_csv(out / "grid.csv")["status"] == "skipped").all()


@pytest.mark.parametrize("path", sorted((ROOT / "params" / "grids").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_shipped_grids_name_parameters_their_notebook_declares(path):
    grid = run_notebooks.load_grid(path)  # raises, naming the parameter, if one was renamed
    assert len({r.run for r in grid.runs}) == len(grid.runs) > 1
