"""How far is ``make run`` from what its arithmetic requires? (not a test; issue 14)

``make run``'s cost is a sum of passes: classifier forward passes (every scored composite, every
feature vector), backward passes (every gradient through the classifier), inpainter passes (every
generative fill) and OpenCV inpaintings (Telea, NS). This script, in one run:

1. **Counts** them per notebook (:mod:`kit.passes`): each notebook of ``make run`` is executed by
   papermill at its ``params/<stem>.yaml`` configuration with its image counts scaled down by a
   factor ``s`` (and again at ``2s``), in order, sharing one fresh cache as ``make run`` does (02
   reuses the maps 01 computed), with ``KIT_PASS_LOG`` set so that each kernel writes its counts.
   Every count is extrapolated linearly to ``s = 1`` from the two runs (the fit's intercept is
   printed: the part that does not grow with the images). The scaled image counts are integers,
   so nothing is rounded.
2. **Times** each kind of pass at its best batch size, in this process: the world classifier's
   forward (under ``inference_mode``, channels-last as kit feeds it), its forward + backward to the
   input, the completion inpainter, OpenCV Telea on an object-sized hole; the best per-image time
   over batch sizes 1-512 (best of ``--repeat``).
3. Prints **bound = Σ passes × best time per pass** per notebook against ``make run``'s measured
   wall time (``results/run_times.csv``, written by ``make run``) and the ratio, the issue's goal
   being ``make run / bound <= 1.5`` per notebook.

The bound ignores everything that is not one of these passes (data generation, SLIC, ridge fits,
bookkeeping): it is the time no implementation of this configuration can beat on this machine
with these models. ``--times`` must come from a ``make run`` at the same configuration (the
params files and kit as they are): the table says which commit's times it read.

Usage::

    python benchmarks/make_run_bound.py --only 01,02          # counts at s and 2s, then the table
    python benchmarks/make_run_bound.py --out benchmarks/results/make_run_bound.md
    python benchmarks/make_run_bound.py --logs runs    # make run's own counts (below)

``--logs DIR`` skips step 1: the counts are the ones ``make run`` itself wrote, one JSON file per
notebook (``runs/<stem>.passes.json``, which ``tools/run_notebooks.py`` has every kernel write;
also ``DIR/<stem>.json`` or ``DIR/<NN>.json``), so they are exact for that run, maps served from
the cache not counted, with nothing extrapolated.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kit.passes import KINDS  # noqa: E402

SCALES: dict[str, tuple[Fraction, tuple[str, ...]]] = {
    "00_world": (Fraction(1, 100), ("n_eval", "n_patch_images")),
    "01_counterfactual_plausibility": (Fraction(1, 16), ("n_images",)),
    "02_localization": (Fraction(1, 16), ("n_images", "n_val", "n_continuum")),
    "03_deletion": (Fraction(1, 16), ("n_images",)),
    "04_sam_sensitivity": (Fraction(1, 16), ("n_images",)),
    "05_gad_class_distancing": (Fraction(1, 16), ("n_images", "n_train")),
}
"""Notebook -> (the smaller scale ``s``, the parameters that count images). Every other parameter
(masks per image, budgets, sweeps, steps) stays at its full-run value."""

BATCHES = (1, 8, 32, 128, 512)
"""Batch sizes at which each pass is timed (the best per-image time is kept)."""


def scaled_params(stem: str, scale: Fraction) -> dict:
    """``params/<stem>.yaml`` with its image counts multiplied by ``scale`` (exactly)."""
    import yaml

    params = yaml.safe_load((ROOT / "params" / f"{stem}.yaml").read_text()) or {}
    _, keys = SCALES[stem]
    for k in keys:
        v = Fraction(int(params[k])) * scale
        if v.denominator != 1 or v < 1:
            raise ValueError(f"{stem}: {k} = {params[k]} times {scale} is {v}, not a whole "
                             "number of images; change SCALES")
        params[k] = int(v)
    params.pop("scheduler", None)  # counted in-process
    return params


def count(runs: list[tuple[str, Fraction]], work: Path, tag: str, profile: bool = False
          ) -> dict[str, dict[str, int]]:
    """Run the notebooks in order, each at its scale, sharing one fresh cache (as ``make run``
    does); their pass counts, images per kind. ``profile``: also write each kernel's cProfile
    statistics to ``work/<stem>-<tag>.prof`` (``KIT_PROFILE``)."""
    import papermill as pm

    env = {"KIT_CACHE": str(work / f"cache-{tag}"), "KIT_OUTPUT": str(work / f"out-{tag}")}
    names = [*env, "KIT_PASS_LOG", "KIT_PROFILE", "MPLBACKEND", "KIT_SCHEDULER"]
    saved = {k: os.environ.get(k) for k in names}
    counts = {}
    try:
        os.environ.update(env)
        os.environ.pop("MPLBACKEND", None)  # the kernel picks the inline backend
        os.environ.pop("KIT_SCHEDULER", None)  # counted in-process
        for stem, scale in runs:
            log = work / f"{stem}-{tag}.json"
            os.environ["KIT_PASS_LOG"] = str(log)
            if profile:
                os.environ["KIT_PROFILE"] = str(work / f"{stem}-{tag}.prof")
            t0 = time.perf_counter()
            pm.execute_notebook(str(ROOT / "notebooks" / f"{stem}.ipynb"),
                                str(work / f"{stem}-{tag}.ipynb"),
                                parameters=scaled_params(stem, scale), kernel_name="python3",
                                cwd=str(ROOT), progress_bar=False)
            counts[stem] = {k: int(v) for k, v in json.loads(log.read_text()).items()}
            print(f"[{stem}] s = {scale}: {counts[stem]} ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return counts


def extrapolate(c1: dict, c2: dict, s1: Fraction) -> tuple[dict, dict]:
    """Counts at ``s = 1`` from counts at ``s1`` and ``2 s1`` (a line through both), and the
    intercepts (the part that does not scale with the images)."""
    full, fixed = {}, {}
    for k in KINDS:
        slope = (c2.get(k, 0) - c1.get(k, 0)) / float(s1)
        icpt = c1.get(k, 0) - slope * float(s1)
        full[k], fixed[k] = max(0.0, icpt + slope), icpt
    return full, fixed


def hotspots(path: Path, top: int = 12) -> list[str]:
    """Markdown table of a cProfile file's top functions by own time (``tottime``)."""
    import pstats

    st = pstats.Stats(str(path))
    total = st.total_tt or 1.0
    rows = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    lines = ["| function | calls | own s | own % | with callees s |", "|---|---:|---:|---:|---:|"]
    for (file, line, func), (_cc, nc, tt, ct, _callers) in rows:
        where = file.split("site-packages/")[-1].split("/work/main/")[-1]
        lines.append(f"| `{func}` ({where}:{line}) | {nc:,} | {tt:.1f} | "
                     f"{100 * tt / total:.0f}% | {ct:.1f} |")
    return lines


def _timed(fn, args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def best_per_image(fn, make, repeat: int, batches=BATCHES) -> tuple[float, int]:
    """Best seconds per image of ``fn(*make(b))`` over ``batches`` (best of ``repeat``)."""
    best, at = float("inf"), 0
    for b in batches:
        args = make(b)
        fn(*args)  # warm-up at this shape (oneDNN picks its kernels on the first call)
        t = min(_timed(fn, args) for _ in range(repeat)) / b
        if t < best:
            best, at = t, b
    return best, at


def pass_kinds(n: int) -> dict:
    """Per kind of :data:`KINDS`, ``(fn, make)``: ``fn(*make(b))`` runs one pass over ``b <= n``
    test images, as kit runs it (the world classifier under ``inference_mode`` and to the input,
    the completion inpainter and OpenCV Telea on whole-object holes)."""
    from kit import world
    from kit.models import load_classifier, load_inpainter
    from kit.removers import Telea

    clf, inp = load_classifier("world"), load_inpainter("world")
    data = world.sample(n, seed=7, split="test")
    keep = 1 - data.masks.float()  # whole-object holes: an object-sized hole, as in 00 and 03
    telea = Telea()

    def fwd(x):
        with torch.inference_mode():
            clf(x)  # the wrapper lays the pass out as kit does (Classifier.normalize)

    def bwd(x):
        x = x.clone().requires_grad_(True)
        clf(x).max(1).values.sum().backward()

    def fill(x, k):
        inp(x, k)

    def cv(x, k):
        telea.fill(x, k)

    def imgs(b):
        return (data.images[:b],)

    def pair(b):
        return (data.images[:b], keep[:b])

    return {"classifier_forward": (fwd, imgs), "classifier_backward": (bwd, imgs),
            "inpainter": (fill, pair), "opencv": (cv, pair)}


def pass_times(repeat: int = 3) -> dict[str, tuple[float, int]]:
    """Best seconds per image and the batch size it came at, per kind of :data:`KINDS`."""
    kinds = pass_kinds(max(BATCHES))
    return {k: best_per_image(fn, make, repeat) for k, (fn, make) in kinds.items()}


def measured_times(path: Path) -> dict[str, float]:
    """``make run``'s wall seconds per notebook from its ``run_times.csv`` (ok rows only)."""
    import pandas as pd

    if not path.exists():
        return {}
    t = pd.read_csv(path)
    if "status" in t.columns:
        t = t[t["status"] == "ok"]
    return {r.notebook: float(r.seconds) for r in t.itertuples()}


def table(full: dict, fixed: dict, times: dict, measured: dict) -> list[str]:
    """Markdown lines: passes, bound and make run per notebook.

    ``bound`` counts a backward pass at the best forward + backward time (a gradient needs
    both), the forward passes that gradients took not twice: the forward count minus the
    backward count is timed as forward passes.
    """
    head = ["notebook", *[f"{k} (images)" for k in KINDS], "not scaling (min)", "bound (min)",
            "make run (min)", "make run / bound"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    total_b = total_m = 0.0

    def seconds(c):
        fwd_only = max(0.0, c["classifier_forward"] - c["classifier_backward"])
        return (fwd_only * times["classifier_forward"][0]
                + c["classifier_backward"] * times["classifier_backward"][0]
                + c["inpainter"] * times["inpainter"][0] + c["opencv"] * times["opencv"][0])

    for stem, c in full.items():
        bound = seconds(c)
        total_b += bound
        m = measured.get(stem)
        total_m += m or 0.0
        flat = seconds({k: abs(v) for k, v in fixed[stem].items()})
        cells = [stem, *[f"{c[k]:,.0f}" for k in KINDS], f"{flat / 60:.2f}", f"{bound / 60:.1f}",
                 "–" if m is None else f"{m / 60:.1f}",
                 "–" if m is None or bound <= 0 else f"{m / bound:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    have = bool(measured) and all(s in measured for s in full)
    lines.append("| **all** | " + " | ".join([""] * len(KINDS)) + f" | | **{total_b / 60:.1f}** | "
                 + (f"**{total_m / 60:.1f}**" if have else "–") + " | "
                 + (f"**{total_m / total_b:.1f}**" if have and total_b else "–") + " |")
    return lines


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated two-digit prefixes (default: 00-05)")
    parser.add_argument("--times", type=Path, default=ROOT / "results" / "run_times.csv",
                        help="make run's run_times.csv (the same configuration)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the report here (markdown)")
    parser.add_argument("--logs", type=Path, default=None,
                        help="a folder of make run's own pass counts (<stem>.json or <NN>.json, "
                             "written through KIT_PASS_LOG) instead of scaled runs")
    parser.add_argument("--profile", type=Path, default=None,
                        help="also profile the notebooks at scale s (cProfile in each kernel) "
                             "and write their hotspots here (markdown)")
    args = parser.parse_args(argv)
    stems = list(SCALES)
    if args.only:
        wanted = [w.strip() for w in args.only.split(",")]
        stems = [s for s in stems if s[:2] in wanted or s in wanted]
    t_start = time.perf_counter()
    times = pass_times(args.repeat)
    for k, (t, b) in times.items():
        print(f"{k}: {t * 1e3:.3f} ms per image (best at batch {b})", flush=True)
    if args.logs:
        counts = logged_counts(args.logs, stems)
        report(args, list(counts), {}, {}, {}, times, t_start, complete=True, exact=counts)
        return 0
    small = {s: SCALES[s][0] for s in stems}
    c1: dict = {}
    c2: dict = {}
    with tempfile.TemporaryDirectory(prefix="kit-bound-") as tmp:
        work = Path(tmp)
        for stem in stems:  # s then 2s per notebook, each scale in its own shared cache
            c1.update(count([(stem, small[stem])], work, "s", profile=bool(args.profile)))
            c2.update(count([(stem, 2 * small[stem])], work, "2s"))
            done = [x for x in stems if x in c2]
            report(args, done, small, c1, c2, times, t_start, complete=done == stems)
            if args.profile:
                write_profile(args.profile, done, small, work)
    return 0


def logged_counts(folder: Path, stems: list[str]) -> dict[str, dict[str, int]]:
    """The pass counts ``make run`` wrote (``KIT_PASS_LOG``) for the notebooks in ``stems`` that
    have a log in ``folder``, as ``<stem>.passes.json``, ``<stem>.json`` or ``<NN>.json``."""
    counts = {}
    for stem in stems:
        for name in (f"{stem}.passes.json", f"{stem}.json", f"{stem[:2]}.json"):
            if (folder / name).exists():
                raw = json.loads((folder / name).read_text())
                counts[stem] = {k: int(raw.get(k, 0)) for k in KINDS}
                break
    if not counts:
        raise SystemExit("--logs: no <stem>.passes.json, <stem>.json or <NN>.json pass log of "
                         f"{', '.join(stems)} in {folder}")
    return counts


def write_profile(path: Path, stems: list[str], small: dict, work: Path) -> None:
    """The hotspots of the notebooks profiled so far, as markdown at ``path``."""
    from kit.cache import write_atomic_bytes

    prof = ["# Hotspots of make run's notebooks", "",
            f"cProfile in each notebook's kernel (`python benchmarks/make_run_bound.py --profile "
            f"...` at commit {_commit()}), the notebook at scale s of make run's configuration "
            "in the run's cache (maps of earlier notebooks are served from it, as in make run), "
            "main thread only (torch's intra-op threads are native: their time shows as the "
            "calling function's own time). cProfile slows Python-heavy code; read the shares, "
            "not the seconds.", ""]
    for s in stems:
        prof += [f"## {s} (s = {small[s]})", "", *hotspots(work / f"{s}-s.prof"), ""]
    write_atomic_bytes("\n".join(prof).encode("utf-8"), path)


def report(args, stems: list[str], small: dict, c1: dict, c2: dict, times: dict,
           t_start: float, complete: bool, exact: dict | None = None) -> None:
    """Print (and with ``--out`` write) the bound table of the notebooks counted so far;
    ``exact``: make run's own counts per notebook (``--logs``) instead of the scaled runs'."""
    full, fixed = {}, {}
    for s in stems:
        if exact is not None:
            full[s], fixed[s] = exact[s], {k: 0 for k in KINDS}
        else:
            full[s], fixed[s] = extrapolate(c1[s], c2[s], small[s])
    how = ("Passes make run itself counted (`KIT_PASS_LOG`, one log per notebook in "
           f"`{args.logs}`), exact for that run: maps an earlier notebook cached are not counted "
           "again, as they were not computed again; *not scaling* does not apply (0):"
           if exact is not None else
           "Passes of make run's configuration (`params/*.yaml`), counted at each notebook's "
           "scale s and 2s (" + ", ".join(f"{s[:2]}: s = {small[s]}" for s in stems) + ") in "
           "one cache per scale, notebooks in make run's order, and extrapolated to s = 1; *not "
           "scaling* is the fit's intercepts in bound minutes (work that does not grow with the "
           "images):")
    measured = measured_times(args.times)
    shown = args.times.relative_to(ROOT) if args.times.is_relative_to(ROOT) else args.times
    times_note = (f"make run's times: `{shown}`" if measured else
                  f"make run's times: none at `{args.times.name}` — run `make run` at this "
                  "configuration, then this script again, for the last two columns")
    lines = [
        "# make run against its pass-count bound",
        "",
        f"`python benchmarks/make_run_bound.py{' --only ' + args.only if args.only else ''}"
        f"{' --logs ' + str(args.logs) if args.logs else ''}` at "
        f"commit {_commit()} ({platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}); {(time.perf_counter() - t_start) / 60:.1f} min"
        + ("." if complete else " so far (**partial: the run was still going**)."),
        "",
        "Best time per image and kind of pass (batch sizes " + ", ".join(map(str, BATCHES))
        + "; classifier_backward is a forward and a backward pass to the input):",
        "",
        *[f"- {k}: {t * 1e3:.3f} ms (batch {b})" for k, (t, b) in times.items()],
        "",
        how,
        "",
        *table(full, fixed, times, measured),
        "",
        times_note + ".",
    ]
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    if args.out:
        from kit.cache import write_atomic_bytes

        write_atomic_bytes(text.encode("utf-8"), args.out)


if __name__ == "__main__":
    sys.exit(main())
