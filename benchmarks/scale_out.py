"""Benchmark: compute_maps in-process against a LocalCluster of 2 workers (not a test).

(Named ``benchmarks/distributed.py`` before: run as a script, that name put a module called
``distributed`` first on ``sys.path``, in front of the dask package.)

Measures, on this machine:

* the wall time of one :func:`kit.mapcache.compute_maps` call (64 world test images, 6 methods at
  the ``cheap`` profile's budgets, ``cache=False``), in-process (torch's default intra-op
  threads) and on a LocalCluster of 2 worker processes with 1 thread each
  (``kit.distributed.get_client("local", n_workers=2)``), with the maps checked equal;
* the cluster's start-up (not part of the call's time) and the one-off scatter of the classifier;
* the **task overhead**: the round trip of an empty task through
  :func:`kit.distributed.map_tasks` (submit, schedule, run a no-op, gather), per task, against
  the mean compute time of a (method, chunk) task of the call.

On 2 cores expect about 1x: in-process torch already spreads each forward pass over both cores,
and the cluster only replaces intra-op threads by processes; the gain of a cluster is more
machines, not this one. The machine may be shared: the load average is reported, and times on a
loaded machine move by tens of percent between runs.

Writes ``benchmarks/results/distributed.csv`` and ``.md`` (atomically) and prints the table.

Usage::

    python benchmarks/scale_out.py                    # the 64-image, 6-method measurement
    python benchmarks/scale_out.py --n 16             # quicker
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

# this file's name shadows the dask.distributed package when run as a script: drop its folder
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != _HERE]

import torch  # noqa: E402

from kit import cache, mapcache, world  # noqa: E402
from kit.attributors import budget  # noqa: E402
from kit.distributed import get_client, map_tasks  # noqa: E402
from kit.models import load_classifier  # noqa: E402

METHODS = ("SP", "SP-G", "LIME", "RISE", "MP2", "Saliency")
OUT = _HERE / "results"


def _noop(task):
    return task


def _warm(clf, x, target, methods, overrides, backgrounds):
    """Every method once on one image in this process: imports, first-shape kernels, the
    inpainter's load happen here, outside the timed calls (run in-process and on each worker)."""
    mapcache.compute_maps(methods, clf, x, target, overrides=overrides, cache=False,
                          backgrounds=backgrounds)
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=64, help="world test images (default 64)")
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--empty-tasks", type=int, default=200, help="no-op tasks timed")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    batch = world.sample(args.n, seed=0, split="test")
    clf = load_classifier("world")
    ov = budget("cheap", args.methods)
    kw = dict(overrides=ov, cache=False, backgrounds=batch.backgrounds)
    n_tasks = len(args.methods) * -(-args.n // mapcache.CHUNK)
    load0 = os.getloadavg()[0]

    warm = (clf, batch.images[:1], batch.labels[:1], args.methods, ov, batch.backgrounds[:1])
    _warm(*warm)
    times_serial: dict = {}
    t0 = time.perf_counter()
    serial = mapcache.compute_maps(args.methods, clf, batch.images, batch.labels,
                                   timings=times_serial, **kw)
    t_serial = time.perf_counter() - t0
    print(f"[{time.perf_counter() - t_start:.0f}s] serial {t_serial:.1f} s", file=sys.stderr)

    t0 = time.perf_counter()
    client = get_client("local", n_workers=args.workers)
    client.wait_for_workers(args.workers, timeout=600)
    t_up = time.perf_counter() - t0
    try:
        client.run(_warm, *warm)  # on every worker, as in-process above
        t0 = time.perf_counter()
        fut = client.scatter([clf], broadcast=True, hash=False)[0]
        fut.result()
        t_scatter = time.perf_counter() - t0
        fut.release()
        times_cluster: dict = {}
        t0 = time.perf_counter()
        got = mapcache.compute_maps(args.methods, clf, batch.images, batch.labels,
                                    timings=times_cluster, client=client, **kw)
        t_cluster = time.perf_counter() - t0
        print(f"[{time.perf_counter() - t_start:.0f}s] cluster {t_cluster:.1f} s",
              file=sys.stderr)
        t0 = time.perf_counter()
        map_tasks(_noop, range(args.empty_tasks), client=client, desc="empty")
        t_empty = (time.perf_counter() - t0) / args.empty_tasks
    finally:
        client.close()
    diff = max(float((serial[m] - got[m]).abs().max()) for m in args.methods)
    mean_task = sum(times_cluster.values()) / n_tasks

    rows = [
        ("in-process compute_maps (s)", f"{t_serial:.1f}"),
        (f"LocalCluster {args.workers} workers x 1 thread compute_maps (s)", f"{t_cluster:.1f}"),
        ("speed-up (in-process / cluster)", f"{t_serial / t_cluster:.2f}x"),
        ("cluster start-up, not in the call (s)", f"{t_up:.1f}"),
        ("classifier scatter to every worker, once per call (s)", f"{t_scatter:.3f}"),
        (f"tasks in the call (methods x chunks of {mapcache.CHUNK})", f"{n_tasks}"),
        ("mean compute time of a task on a worker (s)", f"{mean_task:.2f}"),
        (f"empty-task round trip, mean of {args.empty_tasks} (s)", f"{t_empty:.4f}"),
        ("task overhead as a share of task time", f"{100 * t_empty / mean_task:.2f}%"),
        ("max abs difference serial vs cluster, all maps", f"{diff:.3g}"),
    ]
    per = [(m, times_serial[m], times_cluster[m]) for m in args.methods]
    header = (f"{args.n} world test images, methods {', '.join(args.methods)} at the cheap "
              f"profile, cache off; torch {torch.__version__} ({torch.get_num_threads()} "
              f"intra-op threads in-process), {os.cpu_count()} CPUs, {platform.machine()}; "
              f"load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end "
              f"(the machine is shared); total {time.perf_counter() - t_start:.0f} s.")
    csv = "quantity,value\n" + "".join(f"\"{k}\",{v}\n" for k, v in rows) + \
        "".join(f"\"compute seconds {m}: in-process / summed over cluster tasks\",{a:.2f} / "
                f"{b:.2f}\n" for m, a, b in per)
    md = ["# compute_maps: in-process vs a LocalCluster (benchmarks/scale_out.py)", "",
          header, "", "| quantity | value |", "|---|---|",
          *(f"| {k} | {v} |" for k, v in rows), "",
          "| method | compute s in-process | compute s summed over cluster tasks |",
          "|---|---|---|", *(f"| {m} | {a:.2f} | {b:.2f} |" for m, a, b in per), "",
          "On 2 cores a cluster of 2 single-thread workers is expected to be about as fast as "
          "one process whose torch already uses both cores (about 1x): it pays off with more "
          "machines. The task overhead (the empty-task round trip) is the share of a task's "
          "time that scheduling costs.", ""]
    md_text = "\n".join(md)
    args.out.mkdir(parents=True, exist_ok=True)
    cache.write_atomic_bytes(csv.encode(), args.out / "distributed.csv")
    cache.write_atomic_bytes(md_text.encode(), args.out / "distributed.md")
    print(md_text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
