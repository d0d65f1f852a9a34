"""Counterfactual plausibility (methods.md §4.1, project choice).

* :func:`frechet_distance` — FID computed on the classifier's penultimate features (float64,
  real part of the matrix square root). Lower = more plausible.
* :func:`fill_error` — L1 and PSNR of the composite against the true background, weighted by
  the removed amount ``1 - keep`` (kept pixels are identical by construction).
* :func:`artifact_rate` — removal alone creates a confident wrong class.
* :func:`removal_quality` — the world benchmark of a set of removers on whole-object removal:
  probability left for the removed class, fill error, feature Fréchet distance to the true
  backgrounds, artifact rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kit import cache, checks
from kit.engine import BATCH_SIZE
from kit.metrics.classification import (  # noqa: F401 (public here too)
    features,
    probabilities,
    probabilities_and_features,
)
from kit.metrics.stats import bootstrap_ci

HIGHER_IS_BETTER = {
    "fd_background": False,
    "fd_real": False,
    "l1": False,
    "psnr": True,
    "artifact_rate": False,
    "p_removed": False,
}


def frechet_distance(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets.

    ``FD = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))``, in float64. The trace of the
    root is computed as ``Tr (S_a^(1/2) S_b S_a^(1/2))^(1/2)``, whose argument is symmetric
    positive semi-definite: two symmetric eigendecompositions instead of
    :func:`scipy.linalg.sqrtm`'s Schur iteration on the non-symmetric product, the same value to
    rounding and tens of times faster, which is what makes the bootstrap CIs affordable.

    Args:
        a: ``(N,D)`` features; b: ``(M,D)`` features. Use the same N for every compared
            condition: the estimate is biased at finite N.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"a and b must be (N,D) and (M,D) feature arrays, got {a.shape}, {b.shape}"
        )
    if min(len(a), len(b)) < 2:
        raise ValueError(f"need at least 2 samples per set, got {len(a)} and {len(b)}")
    s_a = np.atleast_2d(np.cov(a, rowvar=False))
    s_b = np.atleast_2d(np.cov(b, rowvar=False))
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # negative eigenvalues are rounding
    inner = np.linalg.eigvalsh(root_a @ s_b @ root_a)
    fd = (np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(s_a) + np.trace(s_b)
          - 2 * np.sqrt(np.clip(inner, 0, None)).sum())
    return float(max(fd, 0.0))


@dataclass(frozen=True)
class FillError:
    """Per-image fill error inside the removed region, each ``(N,)``.

    Attributes:
        l1: mean absolute error, weighted by ``1 - keep``.
        psnr: ``10 log10(1 / mse)`` in dB (inf where the fill is exact, e.g. the oracle).
        mse: mean squared error, weighted by ``1 - keep`` (what a PSNR over several masks
            averages before taking the log).
    """

    l1: torch.Tensor
    psnr: torch.Tensor
    mse: torch.Tensor


def fill_error(x_tilde: torch.Tensor, background: torch.Tensor, keep: torch.Tensor) -> FillError:
    """L1, MSE and PSNR of counterfactuals against the true background, weighted by ``1 - keep``.

    Args:
        x_tilde: ``(N,3,H,W)`` composites; background: ``(N,3,H,W)``; keep: ``(N,1,H,W)``.

    Returns:
        :class:`FillError`; images with nothing removed get NaN.
    """
    w = (1 - keep.to(x_tilde.dtype)).expand_as(x_tilde)
    denom = w.sum((1, 2, 3))
    diff = x_tilde - background
    l1 = (w * diff.abs()).sum((1, 2, 3)) / denom
    mse = (w * diff**2).sum((1, 2, 3)) / denom
    psnr = 10 * torch.log10(1 / mse)  # inf where the fill is exact (the oracle)
    nan = torch.full_like(l1, float("nan"))
    valid = denom > 0
    return FillError(torch.where(valid, l1, nan), torch.where(valid, psnr, nan),
                     torch.where(valid, mse, nan))


def artifact_rate(
    probs: torch.Tensor, target: torch.Tensor, reference: torch.Tensor | None = None,
    threshold: float = 0.5,
) -> torch.Tensor:
    """Per-image flag: removal created a confident wrong class (methods.md §4.1 c).

    Args:
        probs: ``(N,C)`` probabilities on the counterfactuals.
        target: ``(N,)`` explained class.
        reference: ``(N,)`` top-1 class of the reference counterfactual (true background), or None.
        threshold: minimum top-1 probability to count as confident.

    Returns:
        ``(N,)`` float in {0,1}; its mean is the rate.
    """
    p, top = probs.max(1)
    wrong = top != target
    if reference is not None:
        wrong &= top != reference
    return (wrong & (p >= threshold)).float()


def object_keep_mask(masks: torch.Tensor, dilate_px: int = 2) -> torch.Tensor:
    """Keep-mask removing each object: ``1 - dilate(mask, dilate_px)``, ``(N,1,H,W)`` float."""
    from kit.train import dilate

    return 1 - dilate(masks.float(), dilate_px)


def removal_quality(
    model, batch, removers: dict, *, dilate_px: int = 2, batch_size: int = BATCH_SIZE, seed: int = 0
):
    """Remove every object with each remover and measure plausibility (the issue-2 benchmark).

    Args:
        model: the world :class:`~kit.models.Classifier`.
        batch: a :class:`~kit.world.WorldBatch` (fresh ``test`` images).
        removers: display name -> remover object or name (``kit.removers``, resolved with
            ``model`` and the image size).
        dilate_px: hole = object mask dilated by this many pixels.
        batch_size: images per forward / remover call.
        seed: bootstrap seed.

    Returns:
        A pandas DataFrame, one row per remover: ``p_removed`` (mean probability of the removed
        object's class, with 95% bootstrap CI), ``l1`` and ``psnr`` inside the hole (vs the true
        background), ``fd_background`` (feature Fréchet distance to the true backgrounds),
        ``fd_real`` (to the original images, objects included), ``artifact_rate``. The first
        row, ``true background``, is the floor (the ``oracle`` remover on the batch's
        backgrounds).
    """
    import pandas as pd

    from kit.removers import get_remover

    keep = object_keep_mask(batch.masks, dilate_px)
    bg_feats = features(model, batch.backgrounds, batch_size)
    real_feats = features(model, batch.images, batch_size)
    bg_top = probabilities(model, batch.backgrounds, batch_size).argmax(1)
    rows = []
    size = tuple(batch.images.shape[-2:])
    conds = {"true background": "oracle", **removers}
    for name, spec in conds.items():
        remover = get_remover(spec, model=model, size=size, backgrounds=batch.backgrounds) \
            if isinstance(spec, str) else spec
        xt = torch.cat([
            remover.take(torch.arange(i, min(i + batch_size, len(batch))))(
                batch.images[i : i + batch_size], keep[i : i + batch_size])
            for i in range(0, len(batch), batch_size)
        ])
        probs = probabilities(model, xt, batch_size)
        p_rem = probs[torch.arange(len(batch)), batch.labels].numpy()
        err = fill_error(xt, batch.backgrounds, keep)
        art = artifact_rate(probs, batch.labels, bg_top).numpy()
        lo, hi = bootstrap_ci(p_rem, seed=seed)
        l1 = err.l1.numpy()
        l1_lo, l1_hi = bootstrap_ci(l1, seed=seed)
        rows.append({
            "remover": name,
            "p_removed": float(p_rem.mean()), "p_removed_lo": lo, "p_removed_hi": hi,
            "l1": float(l1.mean()), "l1_lo": l1_lo, "l1_hi": l1_hi,
            "psnr": float(err.psnr.mean()),
            "fd_background": frechet_distance(feats := features(model, xt, batch_size), bg_feats),
            "fd_real": frechet_distance(feats, real_feats),
            "artifact_rate": float(art.mean()),
        })
    return pd.DataFrame(rows).set_index("remover")


# ----------------------------------------------------------------------------------------------
# Counterfactual sets (methods.md §4.1): a method-independent mask bank and the masks a method uses
# ----------------------------------------------------------------------------------------------

FINAL_MASK = ("meaningful_perturbation", "mp2")
"""Attributors whose counterfactual is their final optimised mask ``1 - upsample(sal)`` (one per
image, so X and X-G each end at their own). The sampled methods' masks come from the method's own
generator, :data:`kit.attributors.MASK_SETS`. FIDO's are Bernoulli draws from its learned dropout
rates and are not rebuilt (its two objectives both inpaint)."""


def mask_bank(n_images: int, size, *, n_masks: int = 16, area: tuple[float, float] = (0.1, 0.5),
              seed: int = 0, start: int = 0) -> torch.Tensor:
    """The method-independent counterfactual masks: random axis-aligned rectangles (project choice).

    Image ``start + i`` gets ``n_masks`` rectangles whose area is uniform in ``area`` (fractions of
    the image) and whose aspect ratio is log-uniform in [1/2, 2] (clipped to the image), at
    uniform positions; its generator is seeded with ``(seed, start + i)`` so a mask does not
    depend on how many images are drawn.

    Returns:
        ``(n_images, n_masks, 1, H, W)`` float keep-masks (0 inside the rectangle).
    """
    n_images = checks.positive_int("n_images", n_images)
    n_masks = checks.positive_int("n_masks", n_masks)
    H, W = checks.size2("size", size)
    lo, hi = area
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"area must be (low, high) with 0 < low <= high <= 1, got {area!r}")
    out = torch.ones(n_images, n_masks, 1, H, W)
    for i in range(n_images):
        rng = np.random.default_rng([int(seed), int(start + i)])
        a = rng.uniform(lo, hi, n_masks) * H * W
        ratio = np.exp(rng.uniform(np.log(0.5), np.log(2.0), n_masks))
        h = np.clip(np.round(np.sqrt(a * ratio)), 1, H).astype(int)
        w = np.clip(np.round(a / h), 1, W).astype(int)
        y0 = (rng.uniform(size=n_masks) * (H - h + 1)).astype(int)
        x0 = (rng.uniform(size=n_masks) * (W - w + 1)).astype(int)
        for k in range(n_masks):
            out[i, k, 0, y0[k]: y0[k] + h[k], x0[k]: x0[k] + w[k]] = 0
    return out


class KeepMasks:
    """A fixed stack of per-image keep-masks as a mask set (:mod:`kit.engine`'s protocol).

    Args:
        keep: ``(N,K,1,H,W)`` keep-masks in [0,1]; image ``i``'s mask ``j`` is ``keep[i, j]``.
    """

    per_image = True
    composites = None

    def __init__(self, keep: torch.Tensor) -> None:
        if not isinstance(keep, torch.Tensor) or keep.ndim != 5 or keep.shape[2] != 1:
            shape = tuple(keep.shape) if isinstance(keep, torch.Tensor) else type(keep).__name__
            raise ValueError(f"keep must be a (N,K,1,H,W) tensor of keep-masks, got {shape}")
        self.keep = keep
        self.n = keep.shape[0]

    def __len__(self) -> int:
        return self.keep.shape[1]

    def build(self, index, *, image, device=None, dtype: torch.dtype = torch.float32):
        """Keep-masks ``(B,1,H,W)``: mask ``index[b]`` of image ``image[b]``."""
        index = torch.as_tensor(index, dtype=torch.long).reshape(-1).cpu()
        image = torch.as_tensor(image, dtype=torch.long).reshape(-1).cpu()
        return self.keep[image, index].to(device=device, dtype=dtype)


class Sampled:
    """K masks per image drawn from a method's mask set (:func:`sample`), itself a mask set.

    Mask ``j`` of image ``i`` is the parent's mask ``index[i, j]``; when the parent composites
    itself (SP-G's local crops, :meth:`kit.masks.SlidingWindows.composites`) so does this set, so
    the counterfactuals are exactly the ones the method scored.

    Args:
        masks: the method's mask set (``len``, ``build``, optional ``composites``).
        index: ``(N,K)`` long indices into ``masks``.
    """

    per_image = True

    def __init__(self, masks, index: torch.Tensor) -> None:
        if not isinstance(index, torch.Tensor) or index.ndim != 2:
            raise ValueError(f"index must be a (N,K) long tensor, got {index!r}")
        self.masks = masks
        self.index = index.long().cpu()
        self.n = index.shape[0]
        parent = getattr(masks, "composites", None)
        if parent is None:
            self.composites = None  # the caller composites the built keep-masks itself

    def __len__(self) -> int:
        return self.index.shape[1]

    def _parent(self, index, image) -> tuple[torch.Tensor, torch.Tensor]:
        image = torch.as_tensor(image, dtype=torch.long).reshape(-1)
        index = torch.as_tensor(index, dtype=torch.long, device=image.device).reshape(-1)
        return self.index[image.cpu(), index.cpu()].to(image.device), image

    def build(self, index, *, image, device=None, dtype: torch.dtype = torch.float32):
        """Keep-masks ``(B,1,H,W)``: the parent's masks ``self.index[image, index]``."""
        parent, image = self._parent(index, image)
        return self.masks.build(parent, image=image, device=device, dtype=dtype)

    def composites(self, remover, x: torch.Tensor, image: torch.Tensor,
                   index: torch.Tensor) -> torch.Tensor:
        """The parent's own composites ``(B,3,H,W)`` of its masks ``self.index[image, index]``."""
        parent, image = self._parent(index, image)
        return self.masks.composites(remover, x, image, parent)


def sample(masks, n: int, k: int, *, seed: int = 0) -> Sampled:
    """``k`` masks per image of a mask set, uniformly without replacement (seeded per image).

    Image ``i`` walks the masks in the order ``numpy.random.default_rng([seed, i]).permutation``
    and keeps the first ``k`` that remove at least one pixel (a keep value below 1), which skips
    LIME's unperturbed row 0 and KernelSHAP's full coalitions without knowing the method. If an
    image has fewer than ``k`` such masks, every image gets that smaller number.

    Args:
        masks: a mask set (:mod:`kit.engine`) for ``n`` images.
        n: number of images.
        k: masks per image.
        seed: seed of the per-image orders.

    Returns:
        :class:`Sampled` with ``min(k, removing masks of the poorest image)`` masks per image.

    Raises:
        ValueError: bad ``n``, ``k`` or ``seed``, or an image none of whose masks removes
            anything.
    """
    n, k = checks.positive_int("n", n), checks.positive_int("n_masks", k)
    seed = checks.seed("seed", seed)
    total = len(masks)
    picks = []
    for i in range(n):
        order = torch.from_numpy(np.random.default_rng([seed, i]).permutation(total))
        chosen, found = [], 0
        for start in range(0, total, k):
            idx = order[start : start + k]
            keep = masks.build(idx, image=torch.full_like(idx, i))
            idx = idx[keep.flatten(1).amin(1) < 1]
            chosen.append(idx)
            found += len(idx)
            if found >= k:
                break
        picks.append(torch.cat(chosen)[:k])
    width = min(len(p) for p in picks)
    if width == 0:
        poor = [i for i, p in enumerate(picks) if len(p) == 0]
        raise ValueError(f"masks: no mask removes any pixel of image(s) {poor}")
    return Sampled(masks, torch.stack([p[:width] for p in picks]))


def stack(masks, n: int, *, device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Every keep-mask of a mask set for ``n`` images, ``(N,K,1,H,W)`` (for plots and tests)."""
    k = len(masks)
    job = torch.arange(checks.positive_int("n", n) * k)
    keep = masks.build(job % k, image=job // k, device=device, dtype=dtype)
    return keep.reshape(n, k, *keep.shape[1:])


def method_masks(method: str, x: torch.Tensor, *, overrides=None, n_masks: int = 64,
                 seed: int = 0, sal: torch.Tensor | None = None):
    """The counterfactual masks a method composites, to score *its* counterfactuals (§4.1).

    * SP, LIME, RISE, KernelSHAP (and their -G twins): the mask set the method itself builds,
      :data:`kit.attributors.MASK_SETS` called with the method's parameters (``METHODS[method]``
      plus ``overrides[method]``, e.g. a profile's stride, SP-G's ``local=True`` crops, LIME's
      and RISE's sample counts) and ``seed``, then :func:`sample` of ``n_masks`` per image. With
      ``local=True`` the counterfactuals are SP-G's local-crop composites.
    * MP and MP2: the final mask ``m = 1 - sal`` upsampled to the image by the method's own rule
      (MP nearest, MP2 bilinear: :func:`kit.maps.method_geometry`; one per image), which needs the
      method's map ``sal``; X and X-G therefore each end at their own
      mask.

    Args:
        method: a :data:`kit.attributors.METHODS` name.
        x: ``(N,3,H,W)`` images.
        overrides: ``{method: {param: value}}`` as given to :func:`kit.mapcache.compute_maps`
            (:func:`kit.attributors.budget` of the run's profile), so the masks are the maps'.
        n_masks: masks per image (ignored for MP / MP2).
        seed: the method's seed (its LIME / RISE / KernelSHAP draw) and the subsample's.
        sal: ``(N,1,h,w)`` maps of ``method`` (MP and MP2 only).

    Returns:
        A mask set with ``len()`` masks per image, ``build(index, image=...)`` and, for SP-G's
        local crops, ``composites``: what :func:`counterfactual_table` takes.
    """
    from kit.attributors import MASK_SETS, METHODS
    from kit.maps import method_geometry, to_pixels

    if method not in METHODS:
        raise ValueError(f"method: unknown {method!r}; valid names: {', '.join(METHODS)}")
    checks.images("x", x)
    family = METHODS[method].attributor
    if family in MASK_SETS:
        params = {**METHODS[method].params, **dict((overrides or {}).get(method) or {}),
                  "seed": seed}
        return sample(MASK_SETS[family](x, **params), x.shape[0], n_masks, seed=seed)
    if family not in FINAL_MASK:
        supported = [k for k, m in METHODS.items() if m.attributor in (*MASK_SETS, *FINAL_MASK)]
        raise ValueError(f"method: {method!r} ({family}) has no rebuildable counterfactual "
                         f"masks; supported: {', '.join(supported)}")
    n, (H, W) = x.shape[0], x.shape[-2:]
    if sal is None or sal.shape[0] != n or sal.ndim != 4:
        raise ValueError(f"sal: {method} needs its (N,1,h,w) maps with N={n}, got "
                         f"{None if sal is None else tuple(sal.shape)}")
    # the mask the method composited: its grid upsampled by the method's own rule (MP nearest,
    # MP2 bilinear), kit.maps' geometry of the method
    g = method_geometry(method, (H, W), (overrides or {}).get(method))
    keep = (1 - to_pixels(sal.float(), (H, W), g)).clamp(0, 1)
    return KeepMasks(keep.unsqueeze(1))


def _mask_set(name: str, keep, n: int):
    """``keeps[name]`` as a mask set for ``n`` images (tensors wrapped in :class:`KeepMasks`)."""
    if isinstance(keep, torch.Tensor):
        if keep.ndim != 5 or keep.shape[0] != n or keep.shape[2] != 1:
            raise ValueError(f"keeps[{name!r}]: expected (N={n},K,1,H,W), got {tuple(keep.shape)}")
        return KeepMasks(keep)
    if not (hasattr(keep, "build") and hasattr(keep, "__len__")):
        raise TypeError(f"keeps[{name!r}]: expected a (N,K,1,H,W) tensor or a mask set "
                        f"(len() and build()), got {type(keep).__name__}")
    if getattr(keep, "n", n) != n:
        raise ValueError(f"keeps[{name!r}]: a mask set for {keep.n} images, the batch has {n}")
    return keep


def _fd_with_ci(feats: np.ndarray, ref: np.ndarray, n: int, *, paired: bool, n_boot: int,
                seed: int) -> tuple[float, float, float]:
    """FD of ``feats`` (N*K rows, grouped by image) to ``ref``, with a bias-shifted percentile
    bootstrap CI over images.

    ``paired``: ``ref`` is grouped by the same N images (resampled with the same indices);
    otherwise the reference rows are resampled independently.
    """
    fd = frechet_distance(feats, ref)
    if n_boot <= 0 or n < 3:
        return fd, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    fa = feats.reshape(n, -1, feats.shape[1])
    fb = ref.reshape(n, -1, ref.shape[1]) if paired else ref
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        a = fa[idx].reshape(-1, feats.shape[1])
        b = fb[idx].reshape(-1, ref.shape[1]) if paired else fb[rng.integers(0, len(fb), len(fb))]
        boots.append(frechet_distance(a, b))
    # FD is biased upwards at finite size, and resampling with replacement (duplicate images)
    # inflates it further, so plain percentiles can miss the estimate; shift them by the
    # bootstrap bias estimate (mean(boot) - fd), clipped at 0.
    bias = float(np.mean(boots)) - fd
    lo, hi = np.percentile(boots, [2.5, 97.5]) - bias
    return fd, float(max(lo, 0.0)), float(max(hi, 0.0))


def counterfactual_table(model, batch, keeps, removers: dict, *, reference_images=None,
                         batch_size: int = BATCH_SIZE, n_boot: int = 200, seed: int = 0):
    """Plausibility of every remover's counterfactuals on the same keep-masks.

    Args:
        model: the world :class:`~kit.models.Classifier`.
        batch: a :class:`~kit.world.WorldBatch` of N images (its ``backgrounds`` are the truth).
        keeps: the masks shared by every remover — an ``(N,K,1,H,W)`` keep-mask tensor or a mask
            set (:func:`method_masks`) — or a dict ``{name: masks}`` giving each remover its own
            (the method-specific sets). A mask set that composites itself (SP-G's local crops)
            makes the remover's counterfactuals its composites.
        removers: display name -> remover object or name, resolved by
            :func:`kit.removers.get_remover` with ``model``, the image size and the batch's
            backgrounds (so ``"oracle"`` composites the true background: the floor of every
            measure).
        reference_images: real images for the ``fd_real`` reference (default ``batch.images``;
            pass as many fresh images as there are counterfactuals so covariances are full rank).
        batch_size: composites per remover call / forward pass.
        n_boot: bootstrap resamples of the Fréchet distances (over images).
        seed: bootstrap seed.

    Returns:
        ``(per_image, fd)``: ``per_image`` is a long table (``image, method, metric, value``; the
        removers' display names in ``method``) with, per image averaged over its K masks, ``l1``
        and ``psnr`` of the fill against the true background inside the removed region
        (:func:`fill_error`; PSNR from the mean MSE over the masks; NaN for a fill that is exact
        by construction, the oracle) and ``artifact_rate`` (top-1 is neither the target nor the
        top-1 of the true-background counterfactual on the same mask, with probability >= 0.5).
        ``fd`` is in the format of :func:`kit.report.summarize` (``method, metric, mean,
        ci_low, ci_high, n, higher_is_better``): per remover ``fd_real`` (vs real images) and
        ``fd_background`` (vs the true-background counterfactuals on the same masks), each with a
        95% bootstrap CI over images (``n`` = images; each contributes its K counterfactuals).
    """
    import pandas as pd

    from kit.removers import get_remover

    x, bg, labels = batch.images, batch.backgrounds, batch.labels
    n, size = x.shape[0], tuple(x.shape[-2:])
    checks.positive_int("batch_size", batch_size)
    oracle = get_remover("oracle", backgrounds=bg)  # the true counterfactuals on any keep-mask
    ref = batch.images if reference_images is None else reference_images
    ref_feats = features(model, ref, batch_size).double().numpy()
    rows, fd_rows = [], []
    # the true-background counterfactuals' top-1 and features per chunk of (image, mask) jobs,
    # keyed by the chunk's jobs and mask contents: rungs of one method (SP, SP-G, SP-R, SP-O)
    # share their masks, and their oracle counterfactuals are scored once
    bg_cache: dict[tuple, tuple] = {}
    for name, spec in removers.items():
        given = keeps[name] if isinstance(keeps, dict) else keeps
        masks = _mask_set(name, given, n)
        rem = get_remover(spec, model=model, size=size, backgrounds=bg)
        k = len(masks)
        composites = getattr(masks, "composites", None)
        top, feats, bg_top, bg_feats, l1, mse = [], [], [], [], [], []
        # image-major (i, k) jobs in chunks of batch_size, as kit.engine.score_masks streams them
        for start in range(0, n * k, batch_size):
            job = torch.arange(start, min(start + batch_size, n * k))
            img, idx = job // k, job % k
            keep = masks.build(idx, image=img, device=x.device, dtype=x.dtype)
            key = (start, k, cache.digest(keep))  # dtype, shape and bytes
            if key not in bg_cache:
                xt_bg = oracle.take(img)(x[img], keep)
                p_bg, f_bg = probabilities_and_features(model, xt_bg, batch_size)
                bg_cache[key] = (p_bg.argmax(1), f_bg.double())
            bg_top.append(bg_cache[key][0])
            bg_feats.append(bg_cache[key][1])
            xt = (composites(rem, x, img, idx) if composites is not None
                  else rem.take(img)(x[img], keep))
            p_xt, f_xt = probabilities_and_features(model, xt, batch_size)  # one pass for both
            top.append(p_xt)
            feats.append(f_xt.double())
            err = fill_error(xt, bg[img], keep)
            l1.append(err.l1)
            mse.append(err.mse)
        ref_top, ref_bg_feats = torch.cat(bg_top), torch.cat(bg_feats).numpy()
        probs, feats = torch.cat(top), torch.cat(feats).numpy()
        l1, mse = torch.cat(l1).reshape(n, k), torch.cat(mse).reshape(n, k)
        valid = ~l1.isnan()  # masks that removed something
        count = valid.sum(1).clamp_min(1)
        l1_img = l1.nan_to_num(0.0).sum(1) / count
        mse_img = mse.nan_to_num(0.0).sum(1) / count
        psnr_img = torch.where(mse_img > 0, 10 * torch.log10(1 / mse_img),
                               torch.full_like(mse_img, float("nan")))
        art = artifact_rate(probs, labels.repeat_interleave(k), ref_top).reshape(n, k).mean(1)
        for i in range(n):
            for metric, v in (("l1", l1_img[i]), ("psnr", psnr_img[i]),
                              ("artifact_rate", art[i])):
                rows.append({"image": i, "method": name, "metric": metric, "value": float(v)})
        fd_r = _fd_with_ci(feats, ref_feats, n, paired=False, n_boot=n_boot, seed=seed)
        fd_b = _fd_with_ci(feats, ref_bg_feats, n, paired=True, n_boot=n_boot, seed=seed)
        for metric, (v, lo, hi) in (("fd_real", fd_r), ("fd_background", fd_b)):
            fd_rows.append({"method": name, "metric": metric, "mean": v, "ci_low": lo,
                            "ci_high": hi, "n": n, "higher_is_better": False})
    return pd.DataFrame(rows), pd.DataFrame(fd_rows)
