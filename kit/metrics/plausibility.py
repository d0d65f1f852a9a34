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

from kit.metrics.stats import bootstrap_ci

HIGHER_IS_BETTER = {
    "fd_background": False,
    "fd_real": False,
    "l1": False,
    "psnr": True,
    "artifact_rate": False,
    "p_removed": False,
}


@torch.inference_mode()
def features(model, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Penultimate features ``(N,D)`` of pixel-space images, in batches."""
    return torch.cat([model.features(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


@torch.inference_mode()
def probabilities(model, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Softmax probabilities ``(N,C)`` of pixel-space images, in batches."""
    return torch.cat(
        [model(x[i : i + batch_size]).softmax(1) for i in range(0, len(x), batch_size)]
    )


def frechet_distance(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets.

    ``FD = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))``, in float64.

    Args:
        a: ``(N,D)`` features; b: ``(M,D)`` features. Use the same N for every compared
            condition: the estimate is biased at finite N.
    """
    from scipy import linalg

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"a and b must be (N,D) and (M,D) feature arrays, got {a.shape}, {b.shape}"
        )
    if min(len(a), len(b)) < 2:
        raise ValueError(f"need at least 2 samples per set, got {len(a)} and {len(b)}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s_a @ s_b)
    if not np.isfinite(covmean).all():  # singular product: regularise as pytorch-fid does
        eps = 1e-6 * np.eye(a.shape[1])
        covmean = linalg.sqrtm((s_a + eps) @ (s_b + eps))
    fd = np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(covmean.real)
    return float(max(fd, 0.0))


@dataclass(frozen=True)
class FillError:
    """Per-image fill error inside the removed region: ``l1 (N,)`` and ``psnr (N,)`` (dB)."""

    l1: torch.Tensor
    psnr: torch.Tensor


def fill_error(x_tilde: torch.Tensor, background: torch.Tensor, keep: torch.Tensor) -> FillError:
    """L1 and PSNR of counterfactuals against the true background, weighted by ``1 - keep``.

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
    return FillError(torch.where(denom > 0, l1, nan), torch.where(denom > 0, psnr, nan))


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
    model, batch, removers: dict, *, dilate_px: int = 2, batch_size: int = 256, seed: int = 0
):
    """Remove every object with each remover and measure plausibility (the issue-2 benchmark).

    Args:
        model: the world :class:`~kit.models.Classifier`.
        batch: a :class:`~kit.world.WorldBatch` (fresh ``test`` images).
        removers: display name -> remover (``kit.removers``).
        dilate_px: hole = object mask dilated by this many pixels.
        batch_size: images per forward / remover call.
        seed: bootstrap seed.

    Returns:
        A pandas DataFrame, one row per remover: ``p_removed`` (mean probability of the removed
        object's class, with 95% bootstrap CI), ``l1`` and ``psnr`` inside the hole (vs the true
        background), ``fd_background`` (feature Fréchet distance to the true backgrounds),
        ``fd_real`` (to the original images, objects included), ``artifact_rate``. The first
        row, ``true background``, is the floor.
    """
    import pandas as pd

    keep = object_keep_mask(batch.masks, dilate_px)
    bg_feats = features(model, batch.backgrounds, batch_size)
    real_feats = features(model, batch.images, batch_size)
    bg_top = probabilities(model, batch.backgrounds, batch_size).argmax(1)
    rows = []
    conds = {"true background": None, **removers}
    for name, remover in conds.items():
        if remover is None:
            xt = torch.where(keep.bool(), batch.images, batch.backgrounds)
        else:
            xt = torch.cat([
                remover(batch.images[i : i + batch_size], keep[i : i + batch_size])
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

MASK_FAMILIES = ("sliding_patch", "lime", "rise", "meaningful_perturbation", "mp2")
"""Attributors whose counterfactuals :func:`method_keep_masks` can rebuild. FIDO's are Bernoulli
draws from its learned dropout rates and are not rebuilt (its two objectives both inpaint)."""


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
    from kit.masks import _pos_int, _size2

    n_images, n_masks = _pos_int("n_images", n_images), _pos_int("n_masks", n_masks)
    H, W = _size2("size", size)
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


def method_keep_masks(method: str, x: torch.Tensor, *, n_masks: int = 64, seed: int = 0,
                      sal: torch.Tensor | None = None) -> torch.Tensor:
    """The keep-masks a method composites, to score *its* counterfactuals (methods.md §4.1).

    * sliding patch: a seeded subsample of ``n_masks`` of its window positions (default window
      and stride for the image size);
    * LIME: its own perturbations — SLIC superpixels (LIME defaults) switched off by LIME's
      binary samples (rows 1.., the first row is the unperturbed image);
    * RISE: its first ``n_masks`` masks;
    * MP and MP2: the final mask ``m = 1 - sal`` upsampled to the image (one per image), which
      needs the method's map ``sal``; X and X-G therefore each end at their own mask.

    Args:
        method: a :data:`kit.attributors.METHODS` name.
        x: ``(N,3,H,W)`` images.
        n_masks: masks per image (ignored for MP / MP2).
        seed: seed of the subsample / LIME samples / RISE masks.
        sal: ``(N,1,h,w)`` maps of ``method`` (MP and MP2 only).

    Returns:
        ``(N,K,1,H,W)`` keep-masks in [0,1].
    """
    from kit.attributors import METHODS
    from kit.attributors.lime import lime_samples
    from kit.defaults import resolve
    from kit.masks import grid_shape, rise_masks, superpixels, upsample, window_masks

    if method not in METHODS:
        raise ValueError(f"method: unknown {method!r}; valid names: {', '.join(METHODS)}")
    family = METHODS[method].attributor
    if family not in MASK_FAMILIES:
        supported = [k for k, m in METHODS.items() if m.attributor in MASK_FAMILIES]
        raise ValueError(f"method: {method!r} ({family}) has no rebuildable counterfactual "
                         f"masks; supported: {', '.join(supported)}")
    n, (H, W) = x.shape[0], x.shape[-2:]
    if family == "sliding_patch":
        window, stride = resolve("sp_window", H), resolve("sp_stride", H)
        n_pos = int(np.prod(grid_shape((H, W), window, stride)))
        out = []
        for i in range(n):
            rng = np.random.default_rng([int(seed), i])
            idx = torch.from_numpy(rng.choice(n_pos, size=min(n_masks, n_pos), replace=False))
            out.append(window_masks((H, W), window, stride, idx))
        return torch.stack(out)
    if family == "lime":
        seg = superpixels(x)
        out = []
        for i in range(n):
            k = int(seg[i].max()) + 1
            z = torch.from_numpy(lime_samples(n_masks + 1, k, seed)[1:]).float()
            out.append(z[:, seg[i]].unsqueeze(1))
        return torch.stack(out)
    if family == "rise":
        return rise_masks(n_masks, (H, W), seed=seed).unsqueeze(0).expand(n, -1, -1, -1, -1)
    if sal is None or sal.shape[0] != n or sal.ndim != 4:
        raise ValueError(f"sal: {method} needs its (N,1,h,w) maps with N={n}, got "
                         f"{None if sal is None else tuple(sal.shape)}")
    keep = (1 - upsample(sal.float(), (H, W))).clamp(0, 1)
    return keep.unsqueeze(1)


def _composites(remover, x, keep, batch_size):
    """R(x_i, keep_ik) for all (i,k), flattened to ``(N*K,3,H,W)`` in row-major (i,k) order."""
    n, k = keep.shape[:2]
    xs = x.repeat_interleave(k, 0)
    ks = keep.reshape(n * k, *keep.shape[2:])
    return torch.cat([remover(xs[s:s + batch_size], ks[s:s + batch_size])
                      for s in range(0, n * k, batch_size)])


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
                         batch_size: int = 256, n_boot: int = 200, seed: int = 0):
    """Plausibility of every remover's counterfactuals on the same keep-masks.

    Args:
        model: the world :class:`~kit.models.Classifier`.
        batch: a :class:`~kit.world.WorldBatch` of N images (its ``backgrounds`` are the truth).
        keeps: ``(N,K,1,H,W)`` keep-masks shared by every remover, or a dict ``{name: masks}``
            giving each remover its own masks (the method-specific sets).
        removers: display name -> remover object or name (built with ``model``); the name
            ``"oracle"`` composites the true background (the floor of every measure).
        reference_images: real images for the ``fd_real`` reference (default ``batch.images``;
            pass as many fresh images as there are counterfactuals so covariances are full rank).
        batch_size: composites per remover call / forward pass.
        n_boot: bootstrap resamples of the Fréchet distances (over images).
        seed: bootstrap seed.

    Returns:
        ``(per_image, fd)``: ``per_image`` is a long table (``image, method, metric, value``; the
        removers' display names in ``method``) with, per image averaged over its K masks, ``l1``
        and ``psnr`` of the fill against the true background inside the removed region (PSNR from
        the mean MSE over the masks; NaN for a fill that is exact by construction, the oracle)
        and ``artifact_rate`` (top-1 is neither the target nor the top-1 of the true-background
        counterfactual on the same mask, with probability >= 0.5). ``fd`` is in the format of
        :func:`kit.report.summarize` (``method, metric, mean, ci_low, ci_high, n,
        higher_is_better``): per remover ``fd_real`` (vs real images) and ``fd_background`` (vs
        the true-background counterfactuals on the same masks), each with a 95% bootstrap CI over
        images (``n`` = images; each contributes its K counterfactuals).
    """
    import pandas as pd

    from kit.removers import get_remover

    x, bg, labels = batch.images, batch.backgrounds, batch.labels
    n = x.shape[0]
    ref = batch.images if reference_images is None else reference_images
    ref_feats = features(model, ref, batch_size).double().numpy()
    rows, fd_rows = [], []
    bg_cache: dict[int, tuple] = {}
    for name, spec in removers.items():
        keep = keeps[name] if isinstance(keeps, dict) else keeps
        if keep.ndim != 5 or keep.shape[0] != n or keep.shape[2] != 1:
            raise ValueError(f"keeps[{name!r}]: expected (N={n},K,1,H,W), got {tuple(keep.shape)}")
        k = keep.shape[1]
        flat_keep = keep.reshape(n * k, *keep.shape[2:])
        if id(keep) not in bg_cache:  # the true counterfactuals on these masks
            xt_bg = x.repeat_interleave(k, 0) * flat_keep + bg.repeat_interleave(k, 0) * (
                1 - flat_keep)
            bg_cache[id(keep)] = (probabilities(model, xt_bg, batch_size).argmax(1),
                                  features(model, xt_bg, batch_size).double().numpy())
        bg_top, bg_feats = bg_cache[id(keep)]
        if isinstance(spec, str) and spec == "oracle":
            # the true counterfactual itself (TrueBackground needs backgrounds aligned with x)
            xt = (x.repeat_interleave(k, 0) * flat_keep
                  + bg.repeat_interleave(k, 0) * (1 - flat_keep))
        else:
            rem = get_remover(spec, model=model) if isinstance(spec, str) else spec
            xt = _composites(rem, x, keep, batch_size)
        probs = probabilities(model, xt, batch_size)
        feats = features(model, xt, batch_size).double().numpy()
        w = (1 - flat_keep).expand_as(xt)
        denom = w.sum((1, 2, 3)).reshape(n, k)
        diff = xt - bg.repeat_interleave(k, 0)
        l1 = ((w * diff.abs()).sum((1, 2, 3)).reshape(n, k) / denom.clamp_min(1e-12))
        mse = ((w * diff**2).sum((1, 2, 3)).reshape(n, k) / denom.clamp_min(1e-12))
        valid = denom > 0
        l1_img = (l1 * valid).sum(1) / valid.sum(1).clamp_min(1)
        mse_img = (mse * valid).sum(1) / valid.sum(1).clamp_min(1)
        psnr_img = torch.where(mse_img > 0, 10 * torch.log10(1 / mse_img),
                               torch.full_like(mse_img, float("nan")))
        art = artifact_rate(probs, labels.repeat_interleave(k), bg_top).reshape(n, k).mean(1)
        for i in range(n):
            for metric, v in (("l1", l1_img[i]), ("psnr", psnr_img[i]),
                              ("artifact_rate", art[i])):
                rows.append({"image": i, "method": name, "metric": metric, "value": float(v)})
        fd_r = _fd_with_ci(feats, ref_feats, n, paired=False, n_boot=n_boot, seed=seed)
        fd_b = _fd_with_ci(feats, bg_feats, n, paired=True, n_boot=n_boot, seed=seed)
        for metric, (v, lo, hi) in (("fd_real", fd_r), ("fd_background", fd_b)):
            fd_rows.append({"method": name, "metric": metric, "mean": v, "ci_low": lo,
                            "ci_high": hi, "n": n, "higher_is_better": False})
    return pd.DataFrame(rows), pd.DataFrame(fd_rows)
