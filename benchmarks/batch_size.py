"""Which batch size should kit default to on the CPU? (not a test; issue 14)

Every chunked call in kit — a perturbation method's composites, a metric's classifier passes, an
inpainter's fills — takes ``batch_size``, defaulting to :data:`kit.engine.BATCH_SIZE`. Larger
chunks amortise Python overhead, but on a CPU a chunk's activations stop fitting in cache: the
world classifier's convolutions get slower per image beyond a few dozen images. This script, in
one process:

1. times each kind of pass per image at each batch size of ``--batches`` (best of
   ``--repeat``): the passes of ``make_run_bound.py`` (:func:`make_run_bound.pass_kinds`: the
   world classifier's forward, its forward + backward to the input, the completion inpainter
   and OpenCV Telea on object holes);
2. times whole maps of the methods in ``--methods`` at the ``full`` profile's budgets on
   ``--images`` test images, at each batch size (a fresh map cache per call, so nothing is
   reused), and the maps' largest difference from the first batch size's (batch size is
   not part of a map's cache key: it must not change the map beyond float order).

Usage::

    python benchmarks/batch_size.py --out benchmarks/results/batch_size.md
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import torch


def pass_table(batches, repeat: int) -> list[str]:
    """Markdown lines: ms per image per kind of pass (``make_run_bound``'s) and batch size."""
    from make_run_bound import best_per_image, pass_kinds

    lines = ["| pass (ms per image) | " + " | ".join(f"batch {b}" for b in batches) + " |",
             "|---|" + "---:|" * len(batches)]
    for name, (fn, make) in pass_kinds(max(batches)).items():
        times = [best_per_image(fn, make, repeat, batches=(b,))[0] * 1e3 for b in batches]
        best = min(times)
        cells = [f"**{t:.3f}**" if t == best else f"{t:.3f}" for t in times]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return lines


def map_table(methods, batches, n_images: int, repeat: int) -> list[str]:
    """Markdown lines: seconds per map set per method and batch size, and the maps' spread."""
    from kit import mapcache, models, world
    from kit.attributors import budget

    clf = models.load_classifier("world")
    b = world.sample(n_images, seed=3, split="test")
    overrides = budget("full", methods)
    lines = ["| method (s for the maps) | " + " | ".join(f"batch {s}" for s in batches)
             + " | max abs difference |", "|---|" + "---:|" * (len(batches) + 1)]
    old = os.environ.get("KIT_CACHE")
    try:
        for m in methods:
            times, maps = [], []
            for s in batches:
                best = float("inf")
                for _ in range(repeat):
                    with tempfile.TemporaryDirectory() as tmp:
                        os.environ["KIT_CACHE"] = tmp  # nothing served from a cache
                        t0 = time.perf_counter()
                        got = mapcache.compute_maps([m], clf, b.images, b.labels,
                                                    overrides=overrides, seed=0, batch_size=s,
                                                    backgrounds=b.backgrounds)[m]
                        best = min(best, time.perf_counter() - t0)
                times.append(best)
                maps.append(got)
            spread = max(float((x - maps[0]).abs().max()) for x in maps)
            fastest = min(times)
            cells = [f"**{t:.2f}**" if t == fastest else f"{t:.2f}" for t in times]
            lines.append(f"| {m} | " + " | ".join(cells) + f" | {spread:.1e} |")
            print(lines[-1], flush=True)
    finally:
        if old is None:
            os.environ.pop("KIT_CACHE", None)
        else:
            os.environ["KIT_CACHE"] = old
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", default="8,16,32,64,128,256")
    p.add_argument("--methods", default="SP,SP-G,RISE")
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    import kit
    from kit.engine import BATCH_SIZE

    kit.setup(seed=0)
    batches = [int(s) for s in a.batches.split(",")]
    t0 = time.perf_counter()
    passes = pass_table(batches, a.repeat)
    maps = map_table(a.methods.split(","), batches, a.images, max(1, a.repeat - 1))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    text = "\n".join([
        "# Batch size on the CPU", "",
        f"`python benchmarks/batch_size.py` at commit {commit} ({platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}); "
        f"{(time.perf_counter() - t0) / 60:.1f} min. kit's default: "
        f"`kit.engine.BATCH_SIZE = {BATCH_SIZE}`. Bold: the fastest of a row.", "",
        "Per image, best of the repeats:", "", *passes, "",
        f"Maps of {a.images} test images at the `full` profile's budgets, from an empty cache "
        "(best of the repeats); the last column is the largest difference of any batch size's "
        "maps from the first batch size's (float order only):", "", *maps, ""])
    print(text)
    if a.out:
        tmp = a.out.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(a.out)  # never a half-written table
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
