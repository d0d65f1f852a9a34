"""make run's maps on a GPU (or any device), timed per method (not a test; issue 14).

Computes the maps notebooks 01-04 share (the methods of ``params/02_localization.yaml`` by
default, at the ``full`` profile's budgets) on ``--device`` for ``--n`` world test images with
:func:`kit.mapcache.compute_maps` (``device=``: the images, targets, backgrounds and a copy of
the classifier go there, the inpainters follow the images; maps come back on the CPU), without
the cache, and prints the seconds per method and per image. ``--compare-cpu`` also times the same
maps on the CPU in the same run and reports the speed-up and the largest difference between the
two devices' maps (float arithmetic differs between devices: GPU maps are cached apart).

Nothing in the test suite needs a GPU: ``tests/test_device.py`` runs this script on the CPU.

Usage::

    python benchmarks/gpu_maps.py --device cuda --n 64
    python benchmarks/gpu_maps.py --device cuda --n 16 --compare-cpu --out gpu.md
    python benchmarks/gpu_maps.py --device cpu --n 2 --methods SP Saliency --profile cheap
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_maps(methods, clf, batch, overrides, device: str, seed: int = 0):
    """``{method: (seconds, maps)}`` computed on ``device`` (warm-up call on one image first)."""
    from kit.mapcache import compute_maps

    out = {}
    for m in methods:
        kw = dict(overrides=overrides, seed=seed, backgrounds=batch.backgrounds, cache=False,
                  device=device)
        compute_maps([m], clf, batch.images[:1], batch.labels[:1],
                     **{**kw, "backgrounds": batch.backgrounds[:1]})  # warm-up (kernels, copies)
        _sync(device)
        t0 = time.perf_counter()
        maps = compute_maps([m], clf, batch.images, batch.labels, **kw)
        _sync(device)
        out[m] = (time.perf_counter() - t0, maps[m])
    return out


def main(argv: list[str] | None = None) -> int:
    import yaml

    from kit import models, world
    from kit.attributors import budget

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--n", type=int, default=16, help="world test images")
    parser.add_argument("--methods", nargs="+", default=None,
                        help="default: params/02_localization.yaml's methods")
    parser.add_argument("--profile", default="full", help="a key of kit.attributors.PROFILES")
    parser.add_argument("--compare-cpu", action="store_true", help="also time on the CPU")
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n: expected at least 1 image, got {args.n}")
    methods = args.methods or yaml.safe_load(
        (ROOT / "params" / "02_localization.yaml").read_text())["methods"]
    clf = models.load_classifier("world")
    batch = world.sample(args.n, seed=0, split="test")
    overrides = budget(args.profile, methods)
    dev = time_maps(methods, clf, batch, overrides, args.device)
    cpu = time_maps(methods, clf, batch, overrides, "cpu") if args.compare_cpu else {}
    name = (torch.cuda.get_device_name(torch.device(args.device))
            if torch.device(args.device).type == "cuda" else platform.machine())
    head = ["method", f"{args.device} s", "ms / image"]
    if cpu:
        head += ["cpu s", "speed-up", "max |map diff|"]
    lines = [f"# Maps on {args.device} ({name})", "",
             f"`python benchmarks/gpu_maps.py --device {args.device} --n {args.n} --profile "
             f"{args.profile}`; torch {torch.__version__}, {torch.get_num_threads()} CPU threads.",
             "", "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for m, (sec, sal) in dev.items():
        cells = [m, f"{sec:.2f}", f"{1e3 * sec / args.n:.1f}"]
        if cpu:
            csec, csal = cpu[m]
            cells += [f"{csec:.2f}", f"{csec / sec:.1f}×", f"{(csal - sal).abs().max():.2e}"]
        lines.append("| " + " | ".join(cells) + " |")
    total = sum(s for s, _ in dev.values())
    lines += ["", f"Total on {args.device}: {total:.1f} s for {len(methods)} methods × {args.n} "
              "images" + (f"; on the CPU {sum(s for s, _ in cpu.values()):.1f} s." if cpu else ".")]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        from kit.cache import write_atomic_bytes

        write_atomic_bytes(text.encode("utf-8"), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
