"""GAD: gradient artificial distancing (Rodrigues, Boutry & Najman, arXiv 2401.14434).

GAD is a support framework for gradient explainers: it "creates artificial shifts in final
activations between chosen classes and trains support regression models to mimic these changes,
then fuses multiple explanations". No public code exists; kit follows the project's reading of
the abstract, ``methods.md`` §3.8 (method) and §4.7 (the ratios RC and RS):

* **Distancing.** For classes ``a`` and ``b`` and a strength α, the regression targets are the
  original classifier's logits shifted apart, ``z*(x) = f(x) + (α/2)·e_a − (α/2)·e_b``
  (:func:`distanced_targets`), computed once per training image of class a or b.
* **Support models.** ``k`` copies of the classifier (seeds ``seed .. seed+k−1``, the seed sets the
  data order) are fine-tuned to ``z*`` with an MSE on all logits (Adam, lr 1e-4, batch 64,
  5 epochs, BatchNorm in eval mode, no augmentation) by :func:`train_support_models`. Each copy is
  cached on disk under ``CACHE_DIR/gad/<key>.pt``, keyed by its full configuration and a digest
  of the original weights, so a rerun loads instead of training. α = 0 is the no-GAD baseline:
  it explains the **original** model and trains nothing (training copies at α = 0 is the optional
  "fusion only" control).
* **Fusion.** Each support model's map ``A_j`` (the gradient attributor's own ``(N,1,H,W)`` map:
  the channel sum for IG and input×gradient, max|·| over channels for saliency, SmoothGrad and
  guided backprop, as kit defines them) is normalised, ``Â_j = A_j / max|A_j|``; ``T_j`` = its
  top-q pixels by signed value (q = 20%, ties broken by pixel index); the support is
  ``S = ∩_j T_j`` and the GAD map is ``mean_j Â_j`` on S, 0 elsewhere (:func:`fuse`,
  :func:`gad_explain`). The baseline's support ``S_0`` is the top-q set of the original model's map.
  Note that ``S`` is an intersection of k sets of the size of ``S_0``, so ``|S| <= |S_0|`` and RC
  leans below 1 from the intersection alone; the fusion-only control (copies trained at α = 0,
  ``gad_table(..., control=...)``) measures that part.
* **Ratios** (:func:`gad_ratios`), per image: ``RC = |hull(S_GAD)| / |hull(S_0)|`` (rasterised
  convex hulls, ``skimage.morphology.convex_hull_image``; lower = a less complex explanation) and
  ``RS = (Δ_GAD / |hull_GAD|) / (Δ_0 / |hull_0|)`` with ``Δ = m(x) − m(x̃)``, the drop of the
  original classifier's margin ``m = z_t − z_o`` (o = the other class of the pair) when the hull is
  removed, ``x̃ = R(x, keep = 1 − 1_hull)`` (gray remover by default; higher = more sensitivity per
  unit of occluded area). A support with fewer than 3 non-collinear pixels is "empty": RC and RS are
  NaN for that image and the images are counted. RC = RS = 1 at α = 0 by construction.

Usage::

    from kit import gad, models, world
    clf = models.load_classifier("world")
    a, b = world.CLASSES.index("disk"), world.CLASSES.index("ellipse")
    sup = gad.train_support_models(clf, (a, b), alpha=4, k=3)      # cached after the first call
    res = gad.gad_explain("integrated_gradients", sup.models, x, target)
    base = gad.baseline_explain("integrated_gradients", clf, x, target)
    r = gad.gad_ratios(clf, x, target, other, res.support, base.support)
    r.rc, r.rs                                                      # (N,) each
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

__all__ = [
    "ALPHAS",
    "GRADIENT_METHODS",
    "HIGHER_IS_BETTER",
    "CONTROL_SUFFIX",
    "SupportModels",
    "GadResult",
    "GadRatios",
    "GadRun",
    "resolve_classes",
    "distanced_targets",
    "pair_images",
    "support_key",
    "train_support_models",
    "pair_margin",
    "support_summary",
    "top_q",
    "normalise",
    "fuse",
    "baseline_explain",
    "gad_explain",
    "gad",
    "is_degenerate",
    "convex_hull",
    "gad_ratios",
    "gradient_methods",
    "resolve_methods",
    "gad_table",
    "compare_to_baseline",
    "plot_maps",
    "plot_ratios",
]

ALPHAS = (0, 2, 4, 6, 8)
"""The α sweep of methods.md §3.8; α = 0 is the no-GAD baseline (the original model)."""

GRADIENT_METHODS = (
    "saliency", "input_x_gradient", "integrated_gradients", "smoothgrad", "guided_backprop",
)
"""The gradient attributors GAD is evaluated with (keys of ``kit.attributors.ATTRIBUTORS``)."""

HIGHER_IS_BETTER = {"RC": False, "RS": True}
"""Direction of the ratios: RC < 1 is a less complex explanation, RS > 1 a more sensitive one."""

CONTROL_SUFFIX = " (fusion only)"
"""Appended to a method's name for the optional control: k copies trained at α = 0 (pure
distillation) fused like GAD, which separates the effect of fusing several models from the effect
of distancing (methods.md §3.8)."""

_TRAIN_VERSION = 1
"""Bumped whenever the training procedure changes, so stale cached models are never loaded."""

_WORLD_DRAW = 2048
"""Most world images rendered per draw while collecting class-a/b images."""


# ----------------------------------------------------------------------------------------------
# checks
# ----------------------------------------------------------------------------------------------


def _int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) \
            or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
    return float(alpha)


def _q(q) -> float:
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 < q <= 1:
        raise ValueError(f"q must be a fraction in (0, 1], got {q!r}")
    return float(q)


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


def _maps(name: str, m) -> torch.Tensor:
    if not isinstance(m, torch.Tensor) or m.dim() != 4 or m.shape[1] != 1:
        got = tuple(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
        raise ValueError(f"{name} must be a (N,1,h,w) tensor, got {got}")
    return m


def gradient_methods() -> dict[str, tuple[str, dict]]:
    """Names :func:`gad_table` accepts -> (attributor name, parameters).

    The gradient entries of ``kit.attributors.METHODS`` (``"IntegratedGradients"``, ...) and the
    gradient attributors' own names (``"integrated_gradients"``, ...).
    """
    from kit.attributors import METHODS
    from kit.attributors.gradients import REDUCTIONS

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


def _attributor(attributor) -> tuple[str, Callable]:
    from kit.attributors import get_attributor

    if isinstance(attributor, str):
        return attributor, get_attributor(attributor)
    if callable(attributor):
        return getattr(attributor, "__name__", "attributor"), attributor
    raise TypeError(f"attributor must be a name or a callable, got {type(attributor).__name__}")


# ----------------------------------------------------------------------------------------------
# distancing and support models
# ----------------------------------------------------------------------------------------------


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


def distanced_targets(logits: torch.Tensor, a: int, b: int, alpha: float) -> torch.Tensor:
    """``z* = logits + (α/2)·e_a − (α/2)·e_b``: the pair margin ``z_a − z_b`` grows by exactly α.

    Args:
        logits: ``(N,C)`` original logits.
        a, b: the two classes.
        alpha: distancing strength α >= 0.

    Returns:
        ``(N,C)`` targets; every other logit is unchanged.
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"logits must be a (N,C) tensor, got {got}")
    a, b = _pair((a, b), logits.shape[1])
    alpha = _alpha(alpha)
    z = logits.clone()
    z[:, a] += alpha / 2
    z[:, b] -= alpha / 2
    return z


def pair_images(a: int, b: int, n: int, *, seed: int = 0, split: str = "train",
                size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` world images of class ``a`` or ``b`` in a split's stream.

    Images are rendered in consecutive draws of the stream and filtered by label, so the set
    depends only on ``(a, b, n, seed, split, size)``.

    Returns:
        ``images (n,3,size,size)`` and ``labels (n,)``.
    """
    from kit import world

    a, b = _pair((a, b), len(world.CLASSES))
    n = _int("n", n, 1)
    images, labels, start = [], [], 0
    have = 0
    while have < n:
        # a and b are 2 of 8 equally likely classes: draw about 4.4x what is still missing
        draw = min(_WORLD_DRAW, math.ceil(4.4 * (n - have)) + 32)
        batch = world.sample(draw, seed=seed, split=split, start=start, size=size)
        keep = (batch.labels == a) | (batch.labels == b)
        images.append(batch.images[keep])
        labels.append(batch.labels[keep])
        have += int(keep.sum())
        start += draw
    return torch.cat(images)[:n], torch.cat(labels)[:n]


def _digest(model: torch.nn.Module) -> str:
    """SHA-256 of the model's class name and state (parameters and buffers)."""
    h = hashlib.sha256(type(model).__name__.encode())
    state = model.state_dict()
    for k in sorted(state):
        t = state[k].detach().to("cpu").contiguous()
        h.update(k.encode() + str((t.dtype, tuple(t.shape))).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _images_digest(x: torch.Tensor) -> str:
    t = x.detach().to("cpu", torch.float32).contiguous()
    return hashlib.sha256(str(tuple(t.shape)).encode() + t.numpy().tobytes()).hexdigest()


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
    """

    models: tuple
    classes: tuple[int, int]
    alpha: float
    keys: tuple[str, ...]
    from_cache: tuple[bool, ...]
    losses: tuple[float, ...]
    seconds: tuple[float, ...]


def _cache_dir(cache_dir) -> Path:
    from kit import paths

    return Path(cache_dir) if cache_dir is not None else Path(paths.CACHE_DIR) / "gad"


@torch.inference_mode()
def _logits(model, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([model(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)])


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
    images: torch.Tensor | None = None, cache: bool = True, cache_dir: str | Path | None = None,
    progress: bool = False,
) -> SupportModels:
    """Fine-tune ``k`` copies of ``model`` to the distanced logits (methods.md §3.8), with a cache.

    The original model is never modified. Copy ``j`` uses seed ``seed + j`` for its data order.
    Each copy is stored as ``<cache_dir>/<support_key(config)>.pt`` (written atomically, loaded
    with ``weights_only=True``); the key covers every setting below, the original weights' digest
    and the training data (the world stream, or a digest of ``images``), so changing any of them
    trains anew.

    Args:
        model: the original pixel-space classifier (an ``nn.Module`` mapping ``(N,3,H,W)`` in
            [0,1] to ``(N,C)`` logits).
        classes: ``(a, b)`` class indices; the margin ``z_a − z_b`` is pushed up by α.
        alpha: distancing strength α >= 0 (0 = pure distillation, the optional control).
        k: number of copies.
        n_train: class-a/b training images drawn from the world's ``train`` stream (``seed``);
            ignored when ``images`` is given.
        epochs, lr, batch_size: Adam fine-tuning settings.
        seed: seed of the world stream and of the first copy's data order.
        images: ``(M,3,H,W)`` training images to use instead of world images.
        cache: load / store copies under ``cache_dir``.
        cache_dir: default ``kit.paths.CACHE_DIR / "gad"``.
        progress: show a tqdm bar over training steps.

    Returns:
        :class:`SupportModels`.

    Raises:
        ValueError / TypeError naming the bad argument.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    n_classes = len(getattr(model, "classes", ())) or None
    a, b = _pair(tuple(classes) if isinstance(classes, (list, tuple)) else classes, n_classes)
    alpha = _alpha(alpha)
    k = _int("k", k, 1)
    epochs = _int("epochs", epochs, 1)
    batch_size = _int("batch_size", batch_size, 1)
    seed = _int("seed", seed, 0)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a number > 0, got {lr!r}")
    if images is None:
        n_train = _int("n_train", n_train, 1)
        data = {"source": "world", "split": "train", "n_train": n_train, "seed": seed}
    else:
        from kit.models import _check_images

        _check_images("images", images)
        data = {"source": "images", "digest": _images_digest(images)}
    base = {
        "version": _TRAIN_VERSION, "torch": torch.__version__.split("+")[0],
        "model": _digest(model), "classes": [a, b], "alpha": alpha, "epochs": epochs,
        "lr": float(lr), "batch_size": batch_size, "data": data,
    }
    configs = [{**base, "copy_seed": seed + j} for j in range(k)]
    keys = [support_key(c) for c in configs]
    folder = _cache_dir(cache_dir)
    states: list[dict | None] = [None] * k
    losses, seconds, hits = [float("nan")] * k, [float("nan")] * k, [False] * k
    if cache:
        for j, key in enumerate(keys):
            path = folder / f"{key}.pt"
            if path.exists():
                blob = torch.load(path, map_location="cpu", weights_only=True)
                states[j], losses[j], seconds[j] = blob["state_dict"], blob["loss"], blob["seconds"]
                hits[j] = True
    todo = [j for j in range(k) if states[j] is None]
    if todo:
        from kit.train import save_atomic

        # the training set and its targets are built only when something must be trained
        x = pair_images(a, b, n_train, seed=seed)[0] if images is None else images.detach()
        zstar = distanced_targets(_logits(model, x, 256), a, b, alpha)
        steps = len(todo) * epochs * math.ceil(x.shape[0] / batch_size)
        with tqdm(total=steps, disable=not progress, desc=f"GAD support α={alpha:g}",
                  leave=False) as bar:
            for j in todo:
                t0 = time.time()
                states[j], losses[j] = _finetune(model, x, zstar, epochs=epochs, lr=lr,
                                                 batch_size=batch_size, seed=seed + j, bar=bar)
                seconds[j] = time.time() - t0
                if cache:
                    save_atomic({"state_dict": states[j], "config": json.dumps(configs[j]),
                                 "loss": losses[j], "seconds": seconds[j]},
                                folder / f"{keys[j]}.pt")
    return SupportModels(
        models=tuple(_as_support(model, s) for s in states), classes=(a, b), alpha=alpha,
        keys=tuple(keys), from_cache=tuple(hits), losses=tuple(float(v) for v in losses),
        seconds=tuple(float(v) for v in seconds),
    )


def pair_margin(model, x: torch.Tensor, target, other, *, batch_size: int = 256) -> torch.Tensor:
    """``m(x) = z_t(x) − z_o(x)`` per image (logits of ``model``), under inference mode.

    Args:
        model: pixel-space classifier; x: ``(N,3,H,W)``; target, other: int or ``(N,)`` long.

    Returns:
        ``(N,)`` float32.
    """
    from kit.attributors._common import check_inputs

    t = check_inputs(model, x, target)
    o = check_inputs(model, x, other)
    z = _logits(model, x, _int("batch_size", batch_size, 1))
    return (z.gather(1, t.view(-1, 1)) - z.gather(1, o.view(-1, 1))).squeeze(1).float()


def support_summary(model, supports: Mapping[float, SupportModels], x: torch.Tensor,
                    labels: torch.Tensor, *, batch_size: int = 256) -> pd.DataFrame:
    """How well each support copy learned its distancing, on images of class a or b.

    Args:
        model: the original classifier; supports: α -> :class:`SupportModels`.
        x: ``(N,3,H,W)`` images; labels: their ``(N,)`` classes (for the accuracy column).

    Returns:
        One row per (α, copy): ``alpha, copy, from_cache, train_loss`` (final-epoch MSE),
        ``margin_shift`` (mean over images of the copy's ``z_a − z_b`` minus the original's; the
        target is α), ``accuracy`` (top-1 of the copy; the original's is in the α = 0 row) and
        ``train_seconds``.
    """
    if not supports:
        raise ValueError("supports must map at least one alpha to its SupportModels")
    a, b = next(iter(supports.values())).classes
    base = pair_margin(model, x, a, b, batch_size=batch_size)
    acc0 = float((_logits(model, x, batch_size).argmax(1) == labels).float().mean())
    rows = [{"alpha": 0.0, "copy": "original", "from_cache": None, "train_loss": float("nan"),
             "margin_shift": 0.0, "accuracy": acc0, "train_seconds": float("nan")}]
    for alpha, sup in supports.items():
        for j, m in enumerate(sup.models):
            shift = float((pair_margin(m, x, a, b, batch_size=batch_size) - base).mean())
            acc = float((_logits(m, x, batch_size).argmax(1) == labels).float().mean())
            rows.append({"alpha": float(alpha), "copy": str(j), "from_cache": sup.from_cache[j],
                         "train_loss": sup.losses[j], "margin_shift": shift, "accuracy": acc,
                         "train_seconds": sup.seconds[j]})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# fusion
# ----------------------------------------------------------------------------------------------


def top_q(sal: torch.Tensor, q: float = 0.2) -> torch.Tensor:
    """Per image, the ``round(q·h·w)`` (at least 1) highest pixels by signed value.

    Ties are broken by pixel index (row-major, earlier first), so the set is deterministic.

    Args:
        sal: ``(N,1,h,w)`` maps.
        q: kept fraction in (0, 1].

    Returns:
        ``(N,1,h,w)`` bool.
    """
    _maps("sal", sal)
    q = _q(q)
    n, _, h, w = sal.shape
    count = max(1, int(round(q * h * w)))
    flat = sal.detach().reshape(n, -1).float()
    order = torch.argsort(-flat, dim=1, stable=True)[:, :count]
    out = torch.zeros_like(flat, dtype=torch.bool)
    out.scatter_(1, order, True)
    return out.view(n, 1, h, w)


def normalise(sal: torch.Tensor) -> torch.Tensor:
    """``Â = A / max|A|`` per image (an all-zero map stays zero)."""
    _maps("sal", sal)
    scale = sal.detach().abs().flatten(1).amax(1).view(-1, 1, 1, 1)
    return torch.where(scale > 0, sal / scale.clamp_min(torch.finfo(sal.dtype).tiny),
                       torch.zeros_like(sal))


def fuse(maps: Sequence[torch.Tensor], q: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """GAD fusion of the support models' maps (methods.md §3.8).

    Args:
        maps: k maps ``(N,1,h,w)`` of the same images, one per support model.
        q: top-q fraction of each map.

    Returns:
        ``(gad_map, support)``: ``mean_j Â_j`` on ``S = ∩_j top_q(A_j)`` and 0 elsewhere
        (float32 ``(N,1,h,w)`` in [−1, 1]), and S (bool ``(N,1,h,w)``).
    """
    if isinstance(maps, torch.Tensor) or not isinstance(maps, Sequence) or not maps:
        raise ValueError("maps must be a non-empty list of (N,1,h,w) tensors, "
                         f"got {type(maps).__name__}")
    shape = _maps("maps[0]", maps[0]).shape
    for j, m in enumerate(maps):
        if _maps(f"maps[{j}]", m).shape != shape:
            raise ValueError(f"maps[{j}] has shape {tuple(m.shape)}, maps[0] {tuple(shape)}")
    support = torch.stack([top_q(m, q) for m in maps]).all(0)
    mean = torch.stack([normalise(m.float()) for m in maps]).mean(0)
    return torch.where(support, mean, torch.zeros_like(mean)), support


@dataclass(frozen=True)
class GadResult:
    """Output of :func:`gad_explain` / :func:`baseline_explain`.

    Attributes:
        sal: ``(N,1,h,w)`` GAD map (baseline: the original model's map, unnormalised).
        support: ``(N,1,h,w)`` bool, S (baseline: S_0, its top-q pixels).
        maps: ``(k,N,1,h,w)`` the raw maps A_j (baseline: k = 1).
    """

    sal: torch.Tensor
    support: torch.Tensor
    maps: torch.Tensor


def _call(fn: Callable, model, x, target, kwargs: Mapping, seed: int | None) -> torch.Tensor:
    kw = dict(kwargs)
    if seed is not None and "seed" in inspect.signature(fn).parameters:
        kw.setdefault("seed", seed)
    return fn(model, x, target, **kw)


def baseline_explain(attributor, model, x: torch.Tensor, target, *, q: float = 0.2,
                     seed: int | None = None, **kwargs) -> GadResult:
    """The no-GAD baseline (α = 0): the attributor on the original model, S_0 = its top-q pixels.

    Args:
        attributor: a ``kit.attributors`` name or an attributor function.
        model, x, target: as for any attributor.
        q: top-q fraction.
        seed: passed to attributors that take one (SmoothGrad's noise).
        **kwargs: the attributor's options (``steps``, ``n_samples``, ``batch_size``, ...).
    """
    _, fn = _attributor(attributor)
    q = _q(q)
    sal = _maps("attributor output", _call(fn, model, x, target, kwargs, seed))
    return GadResult(sal, top_q(sal, q), sal.unsqueeze(0))


def gad_explain(attributor, support_models, x: torch.Tensor, target, *, q: float = 0.2,
                seed: int | None = None, **kwargs) -> GadResult:
    """GAD map of ``x``: the attributor on every support model, fused (methods.md §3.8).

    Args:
        attributor: a ``kit.attributors`` name or an attributor function.
        support_models: a :class:`SupportModels` or a sequence of models.
        x: ``(N,3,H,W)`` images in [0,1]; target: int or ``(N,)`` long (class a or b).
        q: top-q fraction of each support model's map.
        seed: passed to attributors that take one (the same noise for every support model).
        **kwargs: the attributor's options.

    Returns:
        :class:`GadResult` (``sal`` in [−1, 1], 0 outside the support).
    """
    _, fn = _attributor(attributor)
    models = support_models.models if isinstance(support_models, SupportModels) else support_models
    if not isinstance(models, Sequence) or not models:
        raise ValueError("support_models must be a SupportModels or a non-empty list of models, "
                         f"got {type(support_models).__name__}")
    maps = [_maps("attributor output", _call(fn, m, x, target, kwargs, seed)) for m in models]
    sal, support = fuse(maps, q)
    return GadResult(sal, support, torch.stack(maps))


def gad(attributor, support_models, *, q: float = 0.2) -> Callable:
    """GAD as an attributor wrapper (style.md §5): ``gad(a, sup)(model, x, target, **kw)``.

    The returned function has the attributor signature; its ``model`` argument is accepted for
    uniformity and ignored (the support models are explained). Returns the ``(N,1,h,w)`` GAD map.
    """
    name, _ = _attributor(attributor)
    q = _q(q)

    def gad_attributor(model, x, target, **kwargs):
        return gad_explain(attributor, support_models, x, target, q=q, **kwargs).sal

    gad_attributor.__name__ = f"gad_{name}"
    return gad_attributor


# ----------------------------------------------------------------------------------------------
# ratios RC and RS (methods.md §4.7)
# ----------------------------------------------------------------------------------------------


def is_degenerate(support: torch.Tensor) -> torch.Tensor:
    """``(N,)`` bool: fewer than 3 pixels, or all pixels on one line (no 2-D convex hull)."""
    _maps("support", support)
    out = []
    for s in support[:, 0].detach().cpu().numpy().astype(bool):
        pts = np.argwhere(s).astype(np.float64)
        out.append(len(pts) < 3 or np.linalg.matrix_rank(pts - pts.mean(0)) < 2)
    return torch.tensor(out, dtype=torch.bool)


def convex_hull(support: torch.Tensor) -> torch.Tensor:
    """Rasterised convex hull of each support (``skimage.morphology.convex_hull_image``).

    Args:
        support: ``(N,1,h,w)`` bool.

    Returns:
        ``(N,1,h,w)`` bool; all False for a degenerate support (see :func:`is_degenerate`).
    """
    from skimage.morphology import convex_hull_image

    _maps("support", support)
    bad = is_degenerate(support)
    sup = support[:, 0].detach().cpu().numpy().astype(bool)
    hull = np.zeros_like(sup)
    for i in range(sup.shape[0]):
        if not bad[i]:
            hull[i] = convex_hull_image(sup[i])
    return torch.from_numpy(hull).unsqueeze(1).to(support.device)


@dataclass(frozen=True)
class GadRatios:
    """Per-image output of :func:`gad_ratios` (numpy arrays of length N).

    Attributes:
        rc, rs: the ratios; NaN where either support is empty (or Δ_0 = 0 for RS).
        area_gad, area_0: hull areas as fractions of h·w.
        delta_gad, delta_0: margin drops when the hull is removed.
        empty: whether S_GAD or S_0 is degenerate.
    """

    rc: np.ndarray
    rs: np.ndarray
    area_gad: np.ndarray
    area_0: np.ndarray
    delta_gad: np.ndarray
    delta_0: np.ndarray
    empty: np.ndarray


def gad_ratios(model, x: torch.Tensor, target, other, support_gad: torch.Tensor,
               support_0: torch.Tensor, *, remover="gray",
               batch_size: int = 256) -> GadRatios:
    """RC and RS of GAD's support against the baseline's (methods.md §4.7).

    Args:
        model: the **original** classifier (margins are always taken on it).
        x: ``(N,3,H,W)`` images in [0,1].
        target: explained class t, int or ``(N,)``; other: the pair's other class o.
        support_gad: ``(N,1,H,W)`` bool, S_GAD; support_0: ``(N,1,H,W)`` bool, S_0. Supports on a
            coarser grid must be resized first (``kit.masks.upsample``).
        remover: a ``kit.removers`` name or object filling the occluded hull (default gray).
        batch_size: images per forward pass.

    Returns:
        :class:`GadRatios`.
    """
    from kit.attributors._common import check_inputs
    from kit.removers import get_remover

    t = check_inputs(model, x, target)
    o = check_inputs(model, x, other)
    if bool((t == o).any()):
        raise ValueError("other must differ from target on every image")
    for name, s in (("support_gad", support_gad), ("support_0", support_0)):
        _maps(name, s)
        if s.shape[0] != x.shape[0] or s.shape[-2:] != x.shape[-2:]:
            raise ValueError(
                f"{name} must have shape ({x.shape[0]},1,{x.shape[2]},{x.shape[3]}) (one "
                f"image-sized support per image; resize with kit.masks.upsample), "
                f"got {tuple(s.shape)}")
    rem = get_remover(remover, model=model)
    empty = (is_degenerate(support_gad) | is_degenerate(support_0)).numpy()
    hulls = {"gad": convex_hull(support_gad.bool()), "0": convex_hull(support_0.bool())}
    m = pair_margin(model, x, t, o, batch_size=batch_size).double()
    area, delta = {}, {}
    for key, hull in hulls.items():
        keep = 1.0 - hull.to(x.dtype)
        with torch.inference_mode():
            occluded = rem(x, keep)
        after = pair_margin(model, occluded, t, o, batch_size=batch_size).double()
        delta[key] = (m - after).numpy()
        area[key] = hull.flatten(1).double().mean(1).cpu().numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        rc = np.where(empty, np.nan, area["gad"] / area["0"])
        rs = (delta["gad"] / area["gad"]) / (delta["0"] / area["0"])
        rs = np.where(empty | (delta["0"] == 0), np.nan, rs)
    return GadRatios(rc, rs, area["gad"], area["0"], delta["gad"], delta["0"], empty)


# ----------------------------------------------------------------------------------------------
# the whole sweep, for notebooks
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GadRun:
    """Output of :func:`gad_table`.

    Attributes:
        per_image: long table ``image, method, alpha, metric (RC | RS), value`` (α > 0 only; at
            α = 0 both ratios are 1 by construction).
        diagnostics: one row per (method, α > 0): ``n_images``, ``n_empty`` (images with a
            degenerate support, excluded from the ratios), ``support_fraction`` (mean |S| / h·w),
            ``hull_area_0``, ``hull_area_gad`` (mean hull areas as fractions of h·w),
            ``median_RC``, ``median_RS``.
        results: ``(method, α) -> GadResult``; α = 0 is the baseline on the original model.
    """

    per_image: pd.DataFrame
    diagnostics: pd.DataFrame
    results: dict


def gad_table(model, x: torch.Tensor, target, other, supports: Mapping[float, SupportModels],
              methods: Sequence[str] = GRADIENT_METHODS, *, q: float = 0.2, remover="gray",
              profile: str | None = None, method_kwargs: Mapping[str, Mapping] | None = None,
              control: SupportModels | None = None, seed: int = 0, batch_size: int = 64,
              progress: bool = False) -> GadRun:
    """Baseline and GAD maps and the ratios RC, RS for every method and α.

    Args:
        model: the original classifier.
        x: ``(N,3,H,W)`` images of class a or b; target: their class t; other: the pair's other
            class o (int or ``(N,)`` long each).
        supports: α (> 0) -> :class:`SupportModels` for that α.
        methods: gradient method names, ``kit.attributors.METHODS`` keys or attributor names
            (:func:`gradient_methods`; default: the five gradient attributors); the table uses
            the names as given.
        q: top-q fraction.
        remover: the remover occluding the hulls (RS).
        profile: a ``kit.attributors.PROFILES`` key: its entries for the method names override
            the methods' parameters (e.g. ``"cheap"``: fewer IG steps and SmoothGrad samples).
        method_kwargs: per-method attributor options on top of the profile's, e.g.
            ``{"IntegratedGradients": {"steps": 25}}``.
        control: optional copies trained at α = 0 (:func:`train_support_models` with
            ``alpha=0``): fused like GAD and reported as method ``<method> (fusion only)`` at
            α = 0 (see :data:`CONTROL_SUFFIX`).
        seed: passed to attributors that take one.
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
    if profile is not None:
        from kit.attributors import PROFILES

        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; valid names: {', '.join(PROFILES)}")
        method_kwargs = {m: {**PROFILES[profile].get(m, {}), **(method_kwargs or {}).get(m, {})}
                         for m in methods}
    method_kwargs = dict(method_kwargs or {})
    unknown = sorted(set(method_kwargs) - set(methods))
    if unknown:
        raise ValueError(f"method_kwargs names methods {unknown} that are not in methods "
                         f"{list(methods)}")
    rows, diag, results = [], [], {}
    sup_by_alpha = {float(a): s for a, s in supports.items()}
    if control is not None:
        sup_by_alpha["control"] = control
    jobs = [(m, a) for m in methods
            for a in (0.0, *sorted(float(a) for a in supports), *(["control"] if control else []))]
    for method, alpha in tqdm(jobs, disable=not progress, desc="GAD", leave=False):
        attributor, params = valid[method]
        kw = {"batch_size": batch_size, **params, **method_kwargs.get(method, {})}
        if alpha == 0:
            results[method, 0.0] = baseline_explain(attributor, model, x, target, q=q, seed=seed,
                                                    **kw)
            continue
        res = gad_explain(attributor, sup_by_alpha[alpha], x, target, q=q, seed=seed, **kw)
        name, alpha = (method + CONTROL_SUFFIX, 0.0) if alpha == "control" else (method, alpha)
        results[name, alpha] = res
        r = gad_ratios(model, x, target, other, res.support, results[method, 0.0].support,
                       remover=remover)
        for metric, values in (("RC", r.rc), ("RS", r.rs)):
            rows += [{"image": i, "method": name, "alpha": alpha, "metric": metric,
                      "value": float(v)} for i, v in enumerate(values)]
        diag.append({
            "method": name, "alpha": alpha, "n_images": int(len(r.rc)),
            "n_empty": int(r.empty.sum()),
            "support_fraction": float(res.support.float().mean()),
            "hull_area_0": float(np.mean(r.area_0)), "hull_area_gad": float(np.mean(r.area_gad)),
            "median_RC": float(np.nanmedian(r.rc)) if np.isfinite(r.rc).any() else float("nan"),
            "median_RS": float(np.nanmedian(r.rs)) if np.isfinite(r.rs).any() else float("nan"),
        })
    per_image = pd.DataFrame(rows, columns=["image", "method", "alpha", "metric", "value"])
    return GadRun(per_image, pd.DataFrame(diag), results)


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


# ----------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------


def plot_maps(x: torch.Tensor, results: Mapping, method: str, *,
              titles: Sequence[str] | None = None, n: int = 6):
    """Side-by-side maps without (α = 0) and with GAD (each α) for one method.

    Rows are images; columns the image, the baseline map and the GAD map per α, each shown
    normalised by its max|·| on a symmetric colour scale, with the support's convex hull outlined.

    Args:
        x: ``(N,3,H,W)`` images; results: :attr:`GadRun.results`; method: the method shown;
        titles: one label per image; n: number of images.
    """
    import matplotlib.pyplot as plt

    alphas = sorted(a for (m, a) in results if m == method)
    if not alphas:
        raise ValueError(f"method {method!r} is not in results; "
                         f"valid: {sorted({m for m, _ in results})}")
    n = min(n, x.shape[0])
    fig, axes = plt.subplots(n, 1 + len(alphas), figsize=(1.5 * (1 + len(alphas)), 1.55 * n),
                             squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(x[i].detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy())
        if titles is not None:
            axes[i, 0].set_ylabel(titles[i], fontsize=8)
        for c, a in enumerate(alphas, start=1):
            res = results[method, a]
            sal = normalise(res.sal[i : i + 1].float())[0, 0].cpu().numpy()
            axes[i, c].imshow(sal, cmap="bwr", vmin=-1, vmax=1)
            sup = res.support[i : i + 1]
            if not bool(is_degenerate(sup)[0]):
                axes[i, c].contour(convex_hull(sup)[0, 0].cpu().numpy().astype(float),
                                   levels=[0.5], colors="k", linewidths=0.8)
            if i == 0:
                axes[i, c].set_title("no GAD" if a == 0 else f"GAD α={a:g}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(method, fontsize=9)
    fig.tight_layout()
    return fig


def plot_ratios(summary: pd.DataFrame, metrics: Sequence[str] = ("RC", "RS")):
    """RC and RS against α, one line per method with its 95% CI band; α = 0 is 1 by construction.

    Methods of the fusion-only control (only α = 0 rows) are drawn as single points with error bars.

    Args:
        summary: ``kit.report.summarize(per_image, HIGHER_IS_BETTER, by=("method", "alpha"))``.
        metrics: panels to draw.
    """
    import matplotlib.pyplot as plt

    missing = [c for c in ("method", "alpha", "metric", "mean", "ci_low", "ci_high")
               if c not in summary.columns]
    if missing:
        raise ValueError(f"summary is missing column(s) {missing}; expected the output of "
                         "kit.report.summarize(..., by=('method', 'alpha'))")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.3), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        sub = summary[summary["metric"] == metric]
        for method, g in sub.groupby("method", sort=False):
            g = g.sort_values("alpha")
            if (g["alpha"] == 0).all():  # the fusion-only control: one point at α = 0
                mean = g["mean"].to_numpy(float)
                err = np.stack([mean - g["ci_low"].to_numpy(float),
                                g["ci_high"].to_numpy(float) - mean])
                ax.errorbar(np.zeros_like(mean), mean, yerr=err, fmt="s", ms=4, capsize=3,
                            label=method)
                continue
            a = np.concatenate([[0.0], g["alpha"].to_numpy(float)])
            line = ax.plot(a, np.concatenate([[1.0], g["mean"].to_numpy(float)]), marker="o",
                           ms=3, label=method)[0]
            ax.fill_between(a, np.concatenate([[1.0], g["ci_low"].to_numpy(float)]),
                            np.concatenate([[1.0], g["ci_high"].to_numpy(float)]),
                            color=line.get_color(), alpha=0.15, linewidth=0)
        ax.axhline(1.0, color="gray", linestyle="--", linewidth=0.8)
        better = "lower" if not HIGHER_IS_BETTER.get(metric, True) else "higher"
        ax.set_title(f"{metric} (mean, 95% CI; {better} is better)", fontsize=9)
        ax.set_xlabel("α")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig
