"""ROAR's retraining recipe, measured: test accuracy and seconds per retraining on 2 CPU cores.

The recipe is :data:`kit.studies.roar.TRAIN_DEFAULTS` (:func:`kit.studies.roar.retrain`). This
script trains it on fresh world ``train`` images (the unmodified world) per seed and tests it on
world ``test`` images, then tries the variants given with ``--variant`` (each ``n_train:epochs``
or ``n_train:epochs:width:batch_size:lr``), and measures whether training several networks at
once helps on this machine (``--grouped``: k copies of the recipe's network as one network of
grouped convolutions, which is what ``torch.func.vmap`` over the models computes).

Usage::

    python benchmarks/roar_recipe.py                              # the recipe, seeds 0 and 1
    python benchmarks/roar_recipe.py --variant 20000:4 --variant 5000:24 --grouped
    python benchmarks/roar_recipe.py --out benchmarks/results/roar_recipe.md

Writes a Markdown table (and a CSV beside it) with the machine's load, so that a run on a busy
machine can be told apart.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from kit import world
from kit.studies import roar


def _markdown(df: pd.DataFrame) -> str:
    rows = ["| " + " | ".join(map(str, r)) + " |" for r in df.itertuples(index=False)]
    return "\n".join(["| " + " | ".join(df.columns) + " |", "|" + "---|" * df.shape[1], *rows])


def _accuracy(model, x, y) -> float:
    return roar.accuracy(model, x, y)


def measure(train, test, *, seeds, **options) -> list[dict]:
    rows = []
    for seed in seeds:
        t0 = time.perf_counter()
        net = roar.retrain(train.images, train.labels, seed=seed, **options)
        seconds = time.perf_counter() - t0
        rows.append({**roar._recipe(options), "n_train": len(train.labels), "seed": seed,
                     "seconds": seconds,
                     "test_accuracy": _accuracy(net, test.images, test.labels),
                     "train_accuracy": _accuracy(net, train.images[:2000], train.labels[:2000])})
        print(rows[-1], flush=True)
    return rows


def _grouped_net(k: int, w: int) -> nn.Module:
    def block(ci, co):
        return [nn.Conv2d(k * ci, k * co, 3, padding=1, bias=False, groups=k),
                nn.BatchNorm2d(k * co), nn.ReLU()]

    return nn.Sequential(
        *block(3, w), nn.MaxPool2d(2), *block(w, 2 * w), *block(2 * w, 2 * w), nn.MaxPool2d(2),
        *block(2 * w, 4 * w), *block(4 * w, 4 * w), nn.MaxPool2d(2), *block(4 * w, 4 * w),
        nn.AdaptiveAvgPool2d(1), nn.Conv2d(k * 4 * w, k * 8, 1, groups=k))


def grouped(ks=(1, 4, 16), steps: int = 10) -> list[dict]:
    """Seconds per training step and network, k networks (the recipe's shapes) trained at once."""
    d = roar.TRAIN_DEFAULTS
    res, bs, w = d["resolution"], d["batch_size"], d["width"]
    rows = []
    gen = torch.Generator().manual_seed(0)
    for k in ks:
        net = _grouped_net(k, w).to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(net.parameters(), 1e-3)
        x = torch.randn(bs, 3 * k, res, res, generator=gen).contiguous(
            memory_format=torch.channels_last)
        y = torch.randint(8, (bs, k), generator=gen)
        for i in range(steps + 3):
            if i == 3:
                t0 = time.perf_counter()
            loss = F.cross_entropy(net(x).view(bs * k, 8), y.view(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        s = (time.perf_counter() - t0) / steps
        rows.append({"k": k, "ms_per_step": 1000 * s, "ms_per_step_per_network": 1000 * s / k})
        print(rows[-1], flush=True)
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--variant", action="append", default=[],
                    help="n_train:epochs[:width:batch_size:lr], trained with seed 0")
    ap.add_argument("--grouped", action="store_true", help="also time k networks at once")
    ap.add_argument("--out", type=Path, default=None, help="Markdown file (CSV beside it)")
    args = ap.parse_args(argv)

    t_all = time.perf_counter()
    n_max = max([args.n_train] + [int(v.split(":")[0]) for v in args.variant])
    train = world.sample(n_max, seed=0, split="train")
    test = world.sample(args.n_test, seed=0, split="test")
    rows = measure(train[:args.n_train] if n_max > args.n_train else train, test,
                   seeds=args.seeds)
    for v in args.variant:
        parts = v.split(":")
        opts = {"epochs": int(parts[1])}
        if len(parts) == 5:
            opts.update(width=int(parts[2]), batch_size=int(parts[3]), lr=float(parts[4]))
        rows += measure(train[:int(parts[0])], test, seeds=[0], **opts)
    groups = grouped() if args.grouped else []
    load = os.getloadavg()
    if args.out is None:
        return
    table = pd.DataFrame(rows)
    table.to_csv(args.out.with_suffix(".csv"), index=False)
    lines = [
        "# ROAR retraining recipe",
        "",
        f"`python benchmarks/roar_recipe.py {' '.join(sys.argv[1:] if argv is None else argv)}`"
        .replace(" `", "`"),
        "",
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"{platform.machine()}; load average {load[0]:.1f} / {load[1]:.1f} at the end; "
        f"total {time.perf_counter() - t_all:.0f} s. Unmodified world, "
        f"{args.n_test} test images; train accuracy on the first 2,000 training images.",
        "",
        _markdown(table.round(3)),
    ]
    if groups:
        lines += ["", "k networks of the recipe's shapes trained at once as one network of "
                  "grouped convolutions (what `torch.func.vmap` over the models computes), "
                  "batch of the recipe, random data:", "",
                  _markdown(pd.DataFrame(groups).round(2))]
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
