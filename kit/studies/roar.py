"""ROAR and KAR: remove or keep the top-ranked pixels, retrain from scratch, test (methods.md §4.6).

Hooker et al. (NeurIPS 2019, arXiv 1806.10758) judge an attribution estimator by how much a
classifier *retrained* on images whose top-``t`` pixels (by the estimator) were replaced loses on
the equally modified test set: retraining keeps the modified images in the training distribution,
so a drop means the removed pixels carried information, not that the images became unusual.

* **ROAR** (remove and retrain): the top fraction ``t`` of pixels is removed. Better estimator =
  **lower** test accuracy.
* **KAR** (keep and retrain): only the top fraction ``t`` is kept, the rest removed. Better
  estimator = **higher** test accuracy.

This module is the experiment; its parts live where every other user finds them: the estimators
are :data:`kit.attributors.METHODS` entries (the Sobel control is the registered ``sobel``
attributor), their budget is the ``"roar"`` profile (:func:`kit.attributors.budget`), maps reach
pixels by their geometry (:mod:`kit.maps`), pixels are counted and ranked by :mod:`kit.masks`'
one ranker, networks are trained by :func:`kit.train.train_classifier`, intervals come from
:func:`kit.metrics.stats.t_interval`, results are cached by :mod:`kit.cache` (namespace
``"roar"``) and the figure is :func:`kit.viz.roar.plot_curves`.

Project choices (methods.md §4.6, documented where they are made):

* **Pixel-level ranking** (the default of §4.6): each estimator's map is brought to the image's
  pixels (:func:`kit.maps.to_pixels`), squared (rank by magnitude, ``--squared_value``), min-max
  rescaled per image and shifted by ``eps = 1e-5`` (:func:`ranking_scores`); the top
  :func:`kit.masks.top_count` pixels (``floor(t * H * W + 1/2)``) are taken by
  :func:`kit.masks.top_fraction`, a stable ranking, so tied pixels are taken in raster order
  (row-major, top-left first; pitfall 25). The removal mask holds exactly that many pixels,
  whatever the ties.
* **Targets**: maps explain the *predicted* class of the classifier trained on unmodified data
  (ROAR explains the predicted class; §3.6 uses the logit for gradient methods).
* **Random baseline**: the registered ``random`` attributor, a uniform map drawn per image from a
  seeded hash of (seed, image) and ranked like every other map. It is a **seeded fixed draw**
  (the same removed pixels in every epoch and for every retraining seed), not ROAR's Bernoulli
  mask re-drawn at every load: fixed draws let the expensive inpainted data sets be computed once
  and cached, and make the random row an estimator like the others (exactly as many pixels
  removed as for them).
* **Fill**: ``"gray"`` (the reference: the classifier's training mean colour, i.e. ROAR's
  per-channel mean) or any :mod:`kit.removers` name; ``"inpaint"`` (the world inpainter) gives a
  **ROAD-like variant** ("ROAR-G"), reported as such.
* **Sobel control**: ROAR's ``scipy.ndimage.sobel(img, axis=0)`` on the normalised HWC image
  (:func:`kit.attributors.sobel.sobel`), summed over channels for the pixel-level ranking.
* **Storage**: modified images are quantised to 8 bits (as an image file would hold them) for
  every fill, cached or not, so a cached run and a fresh run train on identical tensors. Data sets
  made with a non-differentiable (expensive) remover are cached under ``roar/data``.
* **Retraining** (:func:`retrain`): :class:`kit.nets.WorldCNN` with kit's classifier recipe
  (:func:`kit.train.train_classifier`: AdamW, one-cycle learning rate, dihedral augmentation,
  normalisation by the *modified* training set's mean and std), on the modified images
  area-downsampled to 32×32, at width 8 (:data:`TRAIN_DEFAULTS`): the unmodified world reaches
  about 0.9 test accuracy in under a minute on 2 CPU cores. The trained network is wrapped so
  that it takes the 64×64 images (:class:`kit.nets.AreaResize`): masks, fills and maps stay at
  the native resolution. ROAR's resize-crop augmentation and 8/7 eval zoom (pitfall 27) are
  replaced by the world's label-preserving flips and rotations. Retraining results are cached
  (``roar/runs``; keyed by the data, the recipe, the seed, the recipe's code and the torch
  version).
* **Explained model** (:func:`reference_model`): as in ROAR, the estimators explain a network of
  the retrained architecture trained on the unmodified data (the reference row's network), not
  the shipped 64×64 classifier; its maps cost about a thirtieth of the shipped classifier's.
* **Intervals over seeds**: a Student-t 95% interval of the mean over retraining seeds (a
  percentile bootstrap over 3–5 values has too few distinct resamples to mean anything).

Usage::

    from kit.studies import roar
    maps = roar.estimator_maps(["random", "Saliency"], clf, x)              # (N,1,64,64) each
    keep = roar.keep_mask(maps["Saliency"], 0.3, "roar")                    # 30% removed
    table = roar.run_roar(clf, xtr, ytr, xte, yte, estimators=["random", "Saliency"])
    summary = roar.summarize(table); ranks = roar.ranking(table)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from kit import cache as disk
from kit import checks
from kit.engine import BATCH_SIZE
from kit.masks import top_fraction
from kit.metrics.stats import t_interval
from kit.train import train_classifier

__all__ = [
    "FRACTIONS",
    "MODES",
    "PROFILE",
    "TRAIN_DEFAULTS",
    "HIGHER_IS_BETTER",
    "EPS",
    "RECIPE_SOURCES",
    "retrain",
    "reference_model",
    "estimator_maps",
    "ranking_scores",
    "keep_mask",
    "modify",
    "accuracy",
    "run_roar",
    "summarize",
    "ranking",
    "rank_agreement",
]

FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
"""Fractions of pixels removed (ROAR) or kept (KAR), methods.md §4.6."""

MODES = ("roar", "kar")
"""``roar`` removes the top fraction, ``kar`` keeps only it."""

PROFILE = "roar"
"""The :data:`kit.attributors.PROFILES` entry of the ROAR maps (k = J = 25, an 8 px patch with
stride 8), used when no other profile is given."""

TRAIN_DEFAULTS = dict(resolution=32, epochs=15, batch_size=64, lr=1e-2, width=8,
                      weight_decay=5e-4)
"""Retraining recipe (:func:`retrain`; a documented project choice, measured by
``benchmarks/roar_recipe.py``): :func:`kit.train.train_classifier`'s optimiser, schedule and
augmentation on images area-downsampled to ``resolution`` (32×32; the shapes stay legible, 16×16
does not), a narrow :class:`~kit.nets.WorldCNN` (width 8) and enough steps. On the world the
small network *under*fits (training and test accuracy stay within a few points of each other), so
the number of optimiser steps, not the number of images, sets the accuracy. Measured on the
unmodified world (1,000 test images, seed 0, 2 shared cores): 10,000 images × 15 epochs 0.91 in
59 s (the recipe, with ``n_train = 10000``); × 12 epochs 0.90 in 53 s; 5,000 × 24 0.87; 20,000 × 4
0.85; 16×16 inputs 0.33. Width 10 was slower per step than 8 (channel counts off the SIMD width)."""

RECIPE_SOURCES = ("studies/roar.py", "train.py", "nets.py", "models/base.py")
"""The kit sources a retraining result depends on (with the torch version): the data sets are
hashed as tensors, so the removers' code is not among them, and of :mod:`kit.models` only the
:class:`~kit.models.Classifier` wrapper the trained network is evaluated through."""

HIGHER_IS_BETTER = {"roar": False, "kar": True}
"""Direction of test accuracy as an estimator score, per mode."""

EPS = 1e-5
"""Added after min-max rescaling (ROAR's ``compute_feature_ranking``); it does not change ranks."""

NAMESPACE = "roar"
"""The :mod:`kit.cache` namespace of the modified data sets (``data/``) and retrainings
(``runs/``)."""

# the code a cached modified data set depends on (with the torch version)
_SOURCES = ("studies/roar.py", "masks.py", "removers.py", "models")


# ----------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------


def _check_mode(mode) -> str:
    return checks.choice("mode", mode, MODES)


def _check_labels(name: str, y, n: int) -> torch.Tensor:
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.shape != (n,):
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"{name} must be an integer tensor of shape ({n},), got {shape}")
    return y.long()


def _check_names(estimators) -> list[str]:
    from kit.attributors import METHODS

    if isinstance(estimators, str) or not isinstance(estimators, Sequence) or not estimators:
        raise ValueError(f"estimators must be a non-empty list of names, got {estimators!r}")
    bad = [e for e in estimators if e not in METHODS]
    if bad:
        raise ValueError(f"estimators: unknown name(s) {bad}; valid names: {', '.join(METHODS)}")
    if len(set(estimators)) != len(estimators):
        raise ValueError(f"estimators: duplicate names in {list(estimators)}")
    return list(estimators)


def _images(name: str, x) -> torch.Tensor:
    """uint8 (as stored) or float [0,1] images -> float32 pixel space."""
    if isinstance(x, torch.Tensor) and x.dtype == torch.uint8:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"{name} must be a (N,3,H,W) tensor, got {tuple(x.shape)}")
        return x.float() / 255
    return checks.images(name, x).float()


# ----------------------------------------------------------------------------------------------
# estimator maps and rankings
# ----------------------------------------------------------------------------------------------


def _predict(model, x: torch.Tensor, batch_size: int = BATCH_SIZE) -> torch.Tensor:
    with torch.inference_mode():
        out = [model(x[i:i + batch_size]).argmax(1) for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out).clone()  # a normal tensor: attributors take gradients with it


def estimator_maps(
    names: Sequence[str],
    model,
    x: torch.Tensor,
    target=None,
    *,
    profile: str = PROFILE,
    overrides: Mapping[str, Mapping] | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    cache: bool = True,
    progress: bool = False,
    timings: dict | None = None,
    client=None,
) -> dict[str, torch.Tensor]:
    """Pixel-level maps of every estimator, through :func:`kit.mapcache.compute_maps`.

    Args:
        names: :data:`kit.attributors.METHODS` names (``"sobel"`` is ROAR's Sobel control).
        model: the classifier trained on unmodified data.
        x: ``(N,3,H,W)`` images in [0,1].
        target: ``(N,)`` classes explained; None = the model's predicted classes (ROAR).
        profile: the :data:`kit.attributors.PROFILES` budget (default ``"roar"``).
        overrides: per-estimator hyperparameters applied on top of the profile's.
        seed: attributor seed (SmoothGrad noise, the random map).
        batch_size: passed to the attributors.
        cache: use the on-disk map cache (:mod:`kit.mapcache`).
        progress: tqdm bar.
        timings: if a dict, receives ``{name: seconds spent computing}``.
        client: a ``distributed.Client`` to compute the maps on (None: in this process).

    Returns:
        ``{name: (N,1,H,W) float32}`` on the CPU, at the image's resolution (each map through
        its geometry, :func:`kit.maps.to_pixels`).
    """
    from kit.attributors import budget
    from kit.mapcache import compute_maps

    names = _check_names(names)
    checks.images("x", x)
    ov = budget(profile, names)
    for n, o in dict(overrides or {}).items():
        if n in names:
            ov[n] = {**ov.get(n, {}), **dict(o)}
    if target is None:
        target = _predict(model, x, batch_size or 256)
    maps = compute_maps(names, model, x, target, overrides=ov, seed=seed, batch_size=batch_size,
                        cache=cache, progress=progress, timings=timings, client=client)
    size = tuple(x.shape[-2:])
    # each map reaches pixels by the geometry it was computed with (coverage for SP grids)
    return {n: maps.pixels(n, size).float().cpu() for n in names}


def ranking_scores(sal: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """ROAR's ranking score: ``s = sal**2``, min-max rescaled per image, plus ``eps``.

    Args:
        sal: ``(N,1,H,W)`` maps.
        eps: added after rescaling (a constant map gives ``eps`` everywhere).

    Returns:
        ``(N,1,H,W)`` float32 scores in ``[eps, 1 + eps]``.
    """
    checks.maps("sal", sal)
    if not torch.isfinite(sal).all():
        raise ValueError("sal contains NaN or infinite values")
    s = sal.detach().float() ** 2
    flat = s.flatten(1)
    lo, hi = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    span = hi - lo
    flat = torch.where(span > 0, (flat - lo) / span.clamp_min(torch.finfo(s.dtype).tiny), 0.0)
    return (flat + eps).view_as(s)


def keep_mask(sal: torch.Tensor, fraction: float, mode: str) -> torch.Tensor:
    """Keep-mask (1 = keep) of ROAR (top fraction removed) or KAR (only the top fraction kept).

    The top fraction is :func:`kit.masks.top_fraction` of :func:`ranking_scores`: exactly
    :func:`kit.masks.top_count` ``(fraction, H*W)`` pixels, ties in raster order.

    Args:
        sal: ``(N,1,H,W)`` maps.
        fraction: fraction of pixels ranked at the top, in [0, 1].
        mode: ``"roar"`` or ``"kar"``.

    Returns:
        ``(N,1,H,W)`` float32 keep-mask in {0,1}; the ROAR and KAR masks of one map and fraction
        are complements.
    """
    mode = _check_mode(mode)
    fraction = checks.fraction("fraction", fraction, closed=True)
    top = top_fraction(ranking_scores(sal), fraction)
    return (~top if mode == "roar" else top).to(torch.float32)


def _quantize(x: torch.Tensor) -> torch.Tensor:
    return (x * 255).round().to(torch.uint8)


def modify(x: torch.Tensor, keep: torch.Tensor, fill="gray", *, model=None,
           batch_size: int = BATCH_SIZE) -> torch.Tensor:
    """Replace the pixels where ``keep`` is 0 with the remover ``fill``, batched.

    Args:
        x: ``(N,3,H,W)`` images in [0,1].
        keep: ``(N,1,H,W)`` keep-mask.
        fill: a :mod:`kit.removers` name or object (``"gray"``: ROAR; ``"inpaint"``: ROAR-G).
        model: classifier whose mean colour ``gray`` uses (None: the world classifier's).
        batch_size: images per remover call.

    Returns:
        ``(N,3,H,W)`` uint8 images (8-bit, as stored; divide by 255 for pixel space).
    """
    from kit.removers import get_remover

    remover = get_remover(fill, model=model)
    if not isinstance(keep, torch.Tensor) or keep.shape != (x.shape[0], 1, *x.shape[-2:]):
        shape = tuple(keep.shape) if isinstance(keep, torch.Tensor) else type(keep).__name__
        raise ValueError(f"keep must have shape ({x.shape[0]},1,{x.shape[-2]},{x.shape[-1]}), "
                         f"got {shape}")
    with torch.no_grad():
        parts = [_quantize(remover(x[i:i + batch_size], keep[i:i + batch_size]))
                 for i in range(0, x.shape[0], batch_size)]
    return torch.cat(parts)


# ----------------------------------------------------------------------------------------------
# retraining
# ----------------------------------------------------------------------------------------------


def accuracy(model, images: torch.Tensor, labels: torch.Tensor, *,
             batch_size: int = BATCH_SIZE) -> float:
    """Top-1 accuracy of ``model`` on uint8 or float images, batched under inference mode."""
    x = _images("images", images)
    y = _check_labels("labels", labels, x.shape[0])
    return float((_predict(model, x, batch_size) == y).float().mean())


def _modified(x, sal, fraction, mode, fill, model, cache: bool) -> torch.Tensor:
    """The modified uint8 data set, from the cache when the remover is expensive."""
    from kit.removers import get_remover, remover_files

    keep = keep_mask(sal, fraction, mode)
    remover = get_remover(fill, model=model)
    path = None
    if cache and not remover.differentiable and isinstance(fill, str):
        # the checkpoint(s) the fill loads (completion or removal inpainter) are in the key
        key = disk.digest(fill, repr(remover), fraction, mode, x, keep,
                          *(disk.file_digest(f) for f in remover_files(fill)),
                          disk.code_digest(*_SOURCES))
        path = disk.path(NAMESPACE, f"data/{fill}-{key}.pt")
        out = disk.read(path)
        if isinstance(out, torch.Tensor) and out.shape == x.shape and out.dtype == torch.uint8:
            return out
    out = modify(x, keep, remover, model=model)
    if path is not None:
        disk.write(out, path)
    return out


def _recipe(options: Mapping | None) -> dict:
    """:data:`TRAIN_DEFAULTS` updated by ``options``; unknown keys are a clear error."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(TRAIN_DEFAULTS))
    if unknown:
        raise ValueError(
            f"train_options: unknown key(s) {unknown}; valid: {sorted(TRAIN_DEFAULTS)}")
    recipe = {**TRAIN_DEFAULTS, **options}
    if recipe["resolution"] is not None:
        recipe["resolution"] = checks.positive_int("resolution", recipe["resolution"])
    return recipe


def retrain(images: torch.Tensor, labels: torch.Tensor, *, seed: int = 0,
            progress: bool = False, **options):
    """One network of the retraining recipe, trained from scratch on these images.

    The images are area-downsampled to the recipe's ``resolution`` and a fresh
    :class:`~kit.nets.WorldCNN` is trained on them by :func:`kit.train.train_classifier`; the
    returned classifier downsamples its input itself (:class:`kit.nets.AreaResize`), so it takes
    the images at their own size, like every other kit classifier.

    Args:
        images: ``(N,3,H,W)`` uint8 (as stored) or float images in [0,1].
        labels: ``(N,)`` class indices.
        seed: seed of initialisation, batch order and augmentation.
        progress: tqdm bar over steps.
        **options: keys of :data:`TRAIN_DEFAULTS`.

    Returns:
        A :class:`kit.models.Classifier` (eval mode, frozen) on ``(N,3,H,W)`` pixel-space images.
    """
    import torch.nn.functional as F

    from kit.models import Classifier
    from kit.nets import AreaResize

    recipe = _recipe(options)
    res = recipe.pop("resolution")
    x = _images("images", images)
    if res is not None and tuple(x.shape[-2:]) != (res, res):
        x = F.interpolate(x, size=(res, res), mode="area")
    net = train_classifier(x, labels, seed=seed, desc="roar", progress=progress, **recipe)
    if res is None:
        return net
    return Classifier(AreaResize(net.net, res), net.classes, net.mean, net.std, name="roar")


def reference_model(images: torch.Tensor, labels: torch.Tensor, *, seed: int = 0,
                    cache: bool = True, timings: dict | None = None, **options):
    """The network ROAR's estimators explain: the recipe trained on the *unmodified* images.

    ROAR computes its maps on a classifier of the retrained architecture trained on unmodified
    data (methods.md §4.6); this is :func:`retrain` on the unmodified (8-bit) training images,
    i.e. the same network as :func:`run_roar`'s reference row of the same seed. Its weights are
    cached (namespace ``roar``, ``models/``), keyed like the retrainings.

    Args:
        images, labels: the training set, as for :func:`retrain`.
        seed: retraining seed.
        cache: read / store the trained weights.
        timings: if a dict, receives ``{"seconds": the training's wall time}`` (of the run that
            filled the cache, when read from it).
        **options: keys of :data:`TRAIN_DEFAULTS`.

    Returns:
        A :class:`kit.models.Classifier` on ``(N,3,H,W)`` pixel-space images.
    """
    from kit.models import Classifier
    from kit.nets import AreaResize, WorldCNN

    recipe = _recipe(options)
    x8 = _quantize(_images("images", images))
    y = _check_labels("labels", labels, x8.shape[0])
    path = None
    if cache:
        key = disk.digest(x8, y, seed, sorted(recipe.items()), disk.code_digest(*RECIPE_SOURCES))
        path = disk.path(NAMESPACE, f"models/{key}.pt")
        rec = disk.read(path)
        if isinstance(rec, dict) and {"state", "mean", "std", "classes"} <= set(rec):
            net = WorldCNN(len(rec["classes"]), recipe["width"])
            if recipe["resolution"] is not None:
                net = AreaResize(net, recipe["resolution"])
            net.load_state_dict(rec["state"])
            # the layout the trained network had: the same convolution kernels, the same bits
            net = net.to(memory_format=torch.channels_last)
            if timings is not None:
                timings["seconds"] = float(rec.get("seconds", float("nan")))
            return Classifier(net.eval(), rec["classes"], rec["mean"], rec["std"], name="roar")
    t0 = time.perf_counter()
    clf = retrain(x8, y, seed=seed, **options)
    seconds = time.perf_counter() - t0
    if timings is not None:
        timings["seconds"] = seconds
    if path is not None:
        disk.write({"state": clf.net.state_dict(), "mean": list(clf.mean), "std": list(clf.std),
                    "classes": list(clf.classes), "seconds": seconds}, path)
    return clf


def _trained_accuracy(xtr, ytr, xte, yte, seed, options, cache: bool) -> tuple[float, float]:
    """(test accuracy, seconds) of one retraining, from the cache when it was run before."""
    recipe = _recipe(options)
    path = None
    if cache:
        key = disk.digest(xtr, ytr, xte, yte, seed, sorted(recipe.items()),
                          disk.code_digest(*RECIPE_SOURCES))
        path = disk.path(NAMESPACE, f"runs/{key}.pt")
        rec = disk.read(path)
        if isinstance(rec, dict) and {"accuracy", "seconds"} <= set(rec):
            return float(rec["accuracy"]), float(rec["seconds"])
    t0 = time.perf_counter()
    net = retrain(xtr, ytr, seed=seed, **recipe)
    acc = accuracy(net, xte, yte)
    seconds = time.perf_counter() - t0
    if path is not None:
        disk.write({"accuracy": acc, "seconds": seconds}, path)
    return acc, seconds


def _reference_accuracy(xtr, ytr, xte, yte, seed, options, cache: bool) -> tuple[float, float]:
    """(test accuracy, seconds) of the network trained on the unmodified (8-bit) images: the
    :func:`reference_model` of that seed, so the explained network is trained once."""
    timings: dict = {}
    net = reference_model(xtr, ytr, seed=seed, cache=cache, timings=timings, **options)
    return accuracy(net, _quantize(xte), yte), timings["seconds"]


_MEMO: dict = {}
"""The last modified data sets this process made ({(run, fill, estimator, mode, fraction):
(train, test)}): the retrainings of one configuration differ only by seed and run one after
another, so they share one modification instead of remaking it per seed."""


def _retraining_task(task, *, model, xtr, ytr, xte, yte, maps, options, cache):
    """One retraining of :func:`run_roar` (a :func:`kit.distributed.map_tasks` task): modify the
    data sets of the task's configuration (or take the unmodified ones), retrain, test.

    Returns:
        ``(test accuracy, seconds)``.
    """
    if task["estimator"] == "none":  # the reference network: shared with reference_model
        return _reference_accuracy(xtr, ytr, xte, yte, task["seed"], options, cache)
    key = (task["run"], task["fill"], task["estimator"], task["mode"], task["fraction"])
    if key not in _MEMO:
        _MEMO.clear()  # one configuration at a time: the memo never holds more than two sets
        str_, ste = maps[task["estimator"]]
        _MEMO[key] = (_modified(xtr, str_, task["fraction"], task["mode"], task["fill"], model,
                                cache),
                      _modified(xte, ste, task["fraction"], task["mode"], task["fill"], model,
                                cache))
    dtr, dte = _MEMO[key]
    return _trained_accuracy(dtr, ytr, dte, yte, task["seed"], options, cache)


# ----------------------------------------------------------------------------------------------
# the experiment
# ----------------------------------------------------------------------------------------------


def run_roar(
    model,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    estimators: Sequence[str],
    fractions: Sequence[float] = FRACTIONS,
    modes: Sequence[str] = MODES,
    fills: Sequence[str] = ("gray", "inpaint"),
    seeds: Sequence[int] = (0, 1, 2),
    train_options: Mapping | None = None,
    maps: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    profile: str = PROFILE,
    map_overrides: Mapping[str, Mapping] | None = None,
    map_seed: int = 0,
    cache: bool = True,
    progress: bool = False,
    client=None,
) -> pd.DataFrame:
    """ROAR / KAR accuracies for every (estimator, mode, fill, fraction, retraining seed).

    For each estimator, mode, fill and fraction the training and test images are modified once
    (their own maps, computed on ``model``), then a fresh network is trained per seed on the
    modified training set and tested on the modified test set. One extra retraining per seed on
    the unmodified data gives the reference rows (``estimator="none"``, ``mode="none"``,
    ``fill="none"``, ``fraction=0``).

    Args:
        model: the classifier trained on unmodified data (explained by the estimators).
        train_images, train_labels: ``(N,3,H,W)`` in [0,1] and ``(N,)`` ground-truth labels.
        test_images, test_labels: likewise for the test set.
        estimators: :data:`kit.attributors.METHODS` names (``"sobel"``: the Sobel control).
        fractions: fractions of pixels in (0, 1].
        modes: subset of :data:`MODES`.
        fills: :mod:`kit.removers` names (``"gray"`` = ROAR's mean fill; ``"inpaint"`` = ROAR-G).
        seeds: retraining seeds.
        train_options: keys of :data:`TRAIN_DEFAULTS`.
        maps: precomputed ``{name: (train maps, test maps)}`` at image resolution; missing ones
            are computed with :func:`estimator_maps`.
        profile: budget of the computed maps (:data:`kit.attributors.PROFILES`).
        map_overrides: estimator hyperparameters on top of the profile's.
        map_seed: seed of the stochastic estimators (the random map, SmoothGrad noise).
        cache: reuse/store maps, expensive modified data sets and retraining results on disk.
        progress: tqdm bar over retrainings.
        client: None = in this process; a ``distributed.Client`` = one task per retraining
            (:func:`kit.distributed.map_tasks`: the classifier, images and maps go to each
            worker once; a task modifies its data set itself, from the cache when it is
            expensive), with the same table. The estimator maps are computed before, through
            :func:`kit.mapcache.compute_maps` with the same client.

    Returns:
        Long DataFrame with columns ``estimator, mode, fill, fraction, seed, accuracy, seconds``
        (``seconds``: wall time of that retraining and test, or of the run that filled the cache).
    """
    from kit.distributed import map_tasks
    from kit.removers import get_remover

    estimators = _check_names(estimators)
    fractions = [checks.fraction("fractions", f, closed=True) for f in fractions]
    if not fractions:
        raise ValueError("fractions must not be empty")
    modes = [_check_mode(m) for m in modes]
    for f in fills:
        get_remover(f, model=model)  # unknown names fail here, before any work
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    options = _recipe(train_options)
    xtr, xte = _images("train_images", train_images), _images("test_images", test_images)
    ytr = _check_labels("train_labels", train_labels, xtr.shape[0])
    yte = _check_labels("test_labels", test_labels, xte.shape[0])

    maps = dict(maps or {})
    missing = [e for e in estimators if e not in maps]
    if missing:
        kw = dict(profile=profile, overrides=map_overrides, seed=map_seed, cache=cache,
                  client=client)
        mtr = estimator_maps(missing, model, xtr, **kw)
        mte = estimator_maps(missing, model, xte, **kw)
        maps.update({e: (mtr[e], mte[e]) for e in missing})

    # one task per retraining, in the serial order (seeds innermost); the reference rows first
    run = uuid.uuid4().hex  # names this call's data sets in the per-process memo
    tasks = [dict(estimator="none", mode="none", fill="none", fraction=0.0, seed=seed)
             for seed in seeds]
    tasks += [dict(estimator=est, mode=mode, fill=fill, fraction=frac, seed=seed, run=run)
              for fill in fills for est in estimators for mode in modes for frac in fractions
              for seed in seeds]
    shared = dict(model=model, xtr=xtr, ytr=ytr, xte=xte, yte=yte, maps=maps, options=options,
                  cache=cache)
    done = map_tasks(_retraining_task, tasks, client=client, shared=shared, progress=progress,
                     desc="ROAR retrainings")
    _MEMO.clear()  # in-process runs: free the last data sets
    rows = [{**{k: v for k, v in task.items() if k != "run"}, "accuracy": acc, "seconds": sec}
            for task, (acc, sec) in zip(tasks, done, strict=True)]
    return pd.DataFrame(rows, columns=["estimator", "mode", "fill", "fraction", "seed",
                                       "accuracy", "seconds"])

# ----------------------------------------------------------------------------------------------
# tables
# ----------------------------------------------------------------------------------------------


def _check_table(table) -> None:
    cols = {"estimator", "mode", "fill", "fraction", "seed", "accuracy"}
    if not isinstance(table, pd.DataFrame) or not cols <= set(table.columns):
        got = list(table.columns) if isinstance(table, pd.DataFrame) else type(table).__name__
        raise ValueError(
            f"table must be a run_roar DataFrame with columns {sorted(cols)}, got {got}")


def summarize(table: pd.DataFrame, *, confidence: float = 0.95) -> pd.DataFrame:
    """Mean test accuracy and Student-t interval over retraining seeds per configuration.

    Returns:
        Columns ``estimator, mode, fill, fraction, metric, mean, ci_low, ci_high, n,
        higher_is_better`` (``metric`` = ``"accuracy"``; direction per mode, None for the
        unmodified reference), in :func:`kit.report.summarize`'s layout.
    """
    _check_table(table)
    rows = []
    keys = ["estimator", "mode", "fill", "fraction"]
    for key, g in table.groupby(keys, sort=False):
        v = g["accuracy"].to_numpy(np.float64)
        lo, hi = t_interval(v, confidence)
        rows.append({**dict(zip(keys, key, strict=True)), "metric": "accuracy",
                     "mean": float(v.mean()), "ci_low": lo, "ci_high": hi, "n": int(v.size),
                     "higher_is_better": HIGHER_IS_BETTER.get(key[1])})
    return pd.DataFrame(rows)


def ranking(table: pd.DataFrame, *, confidence: float = 0.95) -> pd.DataFrame:
    """Rank the estimators per (mode, fill) by mean test accuracy over the fractions.

    An estimator's score for one retraining seed is its accuracy averaged over the fractions (the
    area under its accuracy-vs-fraction curve, up to the fraction spacing). ROAR ranks the lowest
    score first, KAR the highest. Against ``random``, the paired difference over seeds (same seed =
    same initialisation and batch order) with a Student-t interval decides ``beats_random``:
    the interval must exclude 0 on the estimator's better side.

    Returns:
        Columns ``mode, fill, estimator, rank, score, ci_low, ci_high, diff_vs_random,
        diff_ci_low, diff_ci_high, beats_random``, sorted by mode, fill and rank.
    """
    _check_table(table)
    t = table[table["mode"].isin(MODES)]
    per_seed = t.groupby(["mode", "fill", "estimator", "seed"], sort=False)["accuracy"].mean()
    rows = []
    for (mode, fill), g in per_seed.groupby(level=["mode", "fill"], sort=False):
        scores = g.droplevel(["mode", "fill"]).unstack("seed")  # estimator x seed
        rnd = scores.loc["random"] if "random" in scores.index else None
        sign = 1.0 if HIGHER_IS_BETTER[mode] else -1.0
        means = scores.mean(axis=1)
        order = (-sign * means).rank(method="min")
        for est, row in scores.iterrows():
            v = row.dropna().to_numpy(np.float64)
            lo, hi = t_interval(v, confidence)
            rec = dict(mode=mode, fill=fill, estimator=est, rank=int(order[est]),
                       score=float(v.mean()), ci_low=lo, ci_high=hi, diff_vs_random=np.nan,
                       diff_ci_low=np.nan, diff_ci_high=np.nan, beats_random=False)
            if rnd is not None and est != "random":
                d = (row - rnd).dropna().to_numpy(np.float64)
                dlo, dhi = t_interval(d, confidence)
                rec.update(diff_vs_random=float(d.mean()), diff_ci_low=dlo, diff_ci_high=dhi,
                           beats_random=bool(dlo > 0 if sign > 0 else dhi < 0))
            rows.append(rec)
    out = pd.DataFrame(rows)
    return out.sort_values(["mode", "fill", "rank"], kind="stable").reset_index(drop=True)


def rank_agreement(ranks: pd.DataFrame, a: str = "gray", b: str = "inpaint") -> pd.DataFrame:
    """Does the fill change the ranking? Spearman and Kendall correlation of the ranks per mode.

    Args:
        ranks: a :func:`ranking` table holding both fills.
        a, b: the two fills compared.

    Returns:
        Columns ``mode, fill_a, fill_b, n_estimators, spearman, kendall, same_best,
        best_a, best_b`` (NaN correlations for fewer than 3 estimators).
    """
    from scipy import stats

    rows = []
    for mode, g in ranks.groupby("mode", sort=False):
        ra = g[g["fill"] == a].set_index("estimator")["score"]
        rb = g[g["fill"] == b].set_index("estimator")["score"]
        common = [e for e in ra.index if e in rb.index]
        if not common:
            continue
        sa, sb = ra[common].to_numpy(), rb[common].to_numpy()
        if len(common) >= 3:
            rho, tau = stats.spearmanr(sa, sb).statistic, stats.kendalltau(sa, sb).statistic
        else:
            rho = tau = float("nan")
        pick = np.argmax if HIGHER_IS_BETTER[mode] else np.argmin
        best_a, best_b = common[int(pick(sa))], common[int(pick(sb))]
        rows.append(dict(mode=mode, fill_a=a, fill_b=b, n_estimators=len(common),
                         spearman=float(rho), kendall=float(tau), same_best=best_a == best_b,
                         best_a=best_a, best_b=best_b))
    return pd.DataFrame(rows)
