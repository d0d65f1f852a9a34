"""Cost of the world inpainters (not a test): FLOPs and measured time per 64×64 image.

Compares the shipped networks (``world`` = completion, ``world-removal`` = removal, both
:class:`kit.nets.LiteInpainter`) with the previous :class:`kit.nets.GatedInpainter` (width 32, as
the checkpoint shipped before issue 13) and, as references, OpenCV's Telea and the Gaussian blur
remover. FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass
(a multiply-add counts 2; element-wise ops are not counted, convolutions dominate); the classical
removers have no FLOP count. Times are the best wall-clock seconds per image of ``--repeat``
interleaved calls on a batch of ``--batch`` images with object holes, after a warm-up, through the
public ``inpainter(images, keep)`` / remover call (so compositing and argument checks count).

Writes ``benchmarks/results/inpainters.csv`` and ``.md`` (atomically) and prints the table.

Usage::

    python benchmarks/inpainters.py               # about a minute on 2 CPU cores
    python benchmarks/inpainters.py --threads 1 --batch 64 --repeat 5
"""

from __future__ import annotations

import argparse
import csv
import io
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kit import world  # noqa: E402
from kit.cache import write_atomic_bytes  # noqa: E402
from kit.metrics.plausibility import object_keep_mask  # noqa: E402
from kit.models import (  # noqa: E402
    WORLD_INPAINTER_PATH,
    WORLD_REMOVAL_INPAINTER_PATH,
    WorldInpainter,
    load_inpainter,
)
from kit.nets import GatedInpainter  # noqa: E402
from kit.removers import Blur, Telea  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def flops(net: torch.nn.Module, size: int = 64) -> int:
    """FLOPs of one forward pass on a ``size``×``size`` image (FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    x, hole = torch.zeros(1, 3, size, size), torch.zeros(1, 1, size, size)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        net(x, hole)
    return int(counter.get_total_flops())


def main(argv: list[str] | None = None) -> None:
    """Measure and write the table (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=64, help="images per timed call")
    ap.add_argument("--repeat", type=int, default=5, help="timed calls per candidate (best kept)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    b = world.sample(args.batch, seed=4242, split="val")
    keep = object_keep_mask(b.masks, 2)
    torch.manual_seed(0)  # the old architecture's weights do not matter for its cost
    cands = {
        "GatedInpainter (width 32, before issue 13)":
            (WorldInpainter(GatedInpainter(32)), flops(GatedInpainter(32).eval())),
    }
    for name, path in (("world", WORLD_INPAINTER_PATH),
                       ("world-removal", WORLD_REMOVAL_INPAINTER_PATH)):
        if path.exists():
            inp = load_inpainter(name)
            cands[f"{name} ({type(inp.net).__name__}, shipped)"] = (inp, flops(inp.net))
    cands["telea (OpenCV)"] = (Telea(), None)
    cands["blur (sigma 3)"] = (Blur(3.0), None)
    best = {k: float("inf") for k in cands}
    for f, _ in cands.values():  # warm-up at the timed shape
        f(b.images, keep)
    for _ in range(args.repeat):  # interleaved, so load changes hit every candidate alike
        for k, (f, _) in cands.items():
            t = time.perf_counter()
            f(b.images, keep)
            best[k] = min(best[k], time.perf_counter() - t)
    ref = next(iter(cands))
    lines = ["| inpainter | GFLOP / image | ms / image | time vs GatedInpainter |",
             "|---|---|---|---|"]
    buf = io.StringIO()
    table = csv.writer(buf, lineterminator="\n")
    table.writerow(["inpainter", "gflop_per_image", "ms_per_image", "time_ratio"])
    for k, (_, fl) in cands.items():
        ms = 1000 * best[k] / args.batch
        ratio = best[k] / best[ref]
        g = "—" if fl is None else f"{fl / 1e9:.3f}"
        lines.append(f"| {k} | {g} | {ms:.2f} | {ratio:.2f} |")
        table.writerow([k, "" if fl is None else f"{fl / 1e9:.4f}", f"{ms:.4f}", f"{ratio:.4f}"])
    note = (f"\n{args.batch} images per call with whole-object holes, best of {args.repeat}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"{platform.processor() or platform.machine()}.\n")
    md = "# World inpainters: cost per 64×64 image\n\n" + "\n".join(lines) + "\n" + note
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_atomic_bytes(buf.getvalue().encode(), RESULTS / "inpainters.csv")
    write_atomic_bytes(md.encode(), RESULTS / "inpainters.md")
    print(md)


if __name__ == "__main__":
    main()
