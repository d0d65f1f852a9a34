"""The mask leak: how much class information the *removal pattern* of ROAR carries (ROAD's point).

Rong et al. (ICML 2022) argue that ROAR's retrained network can read the class from *where* pixels
were removed: an estimator's top pixels outline the object, so a gray silhouette tells the class
even when nothing of the object is left. This study measures it with ROAR's own recipe
(:func:`kit.studies.roar.retrain`):

* ``input="mask"``: a network trained and tested on the binary removal masks alone (the keep-mask
  as a black-and-white image: 255 = kept, 0 = removed), nothing of the image. Its accuracy above
  chance (1/8) is the information the pattern leaks.
* ``input=<fill>``: a network trained and tested on the images modified with that fill (``gray``:
  ROAR's silhouette; ``inpaint``: the completion inpainter; ``inpaint_removal``: the removal
  inpainter), exactly ROAR's retraining at that estimator, mode and fraction.

Does a fill hide what a gray silhouette reveals? Compare each fill's accuracy with the mask's and
with the ``random`` estimator's rows (a random pattern carries no class information: its mask row
is the chance control). The modified data sets and retrainings share ROAR's cache
(:mod:`kit.studies.roar`, namespace ``roar``): a cell ROAR has run is read back, not retrained.

Usage::

    from kit.studies import leak, roar
    table = leak.mask_leak(clf, xtr, ytr, xte, yte, maps={"SmoothGrad2": (mtr, mte)},
                           fraction=0.5, mode="roar", fills=["gray", "inpaint_removal"])
    leak.summarize(table)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from kit import checks
from kit.metrics.stats import t_interval
from kit.studies import roar

__all__ = ["INPUTS", "mask_image", "mask_leak", "summarize"]

INPUTS = ("mask",)
"""Inputs that are not a fill: ``mask`` is the removal pattern alone."""


def mask_image(keep: torch.Tensor) -> torch.Tensor:
    """A keep-mask as an 8-bit image a classifier can be trained on.

    Args:
        keep: ``(N,1,H,W)`` keep-mask in {0,1} (1 = keep).

    Returns:
        ``(N,3,H,W)`` uint8: 255 where kept, 0 where removed, the same in every channel.
    """
    checks.maps("keep", keep)
    return (keep.expand(-1, 3, -1, -1) * 255).round().to(torch.uint8).contiguous()


def mask_leak(
    model,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    maps: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    fraction: float = 0.5,
    mode: str = "roar",
    fills: Sequence[str] = ("gray", "inpaint", "inpaint_removal"),
    seeds: Sequence[int] = (0, 1),
    train_options: Mapping | None = None,
    cache: bool = True,
    progress: bool = False,
) -> pd.DataFrame:
    """Test accuracy of networks trained on the removal masks alone and on each fill's images.

    Args:
        model: the classifier the maps explain (its mean colour is the gray fill).
        train_images, train_labels, test_images, test_labels: as for
            :func:`kit.studies.roar.run_roar`.
        maps: ``{estimator: (train maps, test maps)}`` at image resolution
            (:func:`kit.studies.roar.estimator_maps`); include ``random`` for the chance control.
        fraction: fraction of pixels ranked at the top, in (0, 1).
        mode: ``"roar"`` (the top fraction removed) or ``"kar"`` (only it kept).
        fills: :mod:`kit.removers` names.
        seeds: retraining seeds.
        train_options: keys of :data:`kit.studies.roar.TRAIN_DEFAULTS`.
        cache: share ROAR's cache of modified data sets and retrainings.
        progress: tqdm bar over retrainings.

    Returns:
        Long DataFrame with columns ``estimator, input, mode, fraction, seed, accuracy, seconds``
        (``input``: ``"mask"`` or a fill name).
    """
    from tqdm import tqdm

    from kit.removers import get_remover

    mode = checks.choice("mode", mode, roar.MODES)
    fraction = checks.fraction("fraction", fraction)
    if not isinstance(maps, Mapping) or not maps:
        raise ValueError(f"maps must be a non-empty {{estimator: (train, test)}} mapping, got "
                         f"{type(maps).__name__}")
    fills = list(fills)
    for f in fills:
        get_remover(f, model=model)  # unknown names fail here, before any work
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    options = roar._recipe(train_options)
    xtr = roar._images("train_images", train_images)
    xte = roar._images("test_images", test_images)
    ytr = roar._check_labels("train_labels", train_labels, xtr.shape[0])
    yte = roar._check_labels("test_labels", test_labels, xte.shape[0])

    rows = []
    bar = tqdm(total=len(maps) * (1 + len(fills)) * len(seeds), disable=not progress,
               desc="mask leak")
    for est, (mtr, mte) in maps.items():
        for inp in [*INPUTS, *fills]:
            if inp == "mask":
                dtr = mask_image(roar.keep_mask(mtr, fraction, mode))
                dte = mask_image(roar.keep_mask(mte, fraction, mode))
            else:  # the very data set ROAR trains on at this cell (and its cache entry)
                dtr = roar._modified(xtr, mtr, fraction, mode, inp, model, cache)
                dte = roar._modified(xte, mte, fraction, mode, inp, model, cache)
            for seed in seeds:
                acc, sec = roar._trained_accuracy(dtr, ytr, dte, yte, seed, options, cache)
                rows.append(dict(estimator=est, input=inp, mode=mode, fraction=fraction,
                                 seed=seed, accuracy=acc, seconds=sec))
                bar.update()
    bar.close()
    return pd.DataFrame(rows, columns=["estimator", "input", "mode", "fraction", "seed",
                                       "accuracy", "seconds"])


def summarize(table: pd.DataFrame, *, confidence: float = 0.95) -> pd.DataFrame:
    """Mean accuracy and Student-t interval over seeds per (estimator, input).

    Returns:
        Columns ``estimator, input, mode, fraction, mean, ci_low, ci_high, n`` (NaN interval
        for a single seed).
    """
    need = {"estimator", "input", "mode", "fraction", "seed", "accuracy"}
    if not isinstance(table, pd.DataFrame) or not need <= set(table.columns):
        got = list(table.columns) if isinstance(table, pd.DataFrame) else type(table).__name__
        raise ValueError(f"table must be a mask_leak DataFrame with columns {sorted(need)}, "
                         f"got {got}")
    rows = []
    keys = ["estimator", "input", "mode", "fraction"]
    for key, g in table.groupby(keys, sort=False):
        v = g["accuracy"].to_numpy(np.float64)
        lo, hi = t_interval(v, confidence)
        rows.append({**dict(zip(keys, key, strict=True)), "mean": float(v.mean()),
                     "ci_low": lo, "ci_high": hi, "n": int(v.size)})
    return pd.DataFrame(rows)
