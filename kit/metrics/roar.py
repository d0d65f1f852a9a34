"""ROAR and KAR: remove or keep the top-ranked pixels, retrain from scratch, test (methods.md §4.6).

Hooker et al. (NeurIPS 2019, arXiv 1806.10758) judge an attribution estimator by how much a
classifier *retrained* on images whose top-``t`` pixels (by the estimator) were replaced loses on
the equally modified test set: retraining keeps the modified images in the training distribution,
so a drop means the removed pixels carried information, not that the images became unusual.

* **ROAR** (remove and retrain): the top fraction ``t`` of pixels is removed. Better estimator =
  **lower** test accuracy.
* **KAR** (keep and retrain): only the top fraction ``t`` is kept, the rest removed. Better
  estimator = **higher** test accuracy.

Project choices (methods.md §4.6, documented where they are made):

* **Pixel-level ranking** (the default of §4.6): each estimator's ``(N,1,H,W)`` map (kit's channel
  reduction, upsampled to the image by :func:`kit.masks.upsample` when it lives on a coarser grid)
  is squared (rank by magnitude, ``--squared_value``), min-max rescaled per image and shifted by
  ``eps = 1e-5``; the top ``floor(t * H * W)`` pixels are taken with a **stable** descending sort,
  so tied pixels are taken in raster order (row-major, top-left first; pitfall 25). The removal
  mask holds exactly that many pixels, whatever the ties.
* **Targets**: maps explain the *predicted* class of the classifier trained on unmodified data
  (ROAR explains the predicted class; §3.6 uses the logit for gradient methods).
* **Random baseline**: the registered ``random`` attributor, a uniform map drawn per image from a
  seeded hash of (seed, image) and ranked like every other map. It is a **seeded fixed draw**
  (the same removed pixels in every epoch and for every retraining seed), not ROAR's Bernoulli
  mask re-drawn at every load: fixed draws let the expensive inpainted data sets be computed once
  and cached, and make the random row an estimator like the others (exactly ``floor(t H W)``
  pixels removed, as for them).
* **Fill**: ``"gray"`` (the reference: the classifier's training mean colour, i.e. ROAR's
  per-channel mean) or any :mod:`kit.removers` name; ``"inpaint"`` (the world inpainter) gives a
  **ROAD-like variant** ("ROAR-G"), reported as such.
* **Sobel control**: ROAR's ``scipy.ndimage.sobel(img, axis=0)`` on the normalised HWC image
  (vertical derivative, smoothed along the other two axes including channels), summed over
  channels for the pixel-level ranking.
* **Storage**: modified images are quantised to 8 bits (as an image file would hold them) for
  every fill, cached or not, so a cached run and a fresh run train on identical tensors. Data sets
  made with a non-differentiable (expensive) remover are cached under ``CACHE_DIR/roar``.
* **Retraining**: :class:`kit.nets.WorldCNN` with kit's classifier recipe (:mod:`kit.train`:
  AdamW, one-cycle learning rate, dihedral augmentation, normalisation by the *modified* training
  set's mean and std), at a size chosen for the CPU budget (:data:`TRAIN_DEFAULTS`). ROAR's
  resize-crop augmentation and 8/7 eval zoom (pitfall 27) are replaced by the world's
  label-preserving flips and rotations. Retraining results are cached too (keyed by the data, the
  recipe, the seed, the code and the torch version).
* **Intervals over seeds**: a Student-t 95% interval of the mean over retraining seeds (a
  percentile bootstrap over 3–5 values has too few distinct resamples to mean anything).

Usage::

    from kit.metrics import roar
    maps = roar.estimator_maps(["random", "Saliency"], clf, x)              # (N,1,64,64) each
    keep = roar.keep_mask(maps["Saliency"], 0.3, "roar")                    # 30% removed
    table = roar.run_roar(clf, xtr, ytr, xte, yte, estimators=["random", "Saliency"])
    summary = roar.summarize(table); ranks = roar.ranking(table)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

__all__ = [
    "FRACTIONS",
    "MODES",
    "ESTIMATORS",
    "MAP_OVERRIDES",
    "TRAIN_DEFAULTS",
    "HIGHER_IS_BETTER",
    "sobel_map",
    "estimator_maps",
    "ranking_scores",
    "top_mask",
    "keep_mask",
    "modify",
    "train_on",
    "accuracy",
    "run_roar",
    "summarize",
    "ranking",
    "rank_agreement",
    "plot_curves",
]

FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
"""Fractions of pixels removed (ROAR) or kept (KAR), methods.md §4.6."""

MODES = ("roar", "kar")
"""``roar`` removes the top fraction, ``kar`` keeps only it."""

ESTIMATORS = ("random", "sobel", "Saliency", "IntegratedGradients", "GuidedBackprop",
              "SmoothGrad", "SmoothGrad2", "VarGrad", "SP", "SP-G")
"""The issue's estimators: ``sobel`` (computed here) and :data:`kit.attributors.METHODS` names
(``Saliency`` is the vanilla gradient). Any other METHODS name is accepted too."""

MAP_OVERRIDES: dict[str, dict] = {
    "IntegratedGradients": {"steps": 25},
    "SmoothGrad": {"n_samples": 25},
    "SmoothGrad2": {"n_samples": 25},
    "VarGrad": {"n_samples": 25},
    "SP": {"stride": 8},
    "SP-G": {"stride": 8, "local": True},
}
"""Default hyperparameters of the ROAR maps: the ROAR replication values k = J = 25 (§3.6), and
a sliding patch of 8 px with stride 8 (64 patches instead of 841; SP-G fills each patch from a
local crop), because SP-G on every training image at the default stride 2 costs several seconds
per image on a CPU (measured in notebook 06)."""

TRAIN_DEFAULTS = dict(epochs=8, batch_size=64, lr=3e-3, width=12, weight_decay=5e-4)
"""Retraining recipe: :mod:`kit.train`'s optimiser, schedule and augmentation, with a narrower
network (width 12 instead of 24) and the epochs the CPU budget allows."""

HIGHER_IS_BETTER = {"roar": False, "kar": True}
"""Direction of test accuracy as an estimator score, per mode."""

EPS = 1e-5
"""Added after min-max rescaling (ROAR's ``compute_feature_ranking``); it does not change ranks."""


# ----------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------


def _check_fraction(fraction) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not (
        0 <= float(fraction) <= 1
    ):
        raise ValueError(f"fraction must be a number in [0, 1], got {fraction!r}")
    return float(fraction)


def _check_mode(mode) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def _check_map(name: str, sal) -> None:
    if not isinstance(sal, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(sal).__name__}")
    if sal.dim() != 4 or sal.shape[1] != 1:
        raise ValueError(f"{name} must have shape (N,1,H,W), got {tuple(sal.shape)}")
    if not sal.is_floating_point():
        raise TypeError(f"{name} must be a float tensor, got dtype {sal.dtype}")
    if not torch.isfinite(sal).all():
        raise ValueError(f"{name} contains NaN or infinite values")


def _check_labels(name: str, y, n: int) -> torch.Tensor:
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.shape != (n,):
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"{name} must be an integer tensor of shape ({n},), got {shape}")
    return y.long()


def _check_names(estimators) -> list[str]:
    from kit.attributors import METHODS

    if isinstance(estimators, str) or not isinstance(estimators, Sequence) or not estimators:
        raise ValueError(f"estimators must be a non-empty list of names, got {estimators!r}")
    valid = ["sobel", *METHODS]
    bad = [e for e in estimators if e not in valid]
    if bad:
        raise ValueError(f"estimators: unknown name(s) {bad}; valid names: {', '.join(valid)}")
    if len(set(estimators)) != len(estimators):
        raise ValueError(f"estimators: duplicate names in {list(estimators)}")
    return list(estimators)


# ----------------------------------------------------------------------------------------------
# estimator maps and rankings
# ----------------------------------------------------------------------------------------------


def sobel_map(model, x: torch.Tensor) -> torch.Tensor:
    """ROAR's Sobel control: vertical Sobel derivative of the normalised image, channel-summed.

    As ROAR's ``scipy.ndimage.sobel(img, axis=0)`` on an HWC image: the derivative runs down the
    rows and the smoothing runs along columns *and channels* (SciPy smooths every other axis).

    Args:
        model: a :class:`kit.models.Classifier` (its ``normalize`` gives the network's input space).
        x: ``(N,3,H,W)`` images in [0,1].

    Returns:
        ``(N,1,H,W)`` float32 signed map (ranked by its square, like every map).
    """
    from scipy.ndimage import sobel

    from kit.models import _check_images

    _check_images("x", x)
    with torch.no_grad():
        z = model.normalize(x).detach().cpu().permute(0, 2, 3, 1).numpy()  # NHWC
    out = np.stack([sobel(img, axis=0).sum(-1) for img in z])  # one HWC image at a time, as ROAR
    return torch.from_numpy(out).float().unsqueeze(1).to(x.device)


def _to_pixels(name: str, sal: torch.Tensor, size: tuple[int, int],
               overrides: Mapping) -> torch.Tensor:
    """Bring a native-grid map to the image's pixels with kit's one upsampling function."""
    from kit.attributors import METHODS
    from kit.defaults import resolve
    from kit.masks import upsample

    if tuple(sal.shape[-2:]) == size:
        return sal
    if name in METHODS and METHODS[name].attributor == "sliding_patch":
        window = overrides.get("window") or resolve("sp_window", size[0])
        stride = overrides.get("stride") or resolve("sp_stride", size[0])
        return upsample(sal, size, mode="coverage", window=window, stride=stride)
    return upsample(sal, size, mode="bilinear")


def estimator_maps(
    names: Sequence[str],
    model,
    x: torch.Tensor,
    target=None,
    *,
    overrides: Mapping[str, Mapping] | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    cache: bool = True,
    progress: bool = False,
    timings: dict | None = None,
) -> dict[str, torch.Tensor]:
    """Pixel-level maps of every estimator, through :func:`kit.mapcache.compute_maps`.

    Args:
        names: ``"sobel"`` and/or :data:`kit.attributors.METHODS` names.
        model: the classifier trained on unmodified data.
        x: ``(N,3,H,W)`` images in [0,1].
        target: ``(N,)`` classes explained; None = the model's predicted classes (ROAR).
        overrides: per-estimator hyperparameters; None = :data:`MAP_OVERRIDES`.
        seed: attributor seed (SmoothGrad noise, the random map).
        batch_size: passed to the attributors.
        cache: use the on-disk map cache (``CACHE_DIR/maps``).
        progress: tqdm bar.
        timings: if a dict, receives ``{name: seconds spent computing}``.

    Returns:
        ``{name: (N,1,H,W) float32}`` on the CPU.
    """
    from kit.mapcache import compute_maps
    from kit.models import _check_images

    names = _check_names(names)
    _check_images("x", x)
    overrides = MAP_OVERRIDES if overrides is None else overrides
    if target is None:
        target = _predict(model, x, batch_size or 256)
    methods = [n for n in names if n != "sobel"]
    ov = {n: dict(overrides[n]) for n in methods if n in overrides}
    maps = compute_maps(methods, model, x, target, overrides=ov, seed=seed,
                        batch_size=batch_size, cache=cache, progress=progress,
                        timings=timings) if methods else {}
    out = {}
    size = tuple(x.shape[-2:])
    for n in names:
        if n == "sobel":
            t0 = time.perf_counter()
            out[n] = sobel_map(model, x).cpu()
            if timings is not None:
                timings[n] = time.perf_counter() - t0
        else:
            out[n] = _to_pixels(n, maps[n].float(), size, ov.get(n, {}))
    return out


def ranking_scores(sal: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """ROAR's ranking score: ``s = sal**2``, min-max rescaled per image, plus ``eps``.

    Args:
        sal: ``(N,1,H,W)`` maps.
        eps: added after rescaling (a constant map gives ``eps`` everywhere).

    Returns:
        ``(N,1,H,W)`` float32 scores in ``[eps, 1 + eps]``.
    """
    _check_map("sal", sal)
    s = sal.detach().float() ** 2
    flat = s.flatten(1)
    lo, hi = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    span = hi - lo
    flat = torch.where(span > 0, (flat - lo) / span.clamp_min(torch.finfo(s.dtype).tiny), 0.0)
    return (flat + eps).view_as(s)


def top_mask(sal: torch.Tensor, fraction: float) -> torch.Tensor:
    """The top ``floor(fraction * H * W)`` pixels of each map by :func:`ranking_scores`.

    Ties are broken by a stable descending sort: equal scores are taken in raster order
    (row-major, top-left first).

    Args:
        sal: ``(N,1,H,W)`` maps.
        fraction: in [0, 1].

    Returns:
        ``(N,1,H,W)`` float32 in {0,1}, exactly ``floor(fraction * H * W)`` ones per image.
    """
    fraction = _check_fraction(fraction)
    s = ranking_scores(sal).flatten(1)
    k = math.floor(fraction * s.shape[1] + 1e-9)  # guard 0.5 * 4096 against float round-down
    order = torch.sort(s, dim=1, descending=True, stable=True).indices
    top = torch.zeros_like(s)
    top.scatter_(1, order[:, :k], 1.0)
    return top.view_as(sal).to(torch.float32)


def keep_mask(sal: torch.Tensor, fraction: float, mode: str) -> torch.Tensor:
    """Keep-mask (1 = keep) of ROAR (top fraction removed) or KAR (only the top fraction kept).

    Args:
        sal: ``(N,1,H,W)`` maps.
        fraction: fraction of pixels ranked at the top, in [0, 1].
        mode: ``"roar"`` or ``"kar"``.

    Returns:
        ``(N,1,H,W)`` float32 keep-mask in {0,1}; the ROAR and KAR masks of one map and fraction
        are complements.
    """
    mode = _check_mode(mode)
    top = top_mask(sal, fraction)
    return 1.0 - top if mode == "roar" else top


def _quantize(x: torch.Tensor) -> torch.Tensor:
    return (x * 255).round().to(torch.uint8)


def modify(x: torch.Tensor, keep: torch.Tensor, fill="gray", *, model=None,
           batch_size: int = 256) -> torch.Tensor:
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


def _predict(model, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    with torch.inference_mode():
        out = [model(x[i:i + batch_size]).argmax(1) for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out).clone()  # a normal tensor: attributors take gradients with it


def _images(name: str, x) -> torch.Tensor:
    """uint8 (as stored) or float [0,1] images -> float32 pixel space."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a (N,3,H,W) tensor, got {shape}")
    if x.dtype == torch.uint8:
        return x.float() / 255
    from kit.models import _check_images

    _check_images(name, x)
    return x.float()


def train_on(images: torch.Tensor, labels: torch.Tensor, *, seed: int = 0, progress: bool = False,
             **options):
    """Train a fresh :class:`kit.nets.WorldCNN` on these images (kit's classifier recipe).

    The recipe of :func:`kit.train.train_classifier` (AdamW, one-cycle learning rate, random
    flips/rotations, normalisation by the training images' mean and std) on given tensors. Every
    random draw (initialisation, batch order, augmentation) comes from ``seed``; the global
    generators are left as they were.

    Args:
        images: ``(N,3,H,W)`` uint8 or float images in [0,1].
        labels: ``(N,)`` class indices in ``[0, 8)``.
        seed: seed of initialisation, batch order and augmentation.
        progress: tqdm bar over steps.
        **options: keys of :data:`TRAIN_DEFAULTS` (``epochs``, ``batch_size``, ``lr``, ``width``,
            ``weight_decay``).

    Returns:
        A :class:`kit.models.Classifier` (eval mode, frozen) around the trained network.
    """
    from kit import world
    from kit.models import Classifier
    from kit.nets import WorldCNN
    from kit.train import _dihedral

    unknown = sorted(set(options) - set(TRAIN_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown training options {unknown}; valid: {sorted(TRAIN_DEFAULTS)}")
    cfg = {**TRAIN_DEFAULTS, **options}
    for key in ("epochs", "batch_size", "width"):
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{key} must be a positive integer, got {v!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    x = _images("images", images)
    y = _check_labels("labels", labels, x.shape[0])
    n, bs = x.shape[0], cfg["batch_size"]
    if n < 2:
        raise ValueError(f"images: need at least 2 training images, got {n}")
    mean, std = x.mean((0, 2, 3)), x.std((0, 2, 3)).clamp_min(1e-6)
    z = ((x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)).contiguous()
    gen = torch.Generator().manual_seed(seed)
    cl = torch.channels_last
    with torch.random.fork_rng(devices=[]):  # the initialisation draws from the global generator
        torch.manual_seed(seed)
        net = WorldCNN(len(world.CLASSES), cfg["width"]).to(memory_format=cl)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    steps = math.ceil(n / bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"],
                                                total_steps=cfg["epochs"] * steps)
    bar = tqdm(total=cfg["epochs"] * steps, disable=not progress, desc="retrain", leave=False)
    net.train()
    for _ in range(cfg["epochs"]):
        perm = torch.randperm(n, generator=gen)
        for i in range(steps):
            idx = perm[i * bs:(i + 1) * bs]
            k = torch.randint(8, (len(idx),), generator=gen)
            if len(idx) < 2:  # batch norm needs two samples; the step still advances the schedule
                sched.step()
                continue
            loss = F.cross_entropy(net(_dihedral(z[idx], k).contiguous(memory_format=cl)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
    bar.close()
    return Classifier(net.eval(), world.CLASSES, mean.tolist(), std.tolist(), name="roar")


def accuracy(model, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` on uint8 or float images, batched under inference mode."""
    x = _images("images", images)
    y = _check_labels("labels", labels, x.shape[0])
    return float((_predict(model, x, batch_size) == y).float().mean())


# ----------------------------------------------------------------------------------------------
# the experiment
# ----------------------------------------------------------------------------------------------


def roar_cache_dir() -> Path:
    """``CACHE_DIR/roar`` (``KIT_CACHE`` moves it)."""
    from kit.paths import CACHE_DIR

    return Path(os.environ.get("KIT_CACHE", CACHE_DIR)) / "roar"


_CODE: str | None = None


def _code_digest() -> str:
    """Digest of the code a cached data set or accuracy depends on, and the torch version."""
    global _CODE
    if _CODE is None:
        root = Path(__file__).resolve().parent.parent
        h = hashlib.sha256(torch.__version__.encode())
        for rel in ("metrics/roar.py", "nets.py", "train.py", "removers.py", "models.py"):
            h.update(rel.encode() + (root / rel).read_bytes())
        _CODE = h.hexdigest()
    return _CODE


def _digest(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, torch.Tensor):
            t = p.detach().cpu().contiguous()
            p = str((t.dtype, tuple(t.shape))).encode() + t.numpy().tobytes()
        elif not isinstance(p, bytes):
            p = repr(p).encode()
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()[:32]


def _atomic_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if isinstance(obj, torch.Tensor):
        torch.save(obj, tmp)
    else:
        tmp.write_text(json.dumps(obj), encoding="utf-8")
    os.replace(tmp, path)


def _load_tensor(path: Path) -> torch.Tensor | None:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a truncated or foreign file is recomputed, never trusted
        return None


def _modified(x, sal, fraction, mode, fill, model, cache: bool) -> torch.Tensor:
    """The modified uint8 data set, from the cache when the remover is expensive."""
    from kit.removers import get_remover

    keep = keep_mask(sal, fraction, mode)
    remover = get_remover(fill, model=model)
    path = None
    if cache and not remover.differentiable and isinstance(fill, str):
        from kit.mapcache import _inpainter_digest

        key = _digest(fill, repr(remover), fraction, mode, x, keep, _inpainter_digest(),
                      _code_digest())
        path = roar_cache_dir() / "data" / f"{fill}-{key}.pt"
        if path.exists():
            out = _load_tensor(path)
            if out is not None and out.shape == x.shape and out.dtype == torch.uint8:
                return out
    out = modify(x, keep, remover, model=model)
    if path is not None:
        _atomic_save(out, path)
    return out


def _trained_accuracy(xtr, ytr, xte, yte, seed, options, cache: bool) -> tuple[float, float]:
    """(test accuracy, seconds) of one retraining, from the cache when it was run before."""
    path = None
    if cache:
        key = _digest(xtr, ytr, xte, yte, seed, sorted({**TRAIN_DEFAULTS, **options}.items()),
                      _code_digest())
        path = roar_cache_dir() / "runs" / f"{key}.json"
        if path.exists():
            try:
                rec = json.loads(path.read_text(encoding="utf-8"))
                return float(rec["accuracy"]), float(rec["seconds"])
            except (ValueError, KeyError, TypeError):
                pass  # an unreadable cache entry is retrained and overwritten below
    t0 = time.perf_counter()
    net = train_on(xtr, ytr, seed=seed, **options)
    acc = accuracy(net, xte, yte)
    seconds = time.perf_counter() - t0
    if path is not None:
        _atomic_save({"accuracy": acc, "seconds": seconds}, path)
    return acc, seconds


def run_roar(
    model,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    estimators: Sequence[str] = ESTIMATORS,
    fractions: Sequence[float] = FRACTIONS,
    modes: Sequence[str] = MODES,
    fills: Sequence[str] = ("gray", "inpaint"),
    seeds: Sequence[int] = (0, 1, 2),
    train_options: Mapping | None = None,
    maps: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    map_overrides: Mapping[str, Mapping] | None = None,
    map_seed: int = 0,
    cache: bool = True,
    progress: bool = False,
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
        estimators: ``"sobel"`` and :data:`kit.attributors.METHODS` names.
        fractions: fractions of pixels in (0, 1].
        modes: subset of :data:`MODES`.
        fills: :mod:`kit.removers` names (``"gray"`` = ROAR's mean fill; ``"inpaint"`` = ROAR-G).
        seeds: retraining seeds.
        train_options: keys of :data:`TRAIN_DEFAULTS`.
        maps: precomputed ``{name: (train maps, test maps)}``; missing ones are computed with
            :func:`estimator_maps`.
        map_overrides: estimator hyperparameters (None = :data:`MAP_OVERRIDES`).
        map_seed: seed of the stochastic estimators (the random map, SmoothGrad noise).
        cache: reuse/store maps, expensive modified data sets and retraining results on disk.
        progress: tqdm bar over retrainings.

    Returns:
        Long DataFrame with columns ``estimator, mode, fill, fraction, seed, accuracy, seconds``
        (``seconds``: wall time of that retraining and test, or of the run that filled the cache).
    """
    from kit.removers import get_remover

    estimators = _check_names(estimators)
    fractions = [_check_fraction(f) for f in fractions]
    if not fractions:
        raise ValueError("fractions must not be empty")
    modes = [_check_mode(m) for m in modes]
    for f in fills:
        get_remover(f, model=model)  # unknown names fail here, before any work
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    options = dict(train_options or {})
    unknown = sorted(set(options) - set(TRAIN_DEFAULTS))
    if unknown:
        raise ValueError(
            f"train_options: unknown key(s) {unknown}; valid: {sorted(TRAIN_DEFAULTS)}")
    xtr, xte = _images("train_images", train_images), _images("test_images", test_images)
    ytr = _check_labels("train_labels", train_labels, xtr.shape[0])
    yte = _check_labels("test_labels", test_labels, xte.shape[0])

    maps = dict(maps or {})
    missing = [e for e in estimators if e not in maps]
    if missing:
        mtr = estimator_maps(missing, model, xtr, overrides=map_overrides, seed=map_seed,
                             cache=cache)
        mte = estimator_maps(missing, model, xte, overrides=map_overrides, seed=map_seed,
                             cache=cache)
        maps.update({e: (mtr[e], mte[e]) for e in missing})

    total = len(seeds) * (1 + len(estimators) * len(modes) * len(fills) * len(fractions))
    bar = tqdm(total=total, desc="ROAR retrainings", disable=not progress)
    rows = []
    qtr, qte = _quantize(xtr), _quantize(xte)  # the reference data go through the same storage
    for seed in seeds:
        acc, sec = _trained_accuracy(qtr, ytr, qte, yte, seed, options, cache)
        rows.append(dict(estimator="none", mode="none", fill="none", fraction=0.0, seed=seed,
                         accuracy=acc, seconds=sec))
        bar.update()
    for fill in fills:
        for est in estimators:
            str_, ste = maps[est]
            for mode in modes:
                for frac in fractions:
                    dtr = _modified(xtr, str_, frac, mode, fill, model, cache)
                    dte = _modified(xte, ste, frac, mode, fill, model, cache)
                    for seed in seeds:
                        acc, sec = _trained_accuracy(dtr, ytr, dte, yte, seed, options, cache)
                        rows.append(dict(estimator=est, mode=mode, fill=fill, fraction=frac,
                                         seed=seed, accuracy=acc, seconds=sec))
                        bar.update()
    bar.close()
    return pd.DataFrame(rows, columns=["estimator", "mode", "fill", "fraction", "seed",
                                       "accuracy", "seconds"])


# ----------------------------------------------------------------------------------------------
# tables and figure
# ----------------------------------------------------------------------------------------------


def _t_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean; (nan, nan) below 2 values, the value for constant ones."""
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return (float("nan"), float("nan"))
    m, se = float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size))
    half = float(stats.t.ppf(0.5 + confidence / 2, v.size - 1)) * se
    return (m - half, m + half)


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
        lo, hi = _t_interval(v, confidence)
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
            lo, hi = _t_interval(v, confidence)
            rec = dict(mode=mode, fill=fill, estimator=est, rank=int(order[est]),
                       score=float(v.mean()), ci_low=lo, ci_high=hi, diff_vs_random=np.nan,
                       diff_ci_low=np.nan, diff_ci_high=np.nan, beats_random=False)
            if rnd is not None and est != "random":
                d = (row - rnd).dropna().to_numpy(np.float64)
                dlo, dhi = _t_interval(d, confidence)
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


def plot_curves(summary: pd.DataFrame, *, chance: float | None = 1 / 8):
    """Accuracy vs fraction with confidence bands: rows = modes, columns = fills.

    Args:
        summary: a :func:`summarize` table.
        chance: draw a dotted chance line (None: none).

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    s = summary[summary["mode"].isin(MODES)]
    ref = summary[summary["mode"] == "none"]
    modes = [m for m in MODES if m in set(s["mode"])]
    fills = list(dict.fromkeys(s["fill"]))
    ests = list(dict.fromkeys(s["estimator"]))
    colors = dict(zip(ests, plt.get_cmap("tab10").colors * 2, strict=False))
    fig, axes = plt.subplots(len(modes), len(fills), figsize=(4.2 * len(fills), 3.4 * len(modes)),
                             squeeze=False, sharex=True, sharey=True)
    for i, mode in enumerate(modes):
        for j, fill in enumerate(fills):
            ax = axes[i, j]
            for est in ests:
                g = s[(s["mode"] == mode) & (s["fill"] == fill) & (s["estimator"] == est)]
                if g.empty:
                    continue
                g = g.sort_values("fraction")
                style = dict(color="black", linestyle="--") if est == "random" else dict(
                    color=colors[est])
                ax.plot(g["fraction"], g["mean"], marker="o", ms=3, label=est, **style)
                if g["ci_low"].notna().all():
                    ax.fill_between(g["fraction"], g["ci_low"], g["ci_high"], alpha=0.15,
                                    color=style["color"], linewidth=0)
            if len(ref):
                ax.axhline(float(ref["mean"].iloc[0]), color="gray", linewidth=0.8,
                           label="unmodified")
            if chance is not None:
                ax.axhline(chance, color="gray", linestyle=":", linewidth=0.8, label="chance")
            name = {"roar": "ROAR (top removed)", "kar": "KAR (top kept)"}[mode]
            ax.set_title(f"{name}, fill: {fill}" + (" (ROAD-like)" if fill != "gray" else ""),
                         fontsize=9)
            ax.set_xlim(0, 1)
            ax.set_xlabel("fraction of pixels ranked at the top")
            if j == 0:
                ax.set_ylabel("test accuracy after retraining")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.tight_layout()
    return fig
