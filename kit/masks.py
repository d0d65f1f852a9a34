"""Masks and the one resizing function (methods.md §1.2, §3.1, §3.2, §3.7; style.md §3).

* :func:`upsample` is the **only** way kit resizes a map: ``"bilinear"`` (project default,
  ``align_corners=False``), ``"nearest"`` (how GAM's MP applies its mask) and ``"coverage"`` for
  sliding-patch grids (each pixel gets the mean of the grid values of all patches covering it;
  equal to Captum ``Occlusion``'s output when ``(H - window)`` is divisible by ``stride``).
* :func:`sliding_windows` gives the keep-masks of the sliding patch (0 inside the patch),
  :func:`grid_shape` its number of positions, :func:`window_masks` any subset of them.
* :func:`superpixels` is LIME's SLIC segmentation, labels ``0..K-1``.
* :func:`rise_masks` are RISE's soft masks (seeded, private generator).

All masks are **keep-masks** (1 = keep the original pixel), float ``(K,1,H,W)``.

Usage::

    from kit.masks import upsample, sliding_windows, superpixels, rise_masks
    pix = upsample(sal, 64, mode="coverage", window=8, stride=2)   # (N,1,29,29) -> (N,1,64,64)
    keep = sliding_windows(64, window=8, stride=2)                 # (841,1,64,64)
    seg = superpixels(x, n_segments=50, compactness=30)            # (N,64,64) long
    m = rise_masks(4000, 64, s=7, p=0.5, seed=0)                   # (4000,1,64,64) in [0,1]
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from kit.checks import images as _check_images
from kit.checks import positive_int, size2

MODES = ("bilinear", "nearest", "coverage")


_size2 = size2  # the shared checks (kit.checks), under this module's historical names
_pos_int = positive_int


# ----------------------------------------------------------------------------------------------
# upsample
# ----------------------------------------------------------------------------------------------


def upsample(sal: torch.Tensor, size, mode: str = "bilinear", *, window: int | None = None,
             stride: int | None = None) -> torch.Tensor:
    """Resize maps ``(N,C,h,w)`` to ``size``: the one resizing function of kit.

    Args:
        sal: ``(N,C,h,w)`` float maps (typically C = 1).
        size: output ``H`` (square) or ``(H, W)``.
        mode: ``"bilinear"`` (``align_corners=False``), ``"nearest"``, or ``"coverage"`` for a
            sliding-patch grid: pixel u gets the mean of ``sal[r, c]`` over the patches
            (top-left ``(r*stride, c*stride)``, side ``window``) that cover u. Pixels of the
            bottom/right margin that no patch covers (when ``(H - window)`` is not a multiple of
            ``stride``) copy the nearest covered pixel.
        window, stride: patch geometry in pixels, required by (and only by) ``"coverage"``.

    Returns:
        ``(N,C,H,W)`` with ``sal``'s dtype and device.

    Raises:
        ValueError: bad mode or size; ``coverage`` without window/stride, with
            ``stride > window`` (gaps between patches), or with a grid that does not match
            ``size`` for this geometry (``h != (H - window) // stride + 1``).
    """
    if not isinstance(sal, torch.Tensor) or sal.dim() != 4:
        shape = tuple(sal.shape) if isinstance(sal, torch.Tensor) else type(sal).__name__
        raise ValueError(f"sal must be a (N,C,h,w) tensor, got {shape}")
    if not sal.is_floating_point():
        raise TypeError(f"sal must be a float tensor, got dtype {sal.dtype}")
    H, W = _size2("size", size)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode != "coverage":
        if window is not None or stride is not None:
            raise ValueError(f"window and stride are only used by mode='coverage', not {mode!r}")
        if mode == "bilinear":
            return F.interpolate(sal, size=(H, W), mode="bilinear", align_corners=False)
        return F.interpolate(sal, size=(H, W), mode="nearest")
    if window is None or stride is None:
        raise ValueError("mode='coverage' needs window= and stride= (the patch geometry)")
    window, stride = _pos_int("window", window), _pos_int("stride", stride)
    if stride > window:
        raise ValueError(
            f"mode='coverage' needs stride <= window (no gaps between patches), "
            f"got window={window}, stride={stride}"
        )
    expected = grid_shape((H, W), window, stride)
    if tuple(sal.shape[-2:]) != expected:
        raise ValueError(
            f"sal's grid {tuple(sal.shape[-2:])} does not match a {H}x{W} image with "
            f"window={window}, stride={stride}: expected {expected}"
        )
    n, c, h, w = sal.shape
    kernel = torch.ones(1, 1, window, window, dtype=sal.dtype, device=sal.device)
    total = F.conv_transpose2d(sal.reshape(n * c, 1, h, w), kernel, stride=stride)
    count = F.conv_transpose2d(torch.ones(1, 1, h, w, dtype=sal.dtype, device=sal.device),
                               kernel, stride=stride)
    out = (total / count).reshape(n, c, *total.shape[-2:])
    pad_h, pad_w = H - out.shape[-2], W - out.shape[-1]  # uncovered bottom/right margin
    if pad_h or pad_w:
        out = F.pad(out.reshape(n * c, 1, *out.shape[-2:]), (0, pad_w, 0, pad_h),
                    mode="replicate").reshape(n, c, H, W)
    return out


# ----------------------------------------------------------------------------------------------
# sliding windows
# ----------------------------------------------------------------------------------------------


def grid_shape(size, window: int, stride: int) -> tuple[int, int]:
    """Number of sliding-patch positions ``(n_h, n_w)``, ``n = (H - window) // stride + 1``.

    Raises:
        ValueError: naming ``window`` and the image size when the patch does not fit.
    """
    H, W = _size2("size", size)
    window, stride = _pos_int("window", window), _pos_int("stride", stride)
    if window > min(H, W):
        raise ValueError(f"window={window} is larger than the image size {H}x{W}")
    return (H - window) // stride + 1, (W - window) // stride + 1


def window_masks(size, window: int, stride: int, index: torch.Tensor, *, device=None,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Keep-masks of the sliding-patch positions ``index`` (row-major), ``(len(index),1,H,W)``.

    Position k = r * n_w + c has its ``window`` x ``window`` patch (value 0) at top-left
    ``(r*stride, c*stride)``; everything else is 1.
    """
    H, W = _size2("size", size)
    _, n_w = grid_shape((H, W), window, stride)
    index = torch.as_tensor(index, dtype=torch.long, device=device).reshape(-1)
    y0 = (index // n_w) * stride
    x0 = (index % n_w) * stride
    ys = torch.arange(H, device=index.device)
    xs = torch.arange(W, device=index.device)
    in_y = (ys[None] >= y0[:, None]) & (ys[None] < y0[:, None] + window)  # (K,H)
    in_x = (xs[None] >= x0[:, None]) & (xs[None] < x0[:, None] + window)  # (K,W)
    inside = in_y[:, :, None] & in_x[:, None, :]
    return (~inside).to(dtype).unsqueeze(1)


def sliding_windows(size, window: int, stride: int, device=None,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """All sliding-patch keep-masks, ``(n_h * n_w, 1, H, W)``, row-major (methods.md §3.1).

    Memory is ``n_h * n_w * H * W`` floats (1.7 GB at 224/29/3): attributors build them batch by
    batch with :func:`window_masks`.
    """
    n_h, n_w = grid_shape(size, window, stride)
    return window_masks(size, window, stride, torch.arange(n_h * n_w), device=device, dtype=dtype)


class SlidingWindows:
    """The sliding-patch mask set of SP / SP-G: one keep-mask per patch position (row-major).

    Args:
        size: image ``H`` or ``(H, W)``.
        window, stride: patch side and step in pixels.
        local: fill each patch from a crop of side ``window + 2 * margin`` around it (clipped to
            the image, shifted inward at the borders) and paste the filled crop back (see
            :mod:`kit.attributors.sliding_patch`); the mask set then composites itself.
        margin: crop margin for ``local=True`` (None = ``window``).
    """

    per_image = False

    def __init__(self, size, window: int, stride: int, *, local: bool = False,
                 margin: int | None = None) -> None:
        self.size = _size2("size", size)
        self.window, self.stride = _pos_int("window", window), _pos_int("stride", stride)
        self.grid = grid_shape(self.size, self.window, self.stride)
        self.local = local
        self.margin = (self.window if margin is None else margin) if local else None
        if not local:
            self.composites = None  # the engine composites through the remover itself

    def __len__(self) -> int:
        return self.grid[0] * self.grid[1]

    def build(self, index, *, image=None, device=None, dtype: torch.dtype = torch.float32):
        """Keep-masks ``(B,1,H,W)`` of positions ``index`` (the same for every image)."""
        return window_masks(self.size, self.window, self.stride, index, device=device,
                            dtype=dtype)

    def composites(self, remover, x: torch.Tensor, image: torch.Tensor,
                   index: torch.Tensor) -> torch.Tensor:
        """Local composites ``(B,3,H,W)`` of images ``x[image]`` with patches ``index`` removed.

        Each crop is filled by ``remover(crop, keep)``; the image outside the crop is untouched.
        """
        H, W = self.size
        window, stride, margin = self.window, self.stride, self.margin
        n_w = self.grid[1]
        ch, cw = min(window + 2 * margin, H), min(window + 2 * margin, W)
        py, px = (index // n_w) * stride, (index % n_w) * stride  # patch top-left
        y0 = (py - margin).clamp(0, H - ch)
        x0 = (px - margin).clamp(0, W - cw)
        ry = y0[:, None] + torch.arange(ch, device=x.device)  # (B,ch) image rows of each crop
        rx = x0[:, None] + torch.arange(cw, device=x.device)  # (B,cw)
        b = index.shape[0]
        imgs = x[image]  # (B,3,H,W)
        bi = torch.arange(b, device=x.device)[:, None, None]
        crops = imgs.permute(0, 2, 3, 1)[bi, ry[:, :, None], rx[:, None, :]]  # (B,ch,cw,3)
        crops = crops.permute(0, 3, 1, 2).contiguous()
        in_y = (ry >= py[:, None]) & (ry < py[:, None] + window)
        in_x = (rx >= px[:, None]) & (rx < px[:, None] + window)
        keep = (~(in_y[:, :, None] & in_x[:, None, :])).to(x.dtype).unsqueeze(1)
        filled = remover(crops, keep)  # (B,3,ch,cw)
        out = imgs.clone()
        flat = (ry[:, :, None] * W + rx[:, None, :]).reshape(b, 1, -1).expand(b, 3, -1)
        out.view(b, 3, H * W).scatter_(2, flat, filled.reshape(b, 3, -1))
        return out


# ----------------------------------------------------------------------------------------------
# superpixels
# ----------------------------------------------------------------------------------------------


def superpixels(x: torch.Tensor, n_segments: int = 50, compactness: float = 30,
                sigma: float | None = None) -> torch.Tensor:
    """SLIC superpixels per image, as LIME's ``SegmentationAlgorithm('slic', ...)`` (§3.2).

    Each image is quantised to uint8 (``round(255 x)``; exact for images that came from uint8)
    and segmented with ``skimage.segmentation.slic(img, n_segments, compactness=...,
    sigma=..., start_label=0)`` (other arguments at skimage's defaults, as LIME leaves them).
    Labels are made consecutive, ``0..K-1``; K can be below ``n_segments`` and varies by image.

    Note: stock LIME with skimage >= 0.19 gets ``start_label=1`` and then never removes the
    last superpixel (its feature ``k`` hides segment ``k``); kit always uses 0-based labels.

    Args:
        x: ``(N,3,H,W)`` float images in [0,1].
        n_segments, compactness: SLIC settings (LIME reference: 50, 30).
        sigma: SLIC pre-smoothing; None = ``kit.defaults`` ``lime_sigma`` (3 at 224, 1 at 64).

    Returns:
        ``(N,H,W)`` long labels on ``x.device``.
    """
    from skimage.segmentation import slic

    from kit.defaults import resolve

    _check_images("x", x)
    n_segments = _pos_int("n_segments", n_segments)
    if isinstance(compactness, bool) or not isinstance(compactness, (int, float)) \
            or not compactness > 0:
        raise ValueError(f"compactness must be a positive number, got {compactness!r}")
    if sigma is None:
        sigma = resolve("lime_sigma", min(x.shape[-2:]))
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or sigma < 0:
        raise ValueError(f"sigma must be a number >= 0 or None, got {sigma!r}")
    imgs = (x.detach().to("cpu", torch.float64) * 255).round().to(torch.uint8)
    imgs = imgs.permute(0, 2, 3, 1).numpy()
    out = []
    for img in imgs:
        seg = slic(img, n_segments=n_segments, compactness=float(compactness),
                   sigma=float(sigma), start_label=0)
        _, seg = np.unique(seg, return_inverse=True)
        out.append(torch.from_numpy(seg.reshape(img.shape[:2]).astype(np.int64)))
    return torch.stack(out).to(x.device)


# ----------------------------------------------------------------------------------------------
# RISE masks
# ----------------------------------------------------------------------------------------------


class Coalitions:
    """Per-image binary coalitions of superpixels: the mask set of LIME and KernelSHAP.

    Sample ``j`` of image ``i`` keeps the superpixels ``k`` with ``z[i][j, k] = 1``:
    ``keep = z[i][j, segments[i]]``.

    Args:
        segments: ``(N,H,W)`` long superpixel labels ``0..K_i-1``.
        z: per image, a ``(S, K_i)`` {0,1} array or tensor; every image has the same S.
    """

    per_image = True
    composites = None

    def __init__(self, segments: torch.Tensor, z) -> None:
        self.segments = segments
        self.z = [torch.as_tensor(np.asarray(zi)) for zi in z]
        counts = {zi.shape[0] for zi in self.z}
        if len(self.z) != segments.shape[0] or len(counts) != 1:
            raise ValueError("z must hold one (S, K_i) array per image, with the same S for all")
        self.n = counts.pop()

    def __len__(self) -> int:
        return self.n

    def build(self, index, *, image, device=None, dtype: torch.dtype = torch.float32):
        """Keep-masks ``(B,1,H,W)`` for samples ``index`` of images ``image``."""
        index = torch.as_tensor(index, dtype=torch.long).reshape(-1).cpu()
        image = torch.as_tensor(image, dtype=torch.long).reshape(-1).cpu()
        H, W = self.segments.shape[-2:]
        out = torch.empty(index.shape[0], 1, H, W, dtype=dtype, device=device)
        for i in image.unique().tolist():
            rows = (image == i).nonzero().squeeze(1)
            zi = self.z[i][index[rows]].to(device=device, dtype=dtype)  # (b, K_i)
            seg = self.segments[i].to(device)
            out[rows.to(device), 0] = zi[:, seg]
        return out


def _mirror_interp(length: int, n: int) -> torch.Tensor:
    """``(length, n)`` matrix of 1-D linear interpolation from n cells to ``length`` samples.

    Half-pixel alignment and mirror boundary (skimage ``resize(order=1, mode='reflect',
    anti_aliasing=False)``, which RISE uses): source coordinate ``u = (o + 0.5) n / length - 0.5``,
    index ``-1`` reads cell 1 and index ``n`` reads cell ``n - 2``.
    """
    o = torch.arange(length, dtype=torch.float64)
    u = (o + 0.5) * n / length - 0.5
    i0 = torch.floor(u)
    frac = u - i0
    i0 = i0.long()
    A = torch.zeros(length, n, dtype=torch.float64)
    for idx, wgt in ((i0, 1 - frac), (i0 + 1, frac)):
        idx = torch.where(idx < 0, -idx, idx)
        idx = torch.where(idx > n - 1, 2 * (n - 1) - idx, idx).clamp(0, n - 1)
        A.index_put_((torch.arange(length), idx), wgt, accumulate=True)
    return A


class RiseMasks:
    """RISE's N masks as a lazily built sequence (grids and shifts drawn once, seeded).

    ``RiseMasks(n, size, s, p, seed)[i:j]`` builds masks i..j-1 only, so a 224x224 run of 4000
    masks never holds them all. ``build(index)`` takes any index tensor.

    Draws, from a private ``torch.Generator().manual_seed(seed)``: ``grid = rand(n, s, s) < p``
    (1 = keep, probability p), then shifts ``randint(0, C, (n, 2))`` (rows, columns) with
    ``C = ceil(H / s)`` (per axis). Mask i is the grid upsampled bilinearly to ``(s + 1) C``
    (:func:`_mirror_interp`), cropped to ``H x W`` at the shift.
    """

    def __init__(self, n: int, size, s: int = 7, p: float = 0.5, seed: int = 0) -> None:
        self.n = _pos_int("n", n)
        self.size = _size2("size", size)
        self.s = _pos_int("s", s)
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
            raise ValueError(f"p must be a probability in (0, 1], got {p!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self.p = float(p)
        H, W = self.size
        self.cell = (math.ceil(H / self.s), math.ceil(W / self.s))
        g = torch.Generator().manual_seed(int(seed))
        self.grid = (torch.rand(self.n, self.s, self.s, generator=g) < self.p).double()
        self.shifts = torch.stack([torch.randint(0, c, (self.n,), generator=g)
                                   for c in self.cell], 1)
        self._ay = _mirror_interp((self.s + 1) * self.cell[0], self.s)
        self._ax = _mirror_interp((self.s + 1) * self.cell[1], self.s)

    def __len__(self) -> int:
        return self.n

    per_image = False
    composites = None

    def build(self, index, *, image=None, device=None,
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Masks ``index`` as ``(len(index),1,H,W)`` in [0,1] (the same for every ``image``)."""
        index = torch.as_tensor(index, dtype=torch.long).reshape(-1).cpu()
        H, W = self.size
        rows = self._ay[self.shifts[index, 0, None] + torch.arange(H)]  # (B,H,s)
        cols = self._ax[self.shifts[index, 1, None] + torch.arange(W)]  # (B,W,s)
        m = torch.einsum("bhs,bst,bwt->bhw", rows, self.grid[index], cols)
        return m.clamp(0, 1).to(device=device, dtype=dtype).unsqueeze(1)

    def __getitem__(self, item) -> torch.Tensor:
        if isinstance(item, slice):
            return self.build(torch.arange(self.n)[item])
        raise TypeError("RiseMasks supports slices (masks[i:j]) or build(index)")


def rise_masks(n: int, size, s: int = 7, p: float = 0.5, seed: int = 0, *, device=None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """RISE masks (methods.md §3.7), ``(n,1,H,W)`` soft keep-masks in [0,1].

    Binary ``s x s`` grids (cell kept with probability ``p``), upsampled bilinearly to
    ``(s+1) * ceil(H/s)`` with RISE's skimage boundary rule (mirror), randomly shifted by
    ``[0, ceil(H/s))`` per axis and cropped to ``H x W``. Deterministic in ``seed``; the global RNG
    is untouched. See :class:`RiseMasks` for the exact draws and for building masks in batches.
    """
    return RiseMasks(n, size, s, p, seed).build(torch.arange(n), device=device, dtype=dtype)


# ----------------------------------------------------------------------------------------------
# the top fraction of a map: the one ranker
# ----------------------------------------------------------------------------------------------


def top_count(fraction: float, total: int) -> int:
    """How many of ``total`` pixels "the top ``fraction``" means: the one rounding rule of kit.

    ``k = floor(fraction * total + 1/2)`` (round half up), at least 1 for any ``fraction > 0``
    and exactly ``total`` for ``fraction = 1``. Deletion curves, ROAR/KAR, GAD's top-q and the
    explorer's counterfactuals all count through this function.
    """
    from kit.checks import fraction as _fraction

    q = _fraction("fraction", fraction, closed=True)
    if q == 0:
        return 0
    # 1e-9 guards 0.5 * 4096 + 0.5 etc. against a float round-down below the integer
    return min(total, max(1, math.floor(q * total + 0.5 + 1e-9)))


def pixel_rank(sal: torch.Tensor) -> torch.Tensor:
    """Rank of every pixel by decreasing value, ``(N, h*w)`` long; 0 = the highest.

    Ties keep raster order (row-major, top-left first: a stable sort), so the ranking is
    deterministic. The one ranker: :func:`top_fraction`, :class:`TopFraction` and deletion
    curves all use it. Rank the map at the resolution you remove pixels at (see
    :func:`kit.maps.to_pixels`).

    Args:
        sal: ``(N,1,h,w)`` maps (NaN values are refused).
    """
    from kit.checks import maps as _maps

    _maps("sal", sal)
    flat = sal.detach().float().flatten(1)
    if torch.isnan(flat).any():
        raise ValueError("sal contains NaN values; a NaN map has no ranking")
    order = torch.argsort(-flat, dim=1, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device)
                  .expand_as(order).contiguous())
    return rank


def top_fraction(sal: torch.Tensor, fraction: float) -> torch.Tensor:
    """The top ``fraction`` of each map's pixels (:func:`top_count`, :func:`pixel_rank`).

    Args:
        sal: ``(N,1,h,w)`` maps.
        fraction: in [0, 1].

    Returns:
        ``(N,1,h,w)`` bool, exactly ``top_count(fraction, h*w)`` True per map.
    """
    rank = pixel_rank(sal)
    k = top_count(fraction, rank.shape[1])
    return (rank < k).view(sal.shape)


class TopFraction:
    """Keep-masks from the top fractions of maps: a per-image mask set for the engine.

    Mask ``j`` of image ``i`` removes (``mode="remove"``, deletion and ROAR) or keeps only
    (``mode="keep"``, insertion and KAR) the ``counts[j]`` highest pixels of ``sal[i]``.

    Args:
        sal: ``(N,1,H,W)`` maps at image resolution.
        fractions: fractions in [0, 1] (counted with :func:`top_count`), or ``None`` with
            ``counts``.
        counts: explicit pixel counts instead of fractions (deletion's ``i * step``).
        mode: ``"remove"`` or ``"keep"``.
    """

    per_image = True

    def __init__(self, sal: torch.Tensor, fractions=None, *, counts=None, mode: str = "remove"):
        from kit.checks import choice

        choice("mode", mode, ("remove", "keep"))
        self.rank = pixel_rank(sal)
        self.size = tuple(sal.shape[-2:])
        total = self.rank.shape[1]
        if (fractions is None) == (counts is None):
            raise ValueError("TopFraction needs exactly one of fractions= or counts=")
        if counts is None:
            counts = [top_count(q, total) for q in fractions]
        self.counts = torch.as_tensor(list(counts), dtype=torch.long).clamp(0, total)
        self.mode = mode

    def __len__(self) -> int:
        return len(self.counts)

    def build(self, index, *, image, device=None, dtype: torch.dtype = torch.float32):
        """Keep-masks ``(B,1,H,W)`` for mask indices ``index`` of images ``image`` (``(B,)``)."""
        index = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        image = torch.as_tensor(image, dtype=torch.long).reshape(-1)
        top = self.rank[image] < self.counts[index][:, None]
        keep = ~top if self.mode == "remove" else top
        return keep.to(device=device, dtype=dtype).view(-1, 1, *self.size)
