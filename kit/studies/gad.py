"""The GAD study: support models, then baseline and GAD maps with RC / RS for every method and α.

GAD (gradient artificial distancing; Rodrigues, Boutry & Najman, arXiv 2401.14434) "creates
artificial shifts in final activations between chosen classes and trains support regression
models to mimic these changes, then fuses multiple explanations". No public code exists; kit
follows the project's reading of the abstract, ``methods.md`` §3.8 (method) and §4.7 (ratios):

* **Distancing.** For classes ``a`` and ``b`` and a strength α, the regression targets are the
  original classifier's logits shifted apart, ``z*(x) = f(x) + (α/2)·e_a − (α/2)·e_b``
  (:func:`distanced_targets`), computed once per training image of class a or b.
* **Support models.** ``k`` copies of the classifier (seeds ``seed .. seed+k−1``, the seed sets the
  data order) are fine-tuned to ``z*`` with an MSE on all logits (Adam, lr 1e-4, batch 64,
  5 epochs, BatchNorm in eval mode, no augmentation) by :func:`train_support_models`. Each copy is
  stored in the :mod:`kit.cache` namespace ``"gad"`` (``KIT_CACHE``, read at call time), keyed by
  its full configuration and a digest of the original weights, so a rerun loads instead of
  training. α = 0 is the no-GAD baseline: it explains the **original** model and trains nothing
  (training copies at α = 0 is the optional "fusion only" control).
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
    x, y = gad.pair_images(a, b, 32, split="test")
    run = gad.gad_table(clf, x, y, (a + b) - y, {4.0: sup}, ["IntegratedGradients"])
"""

from __future__ import annotations

import copy
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
from kit.metrics.gad import HIGHER_IS_BETTER, gad_ratios, logits, pair_margin

__all__ = [
    "GRADIENT_METHODS",
    "CONTROL_SUFFIX",
    "SupportModels",
    "GadRun",
    "resolve_classes",
    "gradient_methods",
    "resolve_methods",
    "distanced_targets",
    "pair_images",
    "support_key",
    "train_support_models",
    "support_summary",
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

_TRAIN_VERSION = 2
"""Bumped whenever the training procedure or the cache entry changes, so stale cached models are
never loaded. 2: entries are :mod:`kit.cache` records (checksummed); version 1 wrote plain
``torch.save`` files under ``paths.CACHE_DIR/gad``."""

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
    a, b = _pair((a, b), len(world.CLASSES))
    n = checks.positive_int("n", n)
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
    Each copy is stored as ``<cache_dir>/<support_key(config)>.pt`` by :func:`kit.cache.write`
    (atomic, checksummed; a corrupted entry is retrained and overwritten); the key covers every
    setting below, the original weights' digest and the training data (the world stream, or a
    digest of ``images``), so changing any of them trains anew.

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
        data = {"source": "images", "digest": disk_cache.digest(images.detach().float())}
    base = {
        "version": _TRAIN_VERSION, "torch": torch.__version__.split("+")[0],
        "model": disk_cache.model_digest(model), "classes": [a, b], "alpha": alpha,
        "epochs": epochs, "lr": lr, "batch_size": batch_size, "data": data,
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
        x = pair_images(a, b, n_train, seed=seed)[0] if images is None else images.detach()
        zstar = distanced_targets(logits(model, x), a, b, alpha)
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
    )


def support_summary(model, supports: Mapping[float, SupportModels], x: torch.Tensor,
                    labels: torch.Tensor, *, batch_size: int = 256) -> pd.DataFrame:
    """How well each support copy learned its distancing, on images of class a or b.

    Args:
        model: the original classifier; supports: α -> :class:`SupportModels`.
        x: ``(N,3,H,W)`` images; labels: their ``(N,)`` classes (for the accuracy column).
        batch_size: images per forward pass.

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
    acc0 = float((logits(model, x, batch_size=batch_size).argmax(1) == labels).float().mean())
    rows = [{"alpha": 0.0, "copy": "original", "from_cache": None, "train_loss": float("nan"),
             "margin_shift": 0.0, "accuracy": acc0, "train_seconds": float("nan")}]
    for alpha, sup in supports.items():
        for j, m in enumerate(sup.models):
            shift = float((pair_margin(m, x, a, b, batch_size=batch_size) - base).mean())
            acc = float((logits(m, x, batch_size=batch_size).argmax(1) == labels).float().mean())
            rows.append({"alpha": float(alpha), "copy": str(j), "from_cache": sup.from_cache[j],
                         "train_loss": sup.losses[j], "margin_shift": shift, "accuracy": acc,
                         "train_seconds": sup.seconds[j]})
    return pd.DataFrame(rows)


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
            the methods' parameters (e.g. ``"cheap"``: fewer IG steps and SmoothGrad samples),
            looked up through :func:`kit.attributors.budget`.
        method_kwargs: per-method attributor options on top of the profile's, e.g.
            ``{"IntegratedGradients": {"steps": 25}}``.
        control: optional copies trained at α = 0 (:func:`train_support_models` with
            ``alpha=0``): fused like GAD and reported as method ``<method> (fusion only)`` at
            α = 0 (see :data:`CONTROL_SUFFIX`).
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
    method_kwargs = _method_kwargs(methods, profile, method_kwargs)
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
