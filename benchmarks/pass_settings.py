"""Do memory layout, ``torch.compile`` or thread counts speed up kit's passes? (not a test)

The bound of ``benchmarks/make_run_bound.py`` is a sum of four kinds of pass. This script times
the two that dominate ``make run`` — the world classifier's forward pass (and forward + backward
to the input) and the completion inpainter's fill — under each setting kit could choose, in one
run, on the same images:

- **layout**: contiguous (NCHW) inputs and weights, or channels-last inputs and weights (what
  :func:`kit.engine.model_input` gives the classifier on the CPU);
- **compile**: eager, or ``torch.compile`` (inductor; its one-off compile time is printed apart
  and not counted in the per-image time);
- **threads**: 1 or 2 intra-op threads (``torch.set_num_threads``);
- **load**: alone, or beside a second CPU-bound process (``--load``: a process that multiplies
  matrices on one core for as long as the timings last), the situation of a laptop doing
  something else or of two jobs sharing these 2 cores.

Each cell is the best per-image time over batch sizes (best of ``--repeat``), with the speed-up
against kit's current setting (channels-last, eager, the machine's thread count) in the same
run.

Usage::

    python benchmarks/pass_settings.py --out benchmarks/results/pass_settings.md
    python benchmarks/pass_settings.py --load --out benchmarks/results/pass_settings_load.md
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BATCHES = {"classifier_forward": (32, 128), "classifier_backward": (32, 128), "inpainter": (8, 32)}
"""Batch sizes tried per pass (around the best ones ``make_run_bound.py`` found)."""


def _burn(stop) -> None:  # the competing process: one core of dense float work
    torch.set_num_threads(1)
    a = torch.randn(256, 256)
    while not stop.is_set():
        a = torch.tanh(a @ a)


def _timed(fn, x, repeat: int) -> float:
    fn(x)  # warm-up at this shape (oneDNN, inductor pick their kernels on the first calls)
    fn(x)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(x)
        best = min(best, time.perf_counter() - t0)
    return best


def settings_table(repeat: int = 5, compile_: bool = True) -> tuple[list[dict], dict]:
    """Rows of (pass, layout, compile, threads, batch, ms per image) and compile seconds, each
    (layout, compile) setting in a fresh process (after torch.compile has run, this torch fails
    to load a checkpoint in the same process)."""
    ctx = mp.get_context("spawn")
    rows, compile_s = [], {}
    for layout in ("contiguous", "channels_last"):
        for comp in ((False, True) if compile_ else (False,)):
            with ctx.Pool(1) as pool:
                r, c = pool.apply(_one_setting, (repeat, layout, comp))
            rows += r
            compile_s.update(c)
    return rows, compile_s


def _one_setting(repeat: int, layout: str, comp: bool) -> tuple[list[dict], dict]:
    from kit import world
    from kit.models import load_classifier, load_inpainter

    data = world.sample(max(max(b) for b in BATCHES.values()), seed=7, split="test")
    keep = 1 - data.masks.float()
    rows, compile_s = [], {}
    threads = sorted({1, torch.get_num_threads()})
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    clf = load_classifier("world").to(memory_format=fmt)
    inp = load_inpainter("world").to(memory_format=fmt)
    f_clf = torch.compile(clf) if comp else clf
    f_inp = torch.compile(inp) if comp else inp

    def fwd(x, f=f_clf):
        with torch.inference_mode():
            f(x)

    def bwd(x, f=f_clf):
        x = x.clone().requires_grad_(True)
        f(x).max(1).values.sum().backward()

    def fill(x, f=f_inp):
        with torch.inference_mode():
            f(x, keep[:len(x)])

    for name, fn in (("classifier_forward", fwd), ("classifier_backward", bwd),
                     ("inpainter", fill)):
        if comp:  # the first call compiles: timed apart, once per pass and layout
            t0 = time.perf_counter()
            try:
                fn(data.images[:BATCHES[name][0]].contiguous(memory_format=fmt))
            except Exception as err:  # noqa: BLE001 - reported in the table, not raised
                first = str(err).splitlines()[-1] if str(err) else ""
                compile_s[(name, layout)] = f"failed: {type(err).__name__}: {first}"[:200]
                continue
            compile_s[(name, layout)] = time.perf_counter() - t0
        for t in threads:
            torch.set_num_threads(t)
            for b in BATCHES[name]:
                x = data.images[:b].contiguous(memory_format=fmt)
                ms = _timed(fn, x, repeat) / b * 1e3
                rows.append(dict(kind=name, layout=layout, compile=comp, threads=t,
                                 batch=b, ms=ms))
        torch.set_num_threads(threads[-1])
    return rows, compile_s


def markdown(rows: list[dict], compile_s: dict, *, load: bool, seconds: float) -> str:
    import pandas as pd

    t = pd.DataFrame(rows)
    best = t.groupby(["kind", "layout", "compile", "threads"], sort=False)["ms"].min().reset_index()
    nthreads = int(best["threads"].max())
    ref = best.query("layout == 'channels_last' and not compile and threads == @nthreads")
    ref = ref.set_index("kind")["ms"]
    best["speedup"] = [ref[k] / ms for k, ms in zip(best["kind"], best["ms"], strict=True)]
    lines = [
        "# Pass times under kit's possible settings"
        + (" beside a second CPU-bound process" if load else ""),
        "",
        f"`python benchmarks/pass_settings.py{' --load' if load else ''}` ({platform.machine()}, "
        f"torch {torch.__version__}, {seconds / 60:.1f} min). Best ms per image over batch sizes "
        f"{dict(BATCHES)}; *vs kit's setting* is kit's current choice (channels-last, eager, "
        f"{nthreads} threads) divided by the cell: above 1 is faster than kit now.",
        "",
        "| pass | layout | compile | threads | ms per image | vs kit's setting |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in best.itertuples(index=False):
        lines.append(f"| {r.kind} | {r.layout} | {'torch.compile' if r.compile else 'eager'} | "
                     f"{r.threads} | {r.ms:.3f} | {r.speedup:.2f} |")
    if compile_s:
        lines += ["", "torch.compile's first call (compilation), seconds:", ""]
        lines += [f"- {k} / {lay}: " + (f"{v:.1f} s" if isinstance(v, float) else v)
                  for (k, lay), v in compile_s.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--load", action="store_true",
                        help="time beside a second CPU-bound process (one core)")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args(argv)
    stop, proc = None, None
    if args.load:
        ctx = mp.get_context("spawn")
        stop = ctx.Event()
        proc = ctx.Process(target=_burn, args=(stop,), daemon=True)
        proc.start()
    t0 = time.perf_counter()
    try:
        rows, compile_s = settings_table(args.repeat, compile_=not args.no_compile)
    finally:
        if proc is not None:
            stop.set()
            proc.join(10)
    text = markdown(rows, compile_s, load=args.load, seconds=time.perf_counter() - t0)
    print(text)
    if args.out:
        from kit.cache import write_atomic_bytes

        write_atomic_bytes(text.encode("utf-8"), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
