"""The GAD study: support models, then baseline and GAD maps with RC / RS for every method and α.

GAD (gradient artificial distancing; Rodrigues, Boutry & Najman, arXiv 2401.14434) "creates
artificial shifts in final activations between chosen classes and trains support regression
models to mimic these changes, then fuses multiple explanations". No public code exists; kit
follows the project's reading of the abstract, ``methods.md`` §3.8 (method) and §4.7 (ratios):

* **Distancing** (class-conditional). For classes ``a`` and ``b`` and a strength α, the
  regression target of a training image of class ``y`` (``o`` the pair's other class) is the
  original classifier's logits with the image's own class pushed up and the other down,
  ``z*(x) = f(x) + (α/2)·e_y − (α/2)·e_o`` (:func:`distanced_targets`), so every image's own
  margin ``z_y − z_o`` grows by α. (Before issue 13 every image was pushed toward class a: on
  class-b images that is anti-distancing, and that target's exact optimum is a change of the
  final bias, which leaves every gradient map unchanged.) :func:`margin_summary` reports the
  margin before and after, per class, with CIs.
* **Support models.** ``k`` copies of the classifier (seeds ``seed .. seed+k−1``, the seed sets the
  data order) are fine-tuned to ``z*`` with an MSE on all logits (Adam, lr 1e-4, batch 64,
  5 epochs, BatchNorm in eval mode, no augmentation) by :func:`train_support_models`. Each copy is
  stored in the :mod:`kit.cache` namespace ``"gad"`` (``KIT_CACHE``, read at call time), keyed by
  its full configuration and a digest of the original weights, so a rerun loads instead of
  training. α = 0 is the no-GAD baseline: it explains the **original** model and trains nothing
  (training copies at α = 0 is the optional "fusion only" control).
* **Bias-only control** (:func:`bias_only_control`): the original model with its final bias
  shifted by ``(α/2)(e_a − e_b)``, a model whose logits are distanced without any change of its
  input gradients; its RC and RS are exactly 1, so any GAD effect comes from changed gradients.
* **q tied to the object** (:func:`resolve_q`): ``q = "object"`` keeps, per image, the fraction
  of pixels the world's object covers (a fixed q = 20% is twice the objects' mean area).
* **Fusion** and the baseline: :mod:`kit.attributors.gad`. **Ratios** RC and RS:
  :mod:`kit.metrics.gad`. :func:`gad_table` runs both for every (method, α) and returns the long
  ``image, method, alpha, metric, value`` table that :func:`kit.report.summarize` reads;
  :func:`compare_to_baseline` turns the summary into verdicts against ratio 1.

Usage::

    from kit import models, world
    from kit.studies import gad
    clf = models.load_classifier("world")
    a, b = gad.resolve_classes(["disk", "ellipse"], clf.classes)
    sup = gad.train_support_models(clf, (a, b), alpha=4, k=3)      # cached after the first call
    batch = gad.pair_batch(a, b, 32, split="test")
    q = gad.resolve_q("object", batch.masks)                        # (32,) object area fractions
    bias = gad.bias_only_control(clf, (a, b), 4)                   # RC = RS = 1 exactly
    run = gad.gad_table(clf, batch.images, batch.labels, (a + b) - batch.labels, {4.0: sup},
                        ["IntegratedGradients"], q=q, bias_control=bias)
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from kit import cache as disk_cache
from kit import checks, world
from kit.attributors import METHODS, budget
from kit.attributors.gad import baseline_explain, gad_explain
from kit.attributors.gradients import REDUCTIONS
from kit.engine import BATCH_SIZE
from kit.metrics.gad import HIGHER_IS_BETTER, gad_ratios, logits, pair_margin
from kit.metrics.stats import bootstrap_ci

__all__ = [
    "GRADIENT_METHODS",
    "CONTROL_SUFFIX",
    "BIAS_SUFFIX",
    "HULL_METRICS",
    "SupportModels",
    "GadRun",
    "resolve_classes",
    "gradient_methods",
    "resolve_methods",
    "distanced_targets",
    "pair_batch",
    "pair_images",
    "resolve_q",
    "support_key",
    "train_support_models",
    "bias_only_control",
    "support_summary",
    "margin_table",
    "margin_summary",
    "pair_margin",
    "gad_table",
    "compare_to_baseline",
]

GRADIENT_METHODS = (
    "saliency", "input_x_gradient", "integrated_gradients", "smoothgrad", "guided_backprop",
)
"""The gradient attributors GAD is evaluated with (keys of ``kit.attributors.ATTRIBUTORS``)."""

CONTROL_SUFFIX = " (fusion only)"
"""Appended to a method's name for the optional control: k copies trained at α = 0 (pure
distillation) fused like GAD, which separates the effect of fusing several models from the effect
of distancing (methods.md §3.8)."""

BIAS_SUFFIX = " (bias only)"
"""Appended to a method's name for the bias-only control (:func:`bias_only_control`): its
ratios are exactly 1, whatever the method, since a bias changes no input gradient."""

HULL_METRICS = {"hull_area_0": False, "hull_area_gad": False, "regions_0": False,
                "regions_gad": False, "q": False}
"""Metrics of :attr:`GadRun.hulls` (hull areas as fractions of the image, region counts, the
top-q fraction) and their direction for :func:`kit.report.summarize` (smaller = simpler)."""

_TRAIN_VERSION = 3
"""Bumped whenever the training procedure or the cache entry changes, so stale cached models are
never loaded. 3: class-conditional targets (issue 13); 2: entries are :mod:`kit.cache` records
(checksummed); version 1 wrote plain ``torch.save`` files under ``paths.CACHE_DIR/gad``."""

_WORLD_DRAW = 2048
"""Most world images rendered per draw while collecting class-a/b images."""


# ----------------------------------------------------------------------------------------------
# checks and names
# ----------------------------------------------------------------------------------------------


def _alpha(alpha) -> float:
    alpha = checks.number("alpha", alpha, minimum=0.0)
    if not math.isfinite(alpha):  # checks.number accepts inf; a distancing must be finite
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
    return alpha


def _pair(classes, n_classes: int | None) -> tuple[int, int]:
    """``classes`` as two distinct class indices (names are resolved by the caller)."""
    if (not isinstance(classes, (tuple, list)) or len(classes) != 2
            or not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool)
                       for c in classes)):
        raise ValueError(f"classes must be two class indices (a, b), got {classes!r}")
    a, b = int(classes[0]), int(classes[1])
    if a == b:
        raise ValueError(f"classes must be two different classes, got {classes!r}")
    if n_classes is not None and not (0 <= a < n_classes and 0 <= b < n_classes):
        raise ValueError(
            f"classes must be in [0, {n_classes - 1}] (model classes), got {classes!r}")
    return a, b


def resolve_classes(names: Sequence, classes: Sequence[str]) -> tuple[int, int]:
    """Two class names (or indices) -> two distinct indices into ``classes``.

    Raises:
        ValueError: an unknown name (the message lists the valid ones) or the same class twice.
    """
    if isinstance(names, str) or not isinstance(names, Sequence) or len(names) != 2:
        raise ValueError(f"names must be two class names, got {names!r}")
    out = []
    for name in names:
        if isinstance(name, str):
            if name not in classes:
                raise ValueError(f"unknown class {name!r}; valid names: {', '.join(classes)}")
            out.append(list(classes).index(name))
        else:
            out.append(name)
    return _pair(tuple(out), len(classes))


def gradient_methods() -> dict[str, tuple[str, dict]]:
    """Names :func:`gad_table` accepts -> (attributor name, parameters).

    The gradient entries of ``kit.attributors.METHODS`` (``"IntegratedGradients"``, ...) and the
    gradient attributors' own names (``"integrated_gradients"``, ...).
    """
    out = {name: (m.attributor, dict(m.params)) for name, m in METHODS.items()
           if m.attributor in REDUCTIONS}
    out.update({name: (name, {}) for name in REDUCTIONS})
    return out


def resolve_methods(methods: Sequence[str]) -> dict[str, tuple[str, dict]]:
    """Check gradient method names; returns name -> (attributor name, parameters).

    Raises:
        ValueError: not a non-empty list, or an unknown name (the message lists the valid ones).
    """
    if isinstance(methods, str) or not isinstance(methods, Sequence) or not methods:
        raise ValueError(f"methods must be a non-empty list of method names, got {methods!r}")
    valid = gradient_methods()
    for m in methods:
        if m not in valid:
            raise ValueError(f"unknown gradient method {m!r}; valid names: {', '.join(valid)}")
    return {m: valid[m] for m in methods}


# ----------------------------------------------------------------------------------------------
# distancing and support models
# ----------------------------------------------------------------------------------------------


def _labels(name: str, labels, a: int, b: int, n: int) -> torch.Tensor:
    """``labels`` as an ``(n,)`` long tensor of classes a or b."""
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.shape[0] != n:
        got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"{name} must be a ({n},) tensor of class indices, got {got}")
    labels = labels.long()
    if not bool(((labels == a) | (labels == b)).all()):
        raise ValueError(f"{name} must hold only the pair's classes {a} and {b}, "
                         f"got {sorted(set(labels.tolist()))}")
    return labels


def distanced_targets(logits: torch.Tensor, labels: torch.Tensor, a: int, b: int,
                      alpha: float) -> torch.Tensor:
    """Class-conditional targets: the image's own class up by α/2, the pair's other down by α/2.

    For an image of class ``y`` (``o = a + b − y``): ``z* = logits + (α/2)·e_y − (α/2)·e_o``, so
    its own margin ``z_y − z_o`` grows by exactly α; every other logit is unchanged.

    Args:
        logits: ``(N,C)`` original logits.
        labels: ``(N,)`` classes of the images, each a or b.
        a, b: the two classes.
        alpha: distancing strength α >= 0.

    Returns:
        ``(N,C)`` targets.
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"logits must be a (N,C) tensor, got {got}")
    a, b = _pair((a, b), logits.shape[1])
    alpha = _alpha(alpha)
    y = _labels("labels", labels, a, b, logits.shape[0]).to(logits.device)
    rows = torch.arange(logits.shape[0], device=logits.device)
    z = logits.clone()
    z[rows, y] += alpha / 2
    z[rows, (a + b) - y] -= alpha / 2
    return z


def pair_batch(a: int, b: int, n: int, *, seed: int = 0, split: str = "train",
               size: int = 64) -> world.WorldBatch:
    """The first ``n`` world samples of class ``a`` or ``b`` in a split's stream, with masks.

    Images are rendered in consecutive draws of the stream and filtered by label, so the set
    depends only on ``(a, b, n, seed, split, size)``.

    Returns:
        A :class:`kit.world.WorldBatch` of ``n`` samples (images, labels, object masks, boxes,
        true backgrounds).
    """
    a, b = _pair((a, b), len(world.CLASSES))
    n = checks.positive_int("n", n)
    parts, start, have = [], 0, 0
    while have < n:
        # a and b are 2 of 8 equally likely classes: draw about 4.4x what is still missing
        draw = min(_WORLD_DRAW, math.ceil(4.4 * (n - have)) + 32)
        batch = world.sample(draw, seed=seed, split=split, start=start, size=size)
        keep = ((batch.labels == a) | (batch.labels == b)).nonzero().view(-1)
        parts.append(batch[keep])
        have += int(keep.numel())
        start += draw
    fields = [f.name for f in dataclasses.fields(world.WorldBatch)]
    return world.WorldBatch(*(torch.cat([getattr(p, f) for p in parts])[:n] for f in fields))


def pair_images(a: int, b: int, n: int, *, seed: int = 0, split: str = "train",
                size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """The images and labels of :func:`pair_batch`.

    Returns:
        ``images (n,3,size,size)`` and ``labels (n,)``.
    """
    batch = pair_batch(a, b, n, seed=seed, split=split, size=size)
    return batch.images, batch.labels


def resolve_q(q, masks: torch.Tensor | None = None):
    """GAD's top-q fraction: a number in (0, 1], or ``"object"`` = each image's object area.

    With ``"object"`` the top-q set of image i has as many pixels as its object covers
    (``masks[i].mean()``, the world's masks), so the baseline's support could cover the object
    exactly; a fixed q = 20% is about twice the mean object area of the 64×64 world.

    Args:
        q: a number in (0, 1] or ``"object"``.
        masks: ``(N,1,H,W)`` bool object masks (``kit.world.WorldBatch.masks``); needed for
            ``"object"``.

    Returns:
        The float, or an ``(N,)`` float64 tensor of per-image fractions.
    """
    if isinstance(q, str):
        if q != "object":
            raise ValueError(f"q must be a number in (0, 1] or 'object', got {q!r}")
        if not isinstance(masks, torch.Tensor) or masks.dim() != 4 or masks.shape[1] != 1:
            got = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
            raise ValueError("q='object' needs masks, the (N,1,H,W) object masks of the images "
                             f"(kit.world.WorldBatch.masks), got {got}")
        frac = masks.detach().bool().flatten(1).double().mean(1).cpu()
        if not bool((frac > 0).all()):
            raise ValueError("q='object' needs an object on every image; masks has "
                             f"{int((frac == 0).sum())} empty mask(s)")
        return frac
    q = checks.number("q", q, minimum=0.0, maximum=1.0, strict=False)
    if q == 0:
        raise ValueError(f"q must be a number in (0, 1] or 'object', got {q!r}")
    return q


def support_key(config: Mapping) -> str:
    """Cache key of one support model: SHA-256 (first 32 hex digits) of its configuration.

    Args:
        config: JSON-serialisable mapping: classes, α, the copy's seed, training settings, the
            original model's digest, the training-data description and the training version.
    """
    blob = json.dumps(dict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class SupportModels:
    """Support models of one (class pair, α), from :func:`train_support_models`.

    Attributes:
        models: the k fine-tuned copies (eval mode, frozen).
        classes: ``(a, b)``.
        alpha: the distancing strength.
        keys: cache key of each copy.
        from_cache: whether each copy was loaded from the cache.
        losses: final-epoch mean MSE of each copy (stored with the cached file).
        seconds: training time of each copy (as recorded when it was trained).
        kind: ``"distanced"`` (α > 0), ``"fusion only"`` (copies trained at α = 0) or
            ``"bias only"`` (:func:`bias_only_control`).
    """

    models: tuple
    classes: tuple[int, int]
    alpha: float
    keys: tuple[str, ...]
    from_cache: tuple[bool, ...]
    losses: tuple[float, ...]
    seconds: tuple[float, ...]
    kind: str = "distanced"


def _finetune(model, x: torch.Tensor, zstar: torch.Tensor, *, epochs: int, lr: float,
              batch_size: int, seed: int, bar) -> tuple[dict, float]:
    """One support copy: Adam on the MSE to ``zstar``, BatchNorm frozen in eval mode."""
    net = copy.deepcopy(model)
    net.eval()  # BatchNorm uses (and keeps) the original running statistics
    for p in net.parameters():
        p.requires_grad_(True)
    # channels-last: same values, faster oneDNN convolutions on the CPU
    net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)  # the copy's seed sets only the data order
    n = x.shape[0]
    last = float("nan")
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        total, seen = 0.0, 0
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            xb = x[idx].contiguous(memory_format=torch.channels_last)
            loss = F.mse_loss(net(xb), zstar[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
            bar.update()
        last = total / seen
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    return state, last


def _as_support(model, state: dict):
    net = copy.deepcopy(model)
    net.load_state_dict(state)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def train_support_models(
    model, classes: Sequence[int], alpha: float, *, k: int = 3, n_train: int = 1000,
    epochs: int = 5, lr: float = 1e-4, batch_size: int = 64, seed: int = 0,
    images: torch.Tensor | None = None, labels: torch.Tensor | None = None, cache: bool = True,
    cache_dir: str | Path | None = None, progress: bool = False,
) -> SupportModels:
    """Fine-tune ``k`` copies of ``model`` to the distanced logits (methods.md §3.8), with a cache.

    The original model is never modified. Copy ``j`` uses seed ``seed + j`` for its data order.
    Each copy is stored as ``<cache_dir>/<support_key(config)>.pt`` by :func:`kit.cache.write`
    (atomic, checksummed; a corrupted entry is retrained and overwritten); the key covers every
    setting below, the original weights' digest and the training data (the world stream, or a
    digest of ``images``), so changing any of them trains anew.

    Args:
        model: the original pixel-space classifier (an ``nn.Module`` mapping ``(N,3,H,W)`` in
            [0,1] to ``(N,C)`` logits).
        classes: ``(a, b)`` class indices; every training image's own margin (``z_a − z_b`` on
            class a, ``z_b − z_a`` on class b) is pushed up by α (:func:`distanced_targets`).
        alpha: distancing strength α >= 0 (0 = pure distillation, the optional control).
        k: number of copies.
        n_train: class-a/b training images drawn from the world's ``train`` stream (``seed``);
            ignored when ``images`` is given.
        epochs, lr, batch_size: Adam fine-tuning settings.
        seed: seed of the world stream and of the first copy's data order.
        images: ``(M,3,H,W)`` training images to use instead of world images.
        labels: ``(M,)`` their classes (each a or b); required with ``images``.
        cache: load / store copies under ``cache_dir``.
        cache_dir: default ``kit.cache.path("gad", ...)``, under ``KIT_CACHE`` read at call time.
        progress: show a tqdm bar over training steps.

    Returns:
        :class:`SupportModels`.

    Raises:
        ValueError / TypeError naming the bad argument.
    """
    use_cache = checks.boolean("cache", cache)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    n_classes = len(getattr(model, "classes", ())) or None
    a, b = _pair(tuple(classes) if isinstance(classes, (list, tuple)) else classes, n_classes)
    alpha = _alpha(alpha)
    k = checks.positive_int("k", k)
    epochs = checks.positive_int("epochs", epochs)
    batch_size = checks.positive_int("batch_size", batch_size)
    seed = checks.seed("seed", seed)
    lr = checks.number("lr", lr, minimum=0.0, strict=True)
    if images is None:
        n_train = checks.positive_int("n_train", n_train)
        data = {"source": "world", "split": "train", "n_train": n_train, "seed": seed}
    else:
        checks.images("images", images)
        if labels is None:
            raise ValueError("labels must be given with images: the (M,) classes (a or b) that "
                             "set each image's distancing direction")
        labels = _labels("labels", labels, a, b, images.shape[0])
        data = {"source": "images", "digest": disk_cache.digest(images.detach().float()),
                "labels": disk_cache.digest(labels.float())}
    base = {
        "version": _TRAIN_VERSION, "torch": torch.__version__.split("+")[0],
        "model": disk_cache.model_digest(model), "classes": [a, b], "alpha": alpha,
        "epochs": epochs, "lr": lr, "batch_size": batch_size, "data": data,
        "targets": "class-conditional",
    }
    configs = [{**base, "copy_seed": seed + j} for j in range(k)]
    keys = [support_key(c) for c in configs]
    folder = Path(cache_dir) if cache_dir is not None else disk_cache.cache_root() / "gad"
    states: list[dict | None] = [None] * k
    losses, seconds, hits = [float("nan")] * k, [float("nan")] * k, [False] * k
    if use_cache:
        for j, key in enumerate(keys):
            blob = disk_cache.read(folder / f"{key}.pt")  # None when absent or corrupted
            if blob is not None:
                states[j], losses[j], seconds[j] = blob["state_dict"], blob["loss"], blob["seconds"]
                hits[j] = True
    todo = [j for j in range(k) if states[j] is None]
    if todo:
        # the training set and its targets are built only when something must be trained
        if images is None:
            x, y = pair_images(a, b, n_train, seed=seed)
        else:
            x, y = images.detach(), labels
        zstar = distanced_targets(logits(model, x), y, a, b, alpha)
        steps = len(todo) * epochs * math.ceil(x.shape[0] / batch_size)
        with tqdm(total=steps, disable=not progress, desc=f"GAD support α={alpha:g}",
                  leave=False) as bar:
            for j in todo:
                t0 = time.time()
                states[j], losses[j] = _finetune(model, x, zstar, epochs=epochs, lr=lr,
                                                 batch_size=batch_size, seed=seed + j, bar=bar)
                seconds[j] = time.time() - t0
                if use_cache:
                    disk_cache.write({"state_dict": states[j], "config": json.dumps(configs[j]),
                                 "loss": losses[j], "seconds": seconds[j]},
                                folder / f"{keys[j]}.pt")
    return SupportModels(
        models=tuple(_as_support(model, s) for s in states), classes=(a, b), alpha=alpha,
        keys=tuple(keys), from_cache=tuple(hits), losses=tuple(float(v) for v in losses),
        seconds=tuple(float(v) for v in seconds),
        kind="fusion only" if alpha == 0 else "distanced",
    )


def _output_layer(model) -> torch.nn.Linear:
    """The model's output layer: its last ``nn.Linear`` with a bias (e.g. a ResNet's ``fc``)."""
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.bias is not None]
    if not linears:
        raise ValueError("model must end in an nn.Linear layer with a bias (its logits) for "
                         "the bias-only control; it has none")
    return linears[-1]


def bias_only_control(model, classes: Sequence[int], alpha: float) -> SupportModels:
    """A distanced copy that differs from ``model`` only in its final bias: the control.

    The copy's output bias is shifted by ``(α/2)(e_a − e_b)``: its pair margin ``z_a − z_b`` grows
    by exactly α on every image (class-a images are distanced by +α, class-b images by −α; it is
    the exact optimum of the label-independent target kit used before issue 13). A bias changes
    no gradient of a logit with respect to the input, so every gradient map, every top-q set and
    therefore RC and RS equal the baseline's exactly: a ratio ≠ 1 for a real support model comes
    from its changed gradients, not from the shifted logits. Nothing is trained or cached.

    Args:
        model: the original classifier (not modified).
        classes: ``(a, b)``.
        alpha: the bias shift α >= 0.

    Returns:
        :class:`SupportModels` with one copy, ``kind="bias only"``.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    n_classes = len(getattr(model, "classes", ())) or None
    a, b = _pair(tuple(classes) if isinstance(classes, (list, tuple)) else classes, n_classes)
    alpha = _alpha(alpha)
    net = copy.deepcopy(model)
    fc = _output_layer(net)
    if not (0 <= a < fc.out_features and 0 <= b < fc.out_features):
        raise ValueError(f"classes {(a, b)} are not outputs of the model's last linear layer "
                         f"({fc.out_features} outputs)")
    with torch.no_grad():
        fc.bias[a] += alpha / 2
        fc.bias[b] -= alpha / 2
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return SupportModels(models=(net,), classes=(a, b), alpha=alpha, keys=("bias-only",),
                         from_cache=(False,), losses=(float("nan"),), seconds=(0.0,),
                         kind="bias only")


def _supports(supports) -> list[SupportModels]:
    """``supports`` (α -> SupportModels, or a sequence of them) as a non-empty list."""
    items = list(supports.values()) if isinstance(supports, Mapping) else supports
    if (isinstance(items, (str, SupportModels)) or not isinstance(items, Sequence)
            or not items):
        raise ValueError("supports must map at least one alpha to its SupportModels (or be a "
                         f"non-empty list of them), got {type(supports).__name__}")
    for sup in items:
        if not isinstance(sup, SupportModels):
            raise TypeError(f"supports must hold SupportModels, got {type(sup).__name__}")
    return list(items)


def support_summary(model, supports, x: torch.Tensor, labels: torch.Tensor, *,
                    batch_size: int = BATCH_SIZE) -> pd.DataFrame:
    """How well each support copy learned its distancing, on images of class a or b.

    Args:
        model: the original classifier; supports: α -> :class:`SupportModels` (or a list of
            them: controls included).
        x: ``(N,3,H,W)`` images; labels: their ``(N,)`` classes, each a or b.
        batch_size: images per forward pass.

    Returns:
        One row per (support set, copy): ``alpha, kind, copy, from_cache, train_loss``
        (final-epoch MSE), ``margin_shift`` (mean over images of the copy's own-class margin
        ``z_y − z_o`` minus the original's; the target is α for ``kind == "distanced"``),
        ``margin_shift_<a>`` and ``margin_shift_<b>`` (the same on the images of each class,
        named by class index), ``accuracy`` (top-1 of the copy; the original's is in the
        ``kind == "original"`` row) and ``train_seconds``.
    """
    items = _supports(supports)
    a, b = items[0].classes
    y = _labels("labels", labels, a, b, x.shape[0])
    o = (a + b) - y
    base = pair_margin(model, x, y, o, batch_size=batch_size)
    acc0 = float((logits(model, x, batch_size=batch_size).argmax(1) == y).float().mean())
    rows = [{"alpha": 0.0, "kind": "original", "copy": "original", "from_cache": None,
             "train_loss": float("nan"), "margin_shift": 0.0, f"margin_shift_{a}": 0.0,
             f"margin_shift_{b}": 0.0, "accuracy": acc0, "train_seconds": float("nan")}]
    for sup in items:
        for j, m in enumerate(sup.models):
            shift = pair_margin(m, x, y, o, batch_size=batch_size) - base
            acc = float((logits(m, x, batch_size=batch_size).argmax(1) == y).float().mean())
            per_class = {f"margin_shift_{c}": float(shift[y == c].mean()) if bool((y == c).any())
                         else float("nan") for c in (a, b)}
            rows.append({"alpha": float(sup.alpha), "kind": sup.kind, "copy": str(j),
                         "from_cache": sup.from_cache[j], "train_loss": sup.losses[j],
                         "margin_shift": float(shift.mean()), **per_class, "accuracy": acc,
                         "train_seconds": sup.seconds[j]})
    return pd.DataFrame(rows)


def margin_table(model, supports, x: torch.Tensor, labels: torch.Tensor, *,
                 batch_size: int = BATCH_SIZE) -> pd.DataFrame:
    """Per image and support set, the own-class margin before and after distancing.

    Args:
        model: the original classifier; supports: α -> :class:`SupportModels` (or a list).
        x: ``(N,3,H,W)`` images; labels: ``(N,)`` classes, each a or b.
        batch_size: images per forward pass.

    Returns:
        Long table ``image, class, alpha, kind, margin_before, margin_after, margin_shift``:
        ``margin_before = z_y − z_o`` of the original model, ``margin_after`` the mean over the
        set's copies, ``margin_shift`` their difference (target: α for distanced sets).
    """
    items = _supports(supports)
    a, b = items[0].classes
    y = _labels("labels", labels, a, b, x.shape[0])
    o = (a + b) - y
    before = pair_margin(model, x, y, o, batch_size=batch_size).double()
    rows = []
    for sup in items:
        after = torch.stack([pair_margin(m, x, y, o, batch_size=batch_size).double()
                             for m in sup.models]).mean(0)
        rows += [{"image": i, "class": int(y[i]), "alpha": float(sup.alpha), "kind": sup.kind,
                  "margin_before": float(before[i]), "margin_after": float(after[i]),
                  "margin_shift": float(after[i] - before[i])} for i in range(x.shape[0])]
    return pd.DataFrame(rows, columns=["image", "class", "alpha", "kind", "margin_before",
                                       "margin_after", "margin_shift"])


def margin_summary(table: pd.DataFrame, *, classes: Sequence[str] | None = None,
                   seed: int = 0) -> pd.DataFrame:
    """Mean own-class margin before / after distancing per support set and class, with CIs.

    Args:
        table: :func:`margin_table`'s output.
        classes: class names indexed by class index (e.g. ``kit.world.CLASSES``) for a
            ``class_name`` column.
        seed: the bootstrap's seed.

    Returns:
        One row per (kind, α, class): ``n`` and, for ``before``, ``after`` and ``shift``, the
        mean with its 95% percentile-bootstrap CI over images (``*_low``, ``*_high``), and the
        target shift (α for distanced sets, NaN for controls).
    """
    need = ["image", "class", "alpha", "kind", "margin_before", "margin_after", "margin_shift"]
    missing = [c for c in need if c not in getattr(table, "columns", [])]
    if missing:
        raise ValueError(f"table is missing column(s) {missing}; expected margin_table's output")
    rows = []
    for (kind, alpha, cls), g in table.groupby(["kind", "alpha", "class"], sort=False):
        row = {"kind": kind, "alpha": alpha, "class": cls}
        if classes is not None:
            row["class_name"] = classes[int(cls)]
        row["n"] = len(g)
        for name in ("before", "after", "shift"):
            v = g[f"margin_{name}"].to_numpy(np.float64)
            low, high = bootstrap_ci(v, seed=seed)
            row.update({name: float(v.mean()), f"{name}_low": low, f"{name}_high": high})
        row["target_shift"] = float(alpha) if kind == "distanced" else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# the whole sweep, for notebooks
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GadRun:
    """Output of :func:`gad_table`.

    Attributes:
        per_image: long table ``image, method, alpha, metric (RC | RS), value`` (α > 0 and the
            controls only; at α = 0 both ratios are 1 by construction).
        diagnostics: one row per (method, α > 0) and control: ``n_images``, ``n_empty`` (images
            with an empty support, excluded from the ratios), ``q`` (mean top-q fraction),
            ``support_fraction`` (mean |S| / h·w), ``hull_area_0``, ``hull_area_gad`` (mean hull
            areas, union of the regions' hulls, as fractions of h·w), ``regions_0``,
            ``regions_gad`` (mean number of connected regions), ``median_RC``, ``median_RS``.
        results: ``(method, α) -> GadResult``; α = 0 is the baseline on the original model.
        hulls: long table ``image, method, alpha, metric, value`` with the per-image hull
            areas, region counts and q (:data:`HULL_METRICS`), for
            ``kit.report.summarize(run.hulls, HULL_METRICS, by=("method", "alpha"))``.
    """

    per_image: pd.DataFrame
    diagnostics: pd.DataFrame
    results: dict
    hulls: pd.DataFrame


def _method_kwargs(methods: Sequence[str], profile: str | None,
                   method_kwargs: Mapping[str, Mapping] | None) -> dict[str, dict]:
    """Per-method options: the profile's entries (:func:`kit.attributors.budget`), then ours."""
    method_kwargs = dict(method_kwargs or {})
    if profile is not None:
        # budget() knows METHODS names only; attributor names ("smoothgrad") have no profile entry
        profiled = budget(profile, [m for m in methods if m in METHODS])
        method_kwargs = {m: {**profiled.get(m, {}), **method_kwargs.get(m, {})} for m in methods}
    unknown = sorted(set(method_kwargs) - set(methods))
    if unknown:
        raise ValueError(f"method_kwargs names methods {unknown} that are not in methods "
                         f"{list(methods)}")
    return method_kwargs


def gad_table(model, x: torch.Tensor, target, other, supports: Mapping[float, SupportModels],
              methods: Sequence[str] = GRADIENT_METHODS, *, q=0.2, remover="gray",
              profile: str | None = None, method_kwargs: Mapping[str, Mapping] | None = None,
              control: SupportModels | None = None, bias_control: SupportModels | None = None,
              seed: int = 0, batch_size: int = 64, progress: bool = False) -> GadRun:
    """Baseline and GAD maps and the ratios RC, RS for every method and α.

    Args:
        model: the original classifier.
        x: ``(N,3,H,W)`` images of class a or b; target: their class t; other: the pair's other
            class o (int or ``(N,)`` long each).
        supports: α (> 0) -> :class:`SupportModels` for that α.
        methods: gradient method names, ``kit.attributors.METHODS`` keys or attributor names
            (:func:`gradient_methods`; default: the five gradient attributors); the table uses
            the names as given.
        q: top-q fraction, one number or ``(N,)`` per image (:func:`resolve_q`: ``"object"``
            ties it to each image's object area).
        remover: the remover occluding the hulls (RS).
        profile: a ``kit.attributors.PROFILES`` key: its entries for the method names override
            the methods' parameters (e.g. ``"cheap"``: fewer IG steps and SmoothGrad samples),
            looked up through :func:`kit.attributors.budget`.
        method_kwargs: per-method attributor options on top of the profile's, e.g.
            ``{"IntegratedGradients": {"steps": 25}}``.
        control: optional copies trained at α = 0 (:func:`train_support_models` with
            ``alpha=0``): fused like GAD and reported as method ``<method> (fusion only)`` at
            α = 0 (see :data:`CONTROL_SUFFIX`).
        bias_control: optional :func:`bias_only_control`: reported as method
            ``<method> (bias only)`` at its α (:data:`BIAS_SUFFIX`); its ratios are exactly 1.
        seed: the attributors' seed (SmoothGrad's noise).
        batch_size: images per forward/backward pass of the attributors.
        progress: show a tqdm bar over (method, α).

    Returns:
        :class:`GadRun`.
    """
    valid = resolve_methods(methods)
    if not isinstance(supports, Mapping) or not supports:
        raise ValueError("supports must map each alpha > 0 to its SupportModels, "
                         f"got {type(supports).__name__}")
    for alpha, sup in supports.items():
        if _alpha(alpha) == 0:
            raise ValueError("supports: alpha 0 is the baseline (the original model); "
                             "give only alpha > 0")
        if not isinstance(sup, SupportModels):
            raise TypeError(f"supports[{alpha!r}] must be a SupportModels, "
                            f"got {type(sup).__name__}")
    if control is not None and (not isinstance(control, SupportModels) or control.alpha != 0):
        raise ValueError("control must be the SupportModels of copies trained at alpha 0, "
                         f"got {control!r:.80}")
    if bias_control is not None and (not isinstance(bias_control, SupportModels)
                                     or bias_control.kind != "bias only"):
        raise ValueError("bias_control must be the output of bias_only_control(model, classes, "
                         f"alpha), got {bias_control!r:.80}")
    q = resolve_q(q) if not isinstance(q, (torch.Tensor, np.ndarray, list, tuple)) else q
    method_kwargs = _method_kwargs(methods, profile, method_kwargs)
    # (support set, name suffix, alpha reported) after the baseline, per method
    sets = [(supports[a], "", float(a)) for a in sorted(supports, key=float)]
    if control is not None:
        sets.append((control, CONTROL_SUFFIX, 0.0))
    if bias_control is not None:
        sets.append((bias_control, BIAS_SUFFIX, float(bias_control.alpha)))
    rows, hull_rows, diag, results = [], [], [], {}
    jobs = [job for m in methods for job in ((m, None), *((m, st) for st in sets))]
    for method, st in tqdm(jobs, disable=not progress, desc="GAD", leave=False):
        attributor, params = valid[method]
        kw = {"batch_size": batch_size, **params, **method_kwargs.get(method, {})}
        if st is None:
            results[method, 0.0] = baseline_explain(attributor, model, x, target, q=q, seed=seed,
                                                    **kw)
            continue
        sup, suffix, alpha = st
        res = gad_explain(attributor, sup, x, target, q=q, seed=seed, **kw)
        name = method + suffix
        results[name, alpha] = res
        r = gad_ratios(model, x, target, other, res.support, results[method, 0.0].support,
                       remover=remover)
        for metric, values in (("RC", r.rc), ("RS", r.rs)):
            rows += [{"image": i, "method": name, "alpha": alpha, "metric": metric,
                      "value": float(v)} for i, v in enumerate(values)]
        qs = (np.asarray(q, dtype=np.float64) if not isinstance(q, float)
              else np.full(len(r.rc), q))
        per = {"hull_area_0": r.area_0, "hull_area_gad": r.area_gad,
               "regions_0": r.regions_0.astype(np.float64),
               "regions_gad": r.regions_gad.astype(np.float64), "q": qs}
        for metric, values in per.items():
            hull_rows += [{"image": i, "method": name, "alpha": alpha, "metric": metric,
                           "value": float(v)} for i, v in enumerate(values)]
        diag.append({
            "method": name, "alpha": alpha, "n_images": int(len(r.rc)),
            "n_empty": int(r.empty.sum()), "q": float(np.mean(qs)),
            "support_fraction": float(res.support.float().mean()),
            **{k: float(np.mean(v)) for k, v in per.items() if k != "q"},
            "median_RC": float(np.nanmedian(r.rc)) if np.isfinite(r.rc).any() else float("nan"),
            "median_RS": float(np.nanmedian(r.rs)) if np.isfinite(r.rs).any() else float("nan"),
        })
    columns = ["image", "method", "alpha", "metric", "value"]
    return GadRun(pd.DataFrame(rows, columns=columns), pd.DataFrame(diag), results,
                  pd.DataFrame(hull_rows, columns=columns))


def compare_to_baseline(summary: pd.DataFrame) -> pd.DataFrame:
    """Whether GAD beats the no-GAD baseline (ratio 1) per method, α and metric.

    Args:
        summary: ``kit.report.summarize(per_image, HIGHER_IS_BETTER, by=("method", "alpha"))``.

    Returns:
        ``summary`` with a ``verdict`` column: ``"GAD better"`` when the 95% CI excludes 1 on the
        better side (RC below, RS above), ``"GAD worse"`` when it excludes 1 on the other side,
        ``"no clear difference"`` otherwise (also for an undefined interval).
    """
    need = ["method", "alpha", "metric", "mean", "ci_low", "ci_high"]
    missing = [c for c in need if c not in summary.columns]
    if missing:
        raise ValueError(f"summary is missing column(s) {missing}; expected the output of "
                         "kit.report.summarize(..., by=('method', 'alpha'))")
    higher = summary["metric"].map(HIGHER_IS_BETTER)
    above, below = summary["ci_low"] > 1, summary["ci_high"] < 1
    better = np.where(higher, above, below)
    worse = np.where(higher, below, above)
    verdict = np.where(better, "GAD better", np.where(worse, "GAD worse", "no clear difference"))
    return summary.assign(verdict=verdict)
