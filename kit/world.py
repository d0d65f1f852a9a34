"""The embedded world: a procedural image data set with exact ground truth.

Every image holds one object (a shape family: the class) at a random position, scale, rotation,
colour and texture, pasted on a background crop of a natural photograph or texture that ships inside
scikit-image's wheel. Each sample also carries the same scene rendered *without* the object,
which is the true counterfactual that removal methods try to approximate (methods.md §2.5, §4.1).

Colour and texture distributions are identical for every class, so shape is the only cue.

Usage::

    from kit import world
    batch = world.sample(16, seed=0, split="test")
    batch.images.shape        # (16, 3, 64, 64) float32 in [0, 1]
    world.CLASSES[batch.labels[0]]

Determinism: image ``i`` of ``sample(n, seed, split)`` depends only on ``(split, seed, start + i)``;
it is the same for any ``n`` and any chunking. Splits use disjoint seed streams (the split id is the
first word of every image's :class:`numpy.random.SeedSequence` entropy), so no image is shared.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F

CLASSES: tuple[str, ...] = (
    "disk",
    "square",
    "triangle",
    "star",
    "cross",
    "ring",
    "ellipse",
    "heart",
)
"""Class names; the label of an image is the index of its shape family here."""

SPLITS: dict[str, int] = {"train": 0, "val": 1, "test": 2}
"""Split name -> first word of the per-image seed entropy (disjoint streams per split)."""

BACKGROUND_FILES: tuple[str, ...] = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "moon.png",
    "rocket.jpg",
    "retina.jpg",
    "motorcycle_left.png",
    "clock_motion.png",
)
"""Photographs and textures from the scikit-image wheel (no download). Images full of the world's
shapes (coins, chessboards) are left out on purpose: they would put class evidence in
backgrounds."""

TEXTURES: tuple[str, ...] = ("flat", "stripes", "checker", "blobs", "gradient")

_SOURCE_SIZE = 128  # backgrounds are pre-resized to this square before random cropping
_SUPERSAMPLE = 3  # object coverage is computed on a 3x finer grid, then averaged (anti-aliasing)
_CHUNK = 512  # images rendered per vectorised chunk (bounds memory)


@dataclass(frozen=True)
class WorldBatch:
    """A batch of world samples; every tensor is on the CPU.

    Attributes:
        images: ``(n,3,H,W)`` float32 in [0,1], the scenes.
        labels: ``(n,)`` int64 indices into :data:`CLASSES`.
        masks: ``(n,1,H,W)`` bool, pixels touched by the object (image != background only here).
        boxes: ``(n,4)`` int64 ``(x0, y0, x1, y1)``, tight box of ``masks``; x1, y1 exclusive.
        backgrounds: ``(n,3,H,W)`` float32, the same scenes without the object (the true
            counterfactual).
    """

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    boxes: torch.Tensor
    backgrounds: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, idx) -> WorldBatch:
        """Index or slice every field alike (an int keeps the batch dimension)."""
        if isinstance(idx, int):
            idx = slice(idx, idx + 1) if idx != -1 else slice(-1, None)
        return WorldBatch(*(getattr(self, f.name)[idx] for f in fields(self)))

    def to(self, device) -> WorldBatch:
        """Return a copy with every tensor on ``device``."""
        return WorldBatch(*(getattr(self, f.name).to(device) for f in fields(self)))


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


@functools.lru_cache(maxsize=1)
def _sources() -> torch.Tensor:
    """Load the background photographs once: ``(K,3,S,S)`` float32, centre-cropped squares."""
    import skimage.data
    import skimage.io
    import skimage.transform

    folder = os.path.dirname(skimage.data.__file__)
    out = []
    for name in BACKGROUND_FILES:
        path = os.path.join(folder, name)
        if not os.path.exists(path):  # pragma: no cover - depends on the wheel's contents
            raise FileNotFoundError(
                f"background image {name!r} is missing from scikit-image's wheel at {path}; "
                "install scikit-image==0.26.0 as pinned in pyproject.toml"
            )
        img = skimage.io.imread(path)
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        img = img[..., :3].astype(np.float32)
        img /= 255.0 if img.max() > 1.0 else 1.0
        h, w = img.shape[:2]
        s = min(h, w)
        img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        img = skimage.transform.resize(
            img, (_SOURCE_SIZE, _SOURCE_SIZE), anti_aliasing=True, preserve_range=True
        )
        out.append(torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float())
    return torch.stack(out)


def _draw_params(split_id: int, seed: int, index: int, size: int) -> dict:
    """All random choices for one image, from its own generator (cheap scalars and a 6x6 grid)."""
    rng = np.random.default_rng([split_id, seed, index])
    radius = rng.uniform(0.15, 0.24) * size
    margin = radius * 1.05
    hsv = np.stack(
        [rng.uniform(0, 1, 2), rng.uniform(0.25, 1.0, 2), rng.uniform(0.25, 1.0, 2)], axis=1
    )
    return {
        "label": int(rng.integers(len(CLASSES))),
        "cx": rng.uniform(margin, size - margin),
        "cy": rng.uniform(margin, size - margin),
        "radius": radius,
        "theta": rng.uniform(0, 2 * np.pi),
        "colors": hsv,  # (2,3) HSV, converted in bulk later
        "texture": int(rng.integers(len(TEXTURES))),
        "freq": rng.uniform(2.0, 5.0),
        "phase": rng.uniform(0, 2 * np.pi),
        "tex_angle": rng.uniform(0, np.pi),
        "blobs": rng.uniform(0, 1, (6, 6)),
        "source": int(rng.integers(len(BACKGROUND_FILES))),
        "crop": rng.uniform(0.35, 1.0),
        "crop_x": rng.uniform(0, 1),
        "crop_y": rng.uniform(0, 1),
        "flip": bool(rng.integers(2)),
        "brightness": rng.uniform(0.75, 1.25),
        "contrast": rng.uniform(0.7, 1.3),
        "saturation": rng.uniform(0.5, 1.3),
        "light": rng.uniform(0, 2 * np.pi),
    }


def _inside(label: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Boolean inside-test of one shape family in its local frame (object radius = 1).

    Args:
        label: class index into :data:`CLASSES`.
        u, v: ``(n,h,w)`` local coordinates (v points up).
    """
    name = CLASSES[label]
    if name in ("disk", "ring"):
        r2 = u * u + v * v
        return (r2 <= 0.95**2) & (r2 >= 0.55**2) if name == "ring" else r2 <= 0.95**2
    if name == "square":
        return torch.maximum(u.abs(), v.abs()) <= 0.72
    if name == "triangle":  # equilateral, circumradius 1: three half-planes at distance 0.5
        inside = torch.ones_like(u, dtype=torch.bool)
        for k in range(3):
            a = np.pi / 2 + k * 2 * np.pi / 3
            inside &= (u * np.cos(a) + v * np.sin(a)) >= -0.5
        return inside
    if name == "star":  # five points; radial distance to the outer-inner vertex edge
        seg = 2 * np.pi / 5
        a = (torch.remainder(torch.atan2(v, u) - np.pi / 2 + seg / 2, seg) - seg / 2).abs()
        p1 = np.array([1.0, 0.0])
        d = 0.45 * np.array([np.cos(seg / 2), np.sin(seg / 2)]) - p1
        r_edge = (p1[0] * d[1] - p1[1] * d[0]) / (torch.cos(a) * d[1] - torch.sin(a) * d[0])
        return u * u + v * v <= r_edge * r_edge
    if name == "cross":
        au, av = u.abs(), v.abs()
        return ((au <= 0.28) & (av <= 0.95)) | ((av <= 0.28) & (au <= 0.95))
    if name == "ellipse":
        return u * u + (v / 0.5) ** 2 <= 0.95**2
    if name == "heart":  # (x^2+y^2-1)^3 - x^2 y^3 <= 0
        hx, hy = u / 0.85, v / 0.85 + 0.15
        return (hx * hx + hy * hy - 1) ** 3 - hx * hx * hy**3 <= 0
    raise AssertionError(f"no inside-test for class {name!r}")  # CLASSES and tests out of sync


def _hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    import skimage.color

    return skimage.color.hsv2rgb(hsv.reshape(-1, 1, 3)).reshape(hsv.shape).astype(np.float32)


def _render_chunk(params: list[dict], size: int) -> tuple[torch.Tensor, ...]:
    """Render one chunk of images from their parameters, fully vectorised."""
    n = len(params)
    col = lambda key: torch.tensor([p[key] for p in params], dtype=torch.float32)  # noqa: E731

    # Backgrounds: random crop (scale, position), flip and colour jitter through one affine grid.
    src = _sources()[torch.tensor([p["source"] for p in params])]
    crop, flip = col("crop"), col("flip")
    tx = (col("crop_x") * 2 - 1) * (1 - crop)
    ty = (col("crop_y") * 2 - 1) * (1 - crop)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = crop * (1 - 2 * flip)
    theta[:, 1, 1] = crop
    theta[:, 0, 2], theta[:, 1, 2] = tx, ty
    # Downscaling by up to 2x: average a 2x finer sampling to avoid aliasing.
    fine = F.grid_sample(
        src, F.affine_grid(theta, (n, 3, 2 * size, 2 * size), align_corners=False),
        mode="bilinear", padding_mode="reflection", align_corners=False,
    )
    bg = F.avg_pool2d(fine, 2)
    gray = bg.mean(1, keepdim=True)
    bg = gray + (bg - gray) * col("saturation").view(n, 1, 1, 1)
    mean = bg.mean((1, 2, 3), keepdim=True)
    bg = mean + (bg - mean) * col("contrast").view(n, 1, 1, 1)
    bg = (bg * col("brightness").view(n, 1, 1, 1)).clamp(0, 1)

    # Object coverage on a supersampled grid -> soft alpha.
    label = torch.tensor([p["label"] for p in params], dtype=torch.long)
    cx, cy, rad, th = col("cx"), col("cy"), col("radius"), col("theta")

    def local(res: int) -> tuple[torch.Tensor, torch.Tensor]:
        t = (torch.arange(res, dtype=torch.float32) + 0.5) * (size / res)
        yy, xx = torch.meshgrid(t, t, indexing="ij")
        dx = (xx[None] - cx.view(n, 1, 1)) / rad.view(n, 1, 1)
        dy = -(yy[None] - cy.view(n, 1, 1)) / rad.view(n, 1, 1)
        c, s = torch.cos(th).view(n, 1, 1), torch.sin(th).view(n, 1, 1)
        return c * dx + s * dy, -s * dx + c * dy

    us, vs = local(size * _SUPERSAMPLE)
    inside = torch.zeros(us.shape, dtype=torch.bool)
    for c in label.unique().tolist():  # each family's test only on its own images
        sel = label == c
        inside[sel] = _inside(c, us[sel], vs[sel])
    alpha = F.avg_pool2d(inside.float().unsqueeze(1), _SUPERSAMPLE)  # (n,1,H,W) in [0,1]
    del us, vs, inside

    # Object appearance: two colours mixed by a texture pattern in the object's own frame.
    u, v = local(size)
    colors = torch.from_numpy(_hsv_to_rgb(np.stack([p["colors"] for p in params])))  # (n,2,3)
    tex = torch.tensor([p["texture"] for p in params])
    freq, phase, ta = col("freq").view(n, 1, 1), col("phase").view(n, 1, 1), col("tex_angle")
    w = torch.cos(ta).view(n, 1, 1) * u + torch.sin(ta).view(n, 1, 1) * v
    blobs = F.interpolate(
        torch.tensor(np.stack([p["blobs"] for p in params]), dtype=torch.float32)[:, None],
        size=(size, size), mode="bicubic", align_corners=False,
    )[:, 0].clamp(0, 1)
    patterns = torch.stack(
        [
            torch.zeros_like(u),  # flat
            0.5 + 0.5 * torch.sin(freq * np.pi * w + phase),  # stripes
            (torch.sin(freq * np.pi * u + phase) * torch.sin(freq * np.pi * v) > 0).float(),
            blobs,  # smooth random blobs (image frame)
            ((w + 1) / 2).clamp(0, 1),  # linear gradient
        ]
    )[tex, torch.arange(n)].unsqueeze(1)  # (n,1,H,W)
    obj = colors[:, 0, :, None, None] * (1 - patterns) + colors[:, 1, :, None, None] * patterns
    # Soft directional shading so objects are not flat stickers.
    li = col("light")
    shade = 1.0 + 0.15 * (torch.cos(li).view(n, 1, 1) * u + torch.sin(li).view(n, 1, 1) * v)
    obj = (obj * shade.unsqueeze(1)).clamp(0, 1)

    image = bg * (1 - alpha) + obj * alpha
    mask = alpha > 0
    # Outside the mask alpha == 0 exactly, so image == background there bit for bit.
    image = torch.where(mask, image, bg)
    return image.contiguous(), label, mask.contiguous(), bg.contiguous()


def _boxes(mask: torch.Tensor) -> torch.Tensor:
    """Tight ``(x0, y0, x1, y1)`` boxes (exclusive upper corner) of ``(n,1,H,W)`` bool masks."""
    n, _, h, w = mask.shape
    cols = mask.any(dim=2)[:, 0]  # (n,W)
    rows = mask.any(dim=3)[:, 0]  # (n,H)
    ar_w, ar_h = torch.arange(w), torch.arange(h)
    x0 = torch.where(cols, ar_w, w).amin(1)
    x1 = torch.where(cols, ar_w, -1).amax(1) + 1
    y0 = torch.where(rows, ar_h, h).amin(1)
    y1 = torch.where(rows, ar_h, -1).amax(1) + 1
    return torch.stack([x0, y0, x1, y1], 1).long()


def sample(
    n: int, seed: int = 0, split: str = "train", *, start: int = 0, size: int = 64
) -> WorldBatch:
    """Draw ``n`` world images.

    Args:
        n: number of images (>= 1).
        seed: seed of the split's stream; any non-negative int.
        split: ``"train"``, ``"val"`` or ``"test"`` (disjoint streams).
        start: index of the first image in the stream, to draw non-overlapping consecutive batches.
        size: image height and width in pixels (>= 16).

    Returns:
        A :class:`WorldBatch` with ``images (n,3,size,size)`` float32 in [0,1], ``labels (n,)``,
        ``masks (n,1,size,size)`` bool, ``boxes (n,4)`` and ``backgrounds (n,3,size,size)``.

    Raises:
        ValueError: on an unknown split or a bad ``n``, ``seed``, ``start`` or ``size``.
    """
    n = _check_int("n", n, 1)
    seed = _check_int("seed", seed, 0)
    start = _check_int("start", start, 0)
    size = _check_int("size", size, 16)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    params = [_draw_params(SPLITS[split], seed, start + i, size) for i in range(n)]
    parts = [_render_chunk(params[i : i + _CHUNK], size) for i in range(0, n, _CHUNK)]
    images, labels, masks, bgs = (torch.cat(t) for t in zip(*parts, strict=True))
    return WorldBatch(images, labels, masks, _boxes(masks), bgs)


def train_mean_color(n: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean RGB colour of training images: the world's "gray" (methods.md §2.1)."""
    m = sample(n, seed, "train").images.mean((0, 2, 3))
    return tuple(float(c) for c in m)
