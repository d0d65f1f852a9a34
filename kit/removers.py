"""Removers: the one way kit removes pixels (methods.md §1.1, §2; style.md §4).

Every remover ``R`` computes ``R(x, keep) = x * keep + F(x, keep) * (1 - keep)`` with a fill ``F``:

============  ===================================================================  =============
name          fill F                                                               differentiable
============  ===================================================================  =============
``gray``      the classifier's training mean colour (0 after normalisation)         yes
``blur``      Gaussian blur of x (``sigma``; 3 px at 64×64, 10 px at 224×224)      yes
``insertion_blur``  RISE's insertion substrate: blur with ``klen=11, sigma=5``         yes
``noise``     one uniform colour + N(0, std²) per pixel, clamped, seeded            yes
``telea``     OpenCV's Telea fast-marching inpainting of the hole                   no
``ns``        OpenCV's Navier-Stokes inpainting of the hole                         no
``noisy_linear``  ROAD's noisy linear imputation: each removed pixel the weighted mean   no
              of its 8 neighbours (one sparse linear system), plus N(0, 0.01²) noise
``inpaint``   a learned inpainter (world model, LaMa, any TorchScript file)         no
``inpaint_removal``  the world *removal* inpainter (``"world-removal"``: trained to   no
              paint the true background, object included): the X-R rung
``oracle``    the true background (world only: the scene rendered without object)  yes
``blend``     ``lam * true background + (1 - lam) * inpaint's completion fill``     only at lam 1
              (the fill continuum, :mod:`kit.studies.continuum`; world only)
``precomputed``  a fill computed elsewhere (e.g. a blur of the full-resolution photo)  yes
``cached``    another remover's fills, memoised in a bounded LRU store             as wrapped
============  ===================================================================  =============

Shapes: ``x`` is ``(N,3,H,W)`` in [0,1]; ``keep`` is ``(M,1,H,W)`` in [0,1] (1 = keep) with
``N == M``, ``N == 1`` (one image against M masks) or ``M == 1``; the result is
``(max(N,M),3,H,W)`` with x's dtype and device, in [0,1].

The method ladder (:func:`kit.attributors.methods.ladder`) uses four of them per perturbation
method: X (``gray``/``blur``), X-G (``inpaint``, completion), X-R (``inpaint_removal``) and X-O
(``oracle``). Removers built from the batch's true backgrounds (``oracle``, ``blend``) set
``needs_backgrounds``; :func:`get_remover` then needs ``backgrounds=``.

Hole rule of the non-differentiable fills (telea, ns, inpaint, inpaint_removal, blend,
noisy_linear): a pixel is a hole where ``keep < tau``; ``threshold="gam"`` uses GAM's
``tau = max(0.5, (max keep + min keep) / 2)`` over the whole batch of masks, ``"per_mask"`` the
same per mask, a float a fixed tau (``noisy_linear`` defaults to the fixed 0.5: ROAD's masks are
binary). The composite still uses the soft ``keep``.

Usage::

    from kit.removers import get_remover
    r = get_remover("inpaint")               # the world inpainter, loaded on first use
    x_tilde = r(x, keep)                     # (M,3,H,W)
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from kit import passes
from kit.checks import images as _check_images
from kit.engine import BATCH_SIZE
from kit.models import Classifier, Inpainter


def _check_keep(keep: torch.Tensor, x: torch.Tensor) -> None:
    if not isinstance(keep, torch.Tensor):
        raise TypeError(f"keep must be a torch.Tensor, got {type(keep).__name__}")
    h, w = x.shape[-2:]
    if keep.dim() != 4 or keep.shape[1] != 1 or tuple(keep.shape[-2:]) != (h, w):
        raise ValueError(f"keep must have shape (M,1,{h},{w}) to match x, got {tuple(keep.shape)}")
    n, m = x.shape[0], keep.shape[0]
    if not (n == m or n == 1 or m == 1):
        raise ValueError(
            f"keep's batch size {m} does not broadcast against x's {n}: "
            "expected equal sizes, or one of them 1"
        )
    if torch.isnan(keep).any():
        raise ValueError("keep contains NaN values")
    lo, hi = float(keep.min()), float(keep.max())
    if lo < 0 or hi > 1:
        raise ValueError(f"keep must be in [0,1] (1 = keep), got values in [{lo:.3g}, {hi:.3g}]")


def composite(x: torch.Tensor, keep: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """``x * keep + fill * (1 - keep)``, broadcasting over the batch; the only compositing code."""
    return x * keep + fill * (1 - keep)


def hole_mask(keep: torch.Tensor, threshold: str | float = "gam") -> torch.Tensor:
    """Binary hole mask (1 = fill) from a soft keep-mask, by the reference threshold rule.

    Args:
        keep: ``(M,1,H,W)`` in [0,1].
        threshold: ``"gam"`` (tau over the whole batch), ``"per_mask"`` (tau per mask) or a float.

    Returns:
        ``(M,1,H,W)`` float in {0,1}, 1 where ``keep < tau``.
    """
    if threshold == "gam":
        tau = max(0.5, 0.5 * float(keep.max() + keep.min()))
    elif threshold == "per_mask":
        flat = keep.flatten(1)
        tau = (0.5 * (flat.amax(1) + flat.amin(1))).clamp_min(0.5).view(-1, 1, 1, 1)
    elif isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
        tau = float(threshold)
    else:
        raise ValueError(f"threshold must be 'gam', 'per_mask' or a float, got {threshold!r}")
    return (keep < tau).to(keep.dtype)


@dataclass(frozen=True)
class Remover:
    """Base class: validates inputs, broadcasts, and composites through :func:`composite`.

    Subclasses set ``name`` and ``differentiable`` and implement :meth:`fill`, which receives
    ``x`` and ``keep`` already broadcast to the same batch size.
    """

    name: ClassVar[str] = ""
    differentiable: ClassVar[bool] = True
    # True for fills built from the batch's true backgrounds (the oracle): callers that resolve
    # removers by name (kit.mapcache) must then pass ``backgrounds=`` to :func:`get_remover`.
    needs_backgrounds: ClassVar[bool] = False

    def fill(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """The filler ``F(x, keep)``: ``(M,3,H,W)`` or broadcastable to it."""
        raise NotImplementedError  # abstract: each remover defines its fill

    def take(self, index) -> Remover:
        """This remover restricted to images ``index`` of the batch it was built for.

        Removers without per-image data return themselves; :class:`Precomputed` (and the oracle)
        slice their fills along with the images, so batching code never special-cases them.
        """
        return self

    def __call__(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Remove the pixels where ``keep`` is 0.

        Args:
            x: ``(N,3,H,W)`` float images in [0,1].
            keep: ``(M,1,H,W)`` keep-mask in [0,1]; N == M, N == 1 or M == 1.

        Returns:
            ``(max(N,M),3,H,W)`` composites, same dtype and device as ``x``.
        """
        _check_images("x", x)
        _check_keep(keep, x)
        keep = keep.to(dtype=x.dtype, device=x.device)
        b = max(x.shape[0], keep.shape[0])
        xb = x.expand(b, -1, -1, -1)
        kb = keep.expand(b, -1, -1, -1)
        f = self.fill(xb, kb).to(dtype=x.dtype, device=x.device)
        return composite(xb, kb, f).clamp(0, 1)


_WORLD_MEAN = None


def world_mean() -> tuple[float, float, float]:
    """Mean colour of the world classifier's training data, read once from its checkpoint."""
    global _WORLD_MEAN
    if _WORLD_MEAN is None:
        from kit.models import WORLD_CLASSIFIER_PATH, load_state

        ckpt = load_state(WORLD_CLASSIFIER_PATH, "world classifier", "Retrain with kit.train.")
        _WORLD_MEAN = tuple(float(c) for c in ckpt["mean"])
    return _WORLD_MEAN


@dataclass(frozen=True)
class Gray(Remover):
    """Constant fill with the classifier's mean colour.

    Args:
        color: RGB in [0,1]; ``None`` = the world classifier's training mean. For another
            classifier use ``get_remover("gray", model=clf)`` (ImageNet models: the ImageNet mean).
    """

    color: tuple[float, float, float] | None = None
    name: ClassVar[str] = "gray"

    def __post_init__(self):
        if self.color is not None:
            c = tuple(float(v) for v in self.color)
            if len(c) != 3 or not all(0 <= v <= 1 for v in c):
                raise ValueError(f"color must be 3 values in [0,1], got {self.color!r}")
            object.__setattr__(self, "color", c)

    def fill(self, x, keep):
        c = self.color if self.color is not None else world_mean()
        return torch.tensor(c, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)


@dataclass(frozen=True)
class Blur(Remover):
    """Gaussian blur of the image (reflect padding); kernel size ``2*ceil(3*sigma)+1``.

    Args:
        sigma: standard deviation in pixels (methods.md: 3 at 64×64, 10 at 224×224).
    """

    sigma: float = 3.0
    name: ClassVar[str] = "blur"

    def __post_init__(self):
        if not (isinstance(self.sigma, (int, float)) and self.sigma > 0):
            raise ValueError(f"sigma must be a positive number, got {self.sigma!r}")

    def fill(self, x, keep):
        from torchvision.transforms.v2.functional import gaussian_blur

        k = 2 * math.ceil(3 * self.sigma) + 1
        # reflect padding needs the kernel radius below the image size: cap it there
        k = min(k, 2 * (min(x.shape[-2:]) - 1) - 1)
        return gaussian_blur(x, [k, k], [float(self.sigma)] * 2)


@dataclass(frozen=True)
class InsertionBlur(Remover):
    """RISE's insertion substrate: a Gaussian blur of ``x`` with a fixed kernel size.

    RISE blurs with ``klen=11, sigma=5`` (``evaluation.py``); kit's :class:`~kit.removers.Blur`
    derives its kernel from sigma (``2*ceil(3*sigma)+1`` = 31 for sigma 5), which would blur far
    more, so the reference kernel gets its own remover. Reflect padding, like ``Blur``.

    Args:
        sigma: Gaussian standard deviation in pixels.
        klen: odd kernel size in pixels.
    """

    sigma: float = 5.0
    klen: int = 11
    name: ClassVar[str] = "insertion_blur"

    def __post_init__(self):
        if not (isinstance(self.sigma, (int, float)) and self.sigma > 0):
            raise ValueError(f"sigma must be a positive number, got {self.sigma!r}")
        if isinstance(self.klen, bool) or not isinstance(self.klen, int) or self.klen < 1 \
                or self.klen % 2 == 0:
            raise ValueError(f"klen must be an odd positive integer, got {self.klen!r}")

    def fill(self, x, keep):
        from torchvision.transforms.v2.functional import gaussian_blur

        return gaussian_blur(x, [self.klen, self.klen], [float(self.sigma)] * 2)


@dataclass(frozen=True)
class Noise(Remover):
    """One uniform random colour plus N(0, std²) pixel noise, clamped to [0,1] (FIDO's infiller).

    The noise field depends only on ``(seed, H, W)``: identical for every image and every mask
    of a call, so a batch gives the same result as its images one at a time.

    Args:
        std: per-pixel noise standard deviation.
        seed: seed of the private generator.
    """

    std: float = 0.2
    seed: int = 0
    name: ClassVar[str] = "noise"

    def fill(self, x, keep):
        g = torch.Generator().manual_seed(int(self.seed))
        h, w = x.shape[-2:]
        color = torch.rand(1, 3, 1, 1, generator=g)
        eps = torch.randn(1, 3, h, w, generator=g) * self.std
        return (color + eps).clamp(0, 1).to(device=x.device, dtype=x.dtype)


_OPENCV_MIN_PER_THREAD = 8
"""Images per thread below which an OpenCV fill stays on one thread (a pool costs ~0.1 ms)."""


@dataclass(frozen=True)
class _OpenCV(Remover):
    radius: int = 3
    threshold: str | float = "gam"
    empty_color: tuple[float, float, float] | None = None  # None = the world mean (Gray())
    differentiable: ClassVar[bool] = False
    _flag: ClassVar[int] = 0

    def fill(self, x, keep):
        import cv2

        hole = hole_mask(keep, self.threshold)
        imgs = (x.detach().permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
        holes = hole[:, 0].cpu().numpy().astype(np.uint8)
        passes.record("opencv", len(imgs))

        def one(pair):
            return cv2.inpaint(np.ascontiguousarray(pair[0]), pair[1], self.radius, self._flag)

        # OpenCV inpaints one 8-bit image per call (no batched API) and releases the GIL while it
        # works: a batch is spread over torch's intra-op thread count. Each image's fill is
        # computed alone, so the result does not depend on the thread count.
        workers = min(torch.get_num_threads(), len(imgs) // _OPENCV_MIN_PER_THREAD)
        if workers > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers) as pool:
                out = np.stack(list(pool.map(one, zip(imgs, holes, strict=True))))
        else:
            out = np.stack([one(pair) for pair in zip(imgs, holes, strict=True)])
        fill = torch.from_numpy(out).permute(0, 3, 1, 2).to(x.device, x.dtype) / 255
        # With every pixel in the hole there is nothing to propagate, and cv2.inpaint returns the
        # input unchanged (the object stays: deletion curves jumped back to p ~ 1 at 100%). Such
        # images get the gray remover's constant fill instead.
        empty = hole.flatten(1).all(dim=1).to(fill.device)
        if empty.any():
            fill[empty] = Gray(self.empty_color).fill(x[empty], keep[empty]).expand_as(fill[empty])
        return fill


@dataclass(frozen=True)
class Telea(_OpenCV):
    """OpenCV fast-marching inpainting (Telea 2004) of the hole ``keep < tau``; an image with
    no pixel kept gets the gray remover's fill (there is nothing to propagate), in
    ``empty_color`` (:func:`get_remover` sets it to the explained classifier's mean)."""

    name: ClassVar[str] = "telea"
    _flag: ClassVar[int] = 1  # cv2.INPAINT_TELEA


@dataclass(frozen=True)
class NS(_OpenCV):
    """OpenCV Navier-Stokes inpainting (Bertalmio et al. 2001) of the hole ``keep < tau``; an
    image with no pixel kept gets the gray remover's fill."""

    name: ClassVar[str] = "ns"
    _flag: ClassVar[int] = 0  # cv2.INPAINT_NS


ROAD_WEIGHTS: tuple[tuple[tuple[int, int], float], ...] = (
    ((-1, -1), 1 / 12), ((-1, 0), 1 / 6), ((-1, 1), 1 / 12), ((0, -1), 1 / 6),
    ((0, 1), 1 / 6), ((1, -1), 1 / 12), ((1, 0), 1 / 6), ((1, 1), 1 / 12),
)
"""ROAD's neighbour weights, ``((row offset, column offset), weight)``: 1/6 for the 4 direct
neighbours and 1/12 for the 4 diagonal ones (they sum to 1)."""

NOISY_LINEAR_SOLVERS = ("banded", "sparse")
"""How :class:`NoisyLinear` solves its system: ``"banded"``, a LAPACK banded Cholesky per image
(the default: measured faster, ``benchmarks/road.py``), or ``"sparse"``, one
``scipy.sparse.linalg.spsolve`` of the block-diagonal system of every image of the call."""


def _linear_system(holes: np.ndarray, xs: np.ndarray):
    """ROAD's linear system over the removed pixels of a batch, built for all images at once.

    The unknowns are the removed pixels, numbered in raster order, image after image. Unknown
    ``i`` at pixel ``p`` has the equation ``d_i v_i - sum_j w_pj v_j = sum_k w_pk x_k``: ``j``
    runs over its removed and ``k`` over its kept neighbours among the 8 inside the image, ``w``
    are :data:`ROAD_WEIGHTS` and ``d_i`` the weight of its neighbours inside the image (1 away
    from the border), so ``v_i`` is the weighted mean of its neighbours, ROAD's
    ``NoisyLinearImputer`` system. The matrix is symmetric (a weight depends only on the
    offset's direction up to sign) and positive definite when every image has a kept pixel.

    Args:
        holes: ``(B,H,W)`` bool, True = removed.
        xs: ``(B,C,H,W)`` images (the boundary values; any float dtype, summed in float64).

    Returns:
        ``(img, pix, diag, rows, cols, weights, rhs)``: the unknowns' image and raster pixel
        index ``(n,)``; ``diag`` ``(n,)``; the strictly lower off-diagonal entries
        ``A[rows, cols] = -weights`` (``rows > cols``, both in the same image); ``rhs`` ``(n,C)``.
    """
    b, c, h, w = xs.shape
    hp, wp = h + 2, w + 2
    # a one-pixel frame of "outside" around every image: neighbours never need a bounds test
    state = np.zeros((b, hp, wp), dtype=np.int8)  # 0 outside, 1 kept, 2 removed
    state[:, 1:-1, 1:-1] = 1 + holes
    inside = np.zeros((hp, wp))
    inside[1:-1, 1:-1] = 1
    kept = np.zeros((b, c, hp, wp))
    kept[:, :, 1:-1, 1:-1] = np.where(holes[:, None], 0.0, xs)
    diag_map = np.zeros((h, w))  # weight of the neighbours inside the image, per pixel
    rhs_map = np.zeros((b, c, h, w))  # weighted sum of the kept neighbours, per pixel
    for (dr, dc), wt in ROAD_WEIGHTS:
        diag_map += wt * inside[1 + dr:1 + dr + h, 1 + dc:1 + dc + w]
        rhs_map += wt * kept[:, :, 1 + dr:1 + dr + h, 1 + dc:1 + dc + w]
    flat = state.reshape(-1)
    idx = np.flatnonzero(flat == 2)  # raster order, image after image
    n = idx.size
    vid = np.full(flat.size, -1, dtype=np.int64)
    vid[idx] = np.arange(n)
    img, q = idx // (hp * wp), idx % (hp * wp)
    pix = (q // wp - 1) * w + (q % wp - 1)
    rows, cols, weights = [], [], []
    for (dr, dc), wt in ROAD_WEIGHTS:
        if dr * wp + dc > 0:  # each symmetric pair once: the neighbour earlier in raster order
            continue
        nb = idx + dr * wp + dc
        removed = np.flatnonzero(flat[nb] == 2)
        rows.append(removed)
        cols.append(vid[nb[removed]])
        weights.append(np.full(removed.size, wt))
    rhs = rhs_map.reshape(b, c, h * w)[img, :, pix]
    diag = diag_map.reshape(-1)[pix]
    return (img, pix, diag, np.concatenate(rows), np.concatenate(cols), np.concatenate(weights),
            rhs)


def _solve_banded(starts, diag, rows, cols, weights, rhs) -> np.ndarray:
    """Per image, LAPACK's banded Cholesky (``dpbsv``) of its block of the system.

    In raster order a removed pixel's removed neighbours are at most ``W + 1`` unknowns away, so
    each image's block is a band matrix of half-bandwidth ``kd <= W + 1``, factorised exactly in
    ``O(n kd²)``.
    """
    from scipy.linalg import lapack

    out = np.empty_like(rhs)
    order = np.argsort(cols, kind="stable")
    rows, cols, weights = rows[order], cols[order], weights[order]
    bounds = np.searchsorted(cols, starts)
    for k in range(len(starts) - 1):
        s, e = int(starts[k]), int(starts[k + 1])
        if e == s:
            continue
        sel = slice(int(bounds[k]), int(bounds[k + 1]))
        dist = rows[sel] - cols[sel]
        kd = int(dist.max()) if dist.size else 0
        band = np.zeros((kd + 1, e - s))
        band[0] = diag[s:e]
        band[dist, cols[sel] - s] = -weights[sel]  # lower band storage: band[i-j, j] = A[i, j]
        _, v, info = lapack.dpbsv(band, rhs[s:e], lower=1)
        if info != 0:  # cannot happen for an image with a kept pixel; never return garbage
            raise RuntimeError(f"noisy_linear: banded Cholesky failed (LAPACK info {info})")
        out[s:e] = v
    return out


def _solve_sparse(diag, rows, cols, weights, rhs) -> np.ndarray:
    """One ``scipy.sparse.linalg.spsolve`` of the whole block-diagonal system (ROAD's solver)."""
    import scipy.sparse as sparse
    from scipy.sparse.linalg import spsolve

    n = diag.size
    i = np.concatenate([np.arange(n), rows, cols])
    j = np.concatenate([np.arange(n), cols, rows])
    a = sparse.csc_matrix((np.concatenate([diag, -weights, -weights]), (i, j)), shape=(n, n))
    return np.asarray(spsolve(a, rhs)).reshape(n, -1)


def _one_blas_thread():
    """Limit BLAS/LAPACK to one thread while solving: OpenBLAS's threaded banded Cholesky is
    hundreds of times slower than its serial one at ``kd > 64`` on a loaded machine (measured:
    1.4 s instead of 3.5 ms at 64×64), and the systems are far too small to gain from threads."""
    import contextlib

    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn
    except ImportError:  # pragma: no cover - scikit-learn is a pinned dependency
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _noise_generator(seed: int, image: np.ndarray, hole: np.ndarray) -> np.random.Generator:
    """A generator of its own for one (image, hole): seeded by ``seed`` and their bytes, so an
    image gets the same noise in a batch as alone, and other images or masks get other noise."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(image).tobytes())
    h.update(np.packbits(hole).tobytes())
    h.update(str(hole.shape).encode())
    return np.random.default_rng([int(seed), *np.frombuffer(h.digest(), dtype=np.uint32)])


@dataclass(frozen=True)
class NoisyLinear(Remover):
    """ROAD's noisy linear imputation (Rong et al., ICML 2022, ``NoisyLinearImputer``).

    Every removed pixel becomes the weighted mean of its 8 neighbours, 1/6 for the 4 direct and
    1/12 for the 4 diagonal ones (:data:`ROAD_WEIGHTS`; at the border, the mean of the neighbours
    inside the image). Over all removed pixels of an image this is one sparse linear system,

        ``d_p v_p - sum_{q removed} w_pq v_q = sum_{q kept} w_pq x_q``   for every removed ``p``,

    with the kept pixels as boundary values; it is solved exactly (float64, a direct
    factorisation, :data:`NOISY_LINEAR_SOLVERS`), all channels at once (one matrix, ``C``
    right-hand sides). Gaussian noise of standard deviation ``noise`` (ROAD's 0.01) is then added
    to the removed pixels only, each channel independently; the composite is clamped to [0,1]
    (ROAD does not clamp). The noise generator is private and seeded by ``seed`` and the bytes of
    the image and its hole: the same call gives the same bits, a batch gives what its images give
    one at a time, and the global generators are untouched.

    Hole rule: a pixel is removed where ``keep < threshold`` (0.5: ROAD's masks are binary;
    ``"gam"``/``"per_mask"`` as the other hole-based removers). An image with no pixel kept has
    nothing to interpolate from (the system is singular): it gets the gray fill
    (``empty_color``, :func:`get_remover` sets it to the explained classifier's mean) plus the
    noise. Not differentiable; runs on the CPU (the fill is moved to ``x``'s device).

    Args:
        noise: standard deviation of the noise added to the imputed pixels (0 = none).
        seed: seed of the noise.
        threshold: hole rule (see above).
        solver: ``"banded"`` (per image, LAPACK banded Cholesky) or ``"sparse"`` (one
            ``spsolve`` of the batch's block-diagonal system); equal up to rounding.
        empty_color: RGB fill of an image with no pixel kept (None: the world mean).
    """

    noise: float = 0.01
    seed: int = 0
    threshold: str | float = 0.5
    solver: str = "banded"
    empty_color: tuple[float, float, float] | None = None
    name: ClassVar[str] = "noisy_linear"
    differentiable: ClassVar[bool] = False

    def __post_init__(self):
        from kit import checks

        object.__setattr__(self, "noise", checks.number("noise", self.noise, minimum=0.0))
        object.__setattr__(self, "seed", checks.seed("seed", self.seed))
        checks.choice("solver", self.solver, NOISY_LINEAR_SOLVERS)
        t = self.threshold
        if t not in ("gam", "per_mask") and (isinstance(t, bool) or not isinstance(t, (int, float))
                                            or not 0 < t <= 1):
            raise ValueError(f"threshold must be 'gam', 'per_mask' or a number in (0, 1], "
                             f"got {t!r}")
        if self.empty_color is not None:
            Gray(self.empty_color)  # validates the colour

    def fill(self, x, keep):
        holes = hole_mask(keep, self.threshold)[:, 0].detach().cpu().numpy() > 0.5
        out = x.detach().cpu().to(torch.float64).contiguous().numpy().copy()
        bsz, c, h, w = out.shape
        counts = holes.reshape(bsz, -1).sum(axis=1)
        empty = counts == h * w
        solvable = holes & ~empty[:, None, None]
        flat = out.reshape(bsz, c, h * w)
        if solvable.any():
            img, pix, diag, rows, cols, weights, rhs = _linear_system(solvable, out)
            starts = np.concatenate([[0], np.cumsum(np.where(empty, 0, counts))])
            with _one_blas_thread():
                if self.solver == "banded":
                    v = _solve_banded(starts, diag, rows, cols, weights, rhs)
                else:
                    v = _solve_sparse(diag, rows, cols, weights, rhs)
        if self.noise > 0:  # drawn before the fill is written: seeded by the original image
            eps = [_noise_generator(self.seed, out[k], holes[k]).standard_normal(
                (c, int(counts[k]))) * self.noise if counts[k] else None for k in range(bsz)]
        if solvable.any():
            flat[img, :, pix] = v
        if empty.any():
            color = self.empty_color if self.empty_color is not None else world_mean()
            out[empty] = np.asarray(color, dtype=np.float64).reshape(1, c, 1, 1)
        if self.noise > 0:
            for k in range(bsz):
                if eps[k] is not None:
                    out[k][:, holes[k]] += eps[k]
        return torch.from_numpy(out).to(device=x.device, dtype=x.dtype)


@functools.lru_cache(maxsize=4)
def _cached_inpainter(name: str, path: str | None) -> Inpainter:
    from kit.models import load_inpainter

    return load_inpainter(name, path=path)


@dataclass(frozen=True)
class Inpaint(Remover):
    """Fill with a learned inpainter (the paper's generative removal, "-G" methods).

    Args:
        model: an :class:`~kit.models.Inpainter`, or a name for
            :func:`~kit.models.load_inpainter` (loaded on first use and reused).
        path: model file for ``"lama"``/``"torchscript"`` names.
        threshold: hole rule (see the module docstring).
        batch_size: masks per inpainter call.
    """

    model: str | Inpainter = "world"
    path: str | None = None
    threshold: str | float = "gam"
    batch_size: int = BATCH_SIZE
    name: ClassVar[str] = "inpaint"
    differentiable: ClassVar[bool] = False

    def inpainter(self) -> Inpainter:
        """The underlying inpainter (loaded lazily by name)."""
        if isinstance(self.model, str):
            return _cached_inpainter(self.model, None if self.path is None else str(self.path))
        return self.model

    def fill(self, x, keep):
        from kit.models import on_device

        inp = on_device(self.inpainter(), x.device)  # a copy on x's device; the shared one stays
        hole = hole_mask(keep, self.threshold)
        with torch.inference_mode():
            out = [
                inp(x[i : i + self.batch_size].detach(), 1 - hole[i : i + self.batch_size])
                for i in range(0, x.shape[0], self.batch_size)
            ]
        return torch.cat(out).clone()  # leave inference mode: a normal, detached tensor


@dataclass(frozen=True)
class InpaintRemoval(Inpaint):
    """The removal inpainter (the ladder's X-R rung): trained to paint the *true background*
    inside every hole, also over part of the object, where the completion inpainter
    (``inpaint``, X-G) paints the original image back. Same recipe and input contract as
    ``inpaint``, so X-G against X-R isolates the target the inpainter was trained on.

    Args: as :class:`Inpaint`; ``model`` defaults to ``"world-removal"``
    (``data/world_inpainter_removal.pt``, loaded on first use: until that file is shipped, the
    first fill raises the loader's error).
    """

    model: str | Inpainter = "world-removal"
    name: ClassVar[str] = "inpaint_removal"


@dataclass(frozen=True)
class Precomputed(Remover):
    """A fill computed elsewhere, ``(N or 1,3,H,W)``; e.g. MP's blur of the full-size photo."""

    fill_image: torch.Tensor = field(default=None, repr=False)
    name: ClassVar[str] = "precomputed"

    def __post_init__(self):
        _check_images("fill_image", self.fill_image)

    def take(self, index) -> Precomputed:
        """The fills of images ``index`` (a fill shared by the batch, ``(1,3,H,W)``, stays)."""
        if self.fill_image.shape[0] == 1:
            return self
        index = torch.as_tensor(index, dtype=torch.long, device=self.fill_image.device)
        return dataclasses.replace(self, fill_image=self.fill_image[index.reshape(-1)])

    def fill(self, x, keep):
        f = self.fill_image
        if f.shape[0] not in (1, x.shape[0]) or f.shape[-2:] != x.shape[-2:]:
            raise ValueError(
                f"fill_image has shape {tuple(f.shape)}, which does not match the composites "
                f"{tuple(x.shape)} (batch 1 or {x.shape[0]}, same H, W)"
            )
        return f


@dataclass(frozen=True)
class TrueBackground(Precomputed):
    """The oracle remover (world only): the scene rendered without its object.

    Args:
        fill_image: the batch's ``backgrounds`` (``WorldBatch.backgrounds``), aligned with ``x``.
    """

    name: ClassVar[str] = "oracle"
    needs_backgrounds: ClassVar[bool] = True


@dataclass(frozen=True)
class Blend(Precomputed):
    """The fill continuum ``F_lam = lam * true background + (1 - lam) * completion fill``.

    ``lam = 1`` is the oracle and ``lam = 0`` the ``inpaint`` remover, exactly (the other term
    is not computed, so ``lam = 1`` needs no inpainter): :mod:`kit.studies.continuum` sweeps
    ``lam`` to measure how good a fill must be for X-G to beat X. The completion fill follows
    ``inpaint``'s hole rule; only ``lam = 1`` is differentiable (the inpainted part is not), so
    mask optimisers treat every other ``lam`` as they treat ``inpaint``.

    Args:
        fill_image: ``(N,3,H,W)`` the batch's true backgrounds, aligned with ``x``.
        lam: weight of the true background, in [0, 1].
        model, path, threshold, batch_size: the completion inpainter, as in :class:`Inpaint`.
    """

    lam: float = 0.5
    model: str | Inpainter = "world"
    path: str | None = None
    threshold: str | float = "gam"
    batch_size: int = BATCH_SIZE
    name: ClassVar[str] = "blend"
    needs_backgrounds: ClassVar[bool] = True

    def __post_init__(self):
        from kit.checks import number

        super().__post_init__()
        object.__setattr__(self, "lam", number("lam", self.lam, minimum=0.0, maximum=1.0))
        # per instance: lam = 1 is the oracle, differentiable; any inpainted share is not
        object.__setattr__(self, "differentiable", self.lam == 1.0)

    def completion(self) -> Inpaint:
        """The ``inpaint`` remover whose fill is blended in."""
        return Inpaint(model=self.model, path=self.path, threshold=self.threshold,
                       batch_size=self.batch_size)

    def fill(self, x, keep):
        if self.lam == 1.0:
            return super().fill(x, keep)
        done = self.completion().fill(x, keep)
        if self.lam == 0.0:
            return done
        bg = super().fill(x, keep).to(device=done.device, dtype=done.dtype)
        return self.lam * bg + (1 - self.lam) * done


@dataclass(frozen=True, eq=False)
class Cached(Remover):
    """An explicit, bounded memo of another remover's fills (least recently used first out).

    Attribution methods and metrics often ask for the same (image, mask) fill: SP-G and a
    deletion curve with the inpainter share masks, and sweeps rerun the same method. Wrapping the
    remover once and passing the wrapper everywhere reuses those fills instead of re-inpainting.

    Entries are keyed by the bytes of the image and of the *hole* mask. For hole-based removers
    (``telea``, ``ns``, ``inpaint``) the soft ``keep`` is first binarised with the wrapped
    remover's own threshold rule over the whole call, exactly as the wrapped remover would, so a
    cached fill equals an uncached one; the composite still uses the soft ``keep``.

    Args:
        remover: the remover whose fills are cached (a name or an object, see :func:`get_remover`).
        max_items: the most fills kept (each ``3*H*W`` floats on the CPU).
    """

    remover: Remover | str = "inpaint"
    max_items: int = 4096
    name: ClassVar[str] = "cached"

    def __post_init__(self):
        inner = get_remover(self.remover)
        if isinstance(inner, Cached):
            raise ValueError("remover is already a Cached remover; wrap the original once")
        m = self.max_items
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ValueError(f"max_items must be an integer >= 1, got {self.max_items!r}")
        object.__setattr__(self, "remover", inner)
        object.__setattr__(self, "differentiable", inner.differentiable)
        object.__setattr__(self, "_store", collections.OrderedDict())
        object.__setattr__(self, "stats", {"hits": 0, "misses": 0})

    def clear(self) -> None:
        """Drop every cached fill and reset the hit/miss counters."""
        self._store.clear()
        self.stats.update(hits=0, misses=0)

    def __len__(self) -> int:
        return len(self._store)

    @staticmethod
    def _key(img: torch.Tensor, hole: torch.Tensor) -> bytes:
        h = hashlib.blake2b(digest_size=16)
        for t in (img, hole):
            a = t.detach().cpu().contiguous().numpy()
            h.update(str((a.dtype, a.shape)).encode())
            h.update(a.tobytes())
        return h.digest()

    def fill(self, x, keep):
        threshold = getattr(self.remover, "threshold", None)
        if threshold is not None:  # hole-based: the fill depends on (x, binary hole) only
            keep = 1 - hole_mask(keep, threshold)
        keys = [self._key(x[i], keep[i]) for i in range(x.shape[0])]
        first: dict[bytes, int] = {}
        for i, k in enumerate(keys):
            if k not in self._store:
                first.setdefault(k, i)  # a fill repeated inside one call is computed once
        new: dict[bytes, torch.Tensor] = {}
        if first:
            idx = list(first.values())
            fresh = self.remover.fill(x[idx], keep[idx]).expand(len(idx), 3, *x.shape[-2:])
            new = {keys[i]: fresh[j] for j, i in enumerate(idx)}
        out = []
        for k in keys:
            if k in new:
                out.append(new[k])
            else:
                self._store.move_to_end(k)
                out.append(self._store[k])
        for k, f in new.items():
            self._store[k] = f.detach().cpu().clone()
            while len(self._store) > self.max_items:
                self._store.popitem(last=False)
        self.stats["misses"] += len(new)
        self.stats["hits"] += x.shape[0] - len(new)
        return torch.stack([f.to(device=x.device, dtype=x.dtype) for f in out])

    def __repr__(self) -> str:
        return f"Cached({self.remover!r}, max_items={self.max_items}, size={len(self)})"


REMOVERS: dict[str, type[Remover]] = {
    "gray": Gray,
    "blur": Blur,
    "insertion_blur": InsertionBlur,
    "noise": Noise,
    "telea": Telea,
    "ns": NS,
    "noisy_linear": NoisyLinear,
    "inpaint": Inpaint,
    "inpaint_removal": InpaintRemoval,
    "oracle": TrueBackground,
    "blend": Blend,
    "precomputed": Precomputed,
    "cached": Cached,
}
"""Name -> remover class; ``get_remover`` builds one."""

REMOVER_FILES: dict[str, tuple[str, ...]] = {
    "inpaint": ("world_inpainter.pt",),
    "inpaint_removal": ("world_inpainter_removal.pt",),
    "blend": ("world_inpainter.pt",),
}
"""Remover name -> the shipped files under ``data/`` whose bytes determine its default fills
(cache keys hash them, so retraining an inpainter invalidates the maps made with it)."""


def remover_files(name: str) -> tuple[Path, ...]:
    """The shipped files (paths under ``data/``) that the named remover's default fills depend on.

    Args:
        name: a :data:`REMOVERS` key (or None for methods that remove nothing).

    Returns:
        A tuple of paths; empty for removers that depend on no shipped file.
    """
    from kit.paths import DATA_DIR

    return tuple(DATA_DIR / f for f in REMOVER_FILES.get(name, ()))


def get_remover(spec: str | Remover, *, model: Classifier | None = None, size=None,
                backgrounds: torch.Tensor | None = None, **kwargs) -> Remover:
    """The one remover resolver: build a remover from a name (or pass a built one through).

    Size- and model-aware defaults live here and nowhere else:

    * ``gray`` and the Telea/NS/noisy-linear empty-hole fallback take their colour from
      ``model.mean`` (the explained classifier's training mean: the world mean, or the ImageNet
      mean);
    * ``blur`` takes ``sigma`` from ``size`` (:func:`kit.defaults.resolve`: 3 px at 64x64, 10 px
      at 224x224) unless given;
    * ``oracle`` and ``blend`` (``needs_backgrounds``) are built from ``backgrounds``, the true
      backgrounds aligned with the images (world only); :meth:`Remover.take` slices them along
      with the images. Other removers ignore ``backgrounds``.

    Args:
        spec: a :data:`REMOVERS` key or a :class:`Remover`.
        model: the explained classifier.
        size: the image side (int) or ``(H, W)``; needed for size-aware defaults.
        backgrounds: ``(N,3,H,W)`` true backgrounds for ``oracle`` and ``blend``.
        **kwargs: the remover's fields (``sigma``, ``seed``, ``model``/``path`` for inpaint, ...).

    Raises:
        ValueError: unknown name (the message lists the valid ones), bad options, or ``oracle``
            or ``blend`` without ``backgrounds``.
    """
    if isinstance(spec, Remover):
        if kwargs:
            raise ValueError(f"options {sorted(kwargs)} given with an already-built remover {spec}")
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"remover must be a remover name or a kit.removers.Remover, "
                        f"got {type(spec).__name__}")
    if spec not in REMOVERS:
        raise ValueError(f"unknown remover {spec!r}; valid names: {', '.join(REMOVERS)}")
    cls = REMOVERS[spec]
    mean = getattr(model, "mean", None)
    if cls is Gray and mean is not None and kwargs.get("color") is None:
        kwargs["color"] = tuple(float(c) for c in mean)
    if issubclass(cls, (_OpenCV, NoisyLinear)) and mean is not None \
            and kwargs.get("empty_color") is None:
        kwargs["empty_color"] = tuple(float(c) for c in mean)
    if issubclass(cls, Blur) and "sigma" not in kwargs and size is not None:
        from kit.checks import size2
        from kit.defaults import resolve

        kwargs["sigma"] = float(resolve("blur_sigma", min(size2("size", size))))
    if cls.needs_backgrounds:
        if backgrounds is None and kwargs.get("fill_image") is None:
            raise ValueError(f"remover {spec!r} needs backgrounds= (the true backgrounds aligned "
                             "with the images, e.g. WorldBatch.backgrounds); it exists only for "
                             "the embedded world")
        if kwargs.get("fill_image") is None:
            kwargs["fill_image"] = backgrounds
    try:
        return cls(**kwargs)
    except TypeError as err:
        valid = [f for f in cls.__dataclass_fields__ if not f.startswith("_")]
        raise ValueError(
            f"bad options for remover {spec!r}: {err}; valid options: {valid}"
        ) from err
