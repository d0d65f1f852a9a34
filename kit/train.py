"""Training of the embedded world's classifier and inpainter (reproducible with a fixed seed).

Command line (what ``00_world.ipynb`` runs with ``train=True``)::

    python -m kit.train classifier                      # -> data/world_classifier.pt (~10 min)
    python -m kit.train inpainter                       # -> data/world_inpainter.pt (completion)
    python -m kit.train inpainter --target removal      # -> data/world_inpainter_removal.pt
                                                        #    (each ~42 min on 2 idle cores)
    python -m kit.train inpainter --out /tmp/inp.pt --iterations 50   # a quick smoke run

:func:`train_classifier` is the classifier recipe on given tensors (ROAR's retrainings use it);
:func:`train_world_classifier` runs it on world ``train`` images and saves the shipped checkpoint.
The world trainers draw data only from the world's ``train`` split, use a private
``torch.Generator`` for every random choice, and write their checkpoint atomically (in memory, then
:func:`kit.cache.write_atomic_bytes`), as a plain dict of tensors and literals that
``torch.load(..., weights_only=True)`` accepts.

Inpainter recipe (:func:`train_inpainter`; one recipe, two targets, so that X-G against X-R is a
controlled experiment):

* **Holes** (:func:`training_batch`), the same for both targets: a third free-form brush strokes
  and boxes anywhere (DeepFill v2's generator scaled to 64×64), a third over *part* of the object
  (a square or a stroke starting on an object pixel, :func:`object_holes`), a third over the
  whole object (its silhouette dilated by 0–4 px, or its box grown by 0–3 px).
* **Targets** inside the hole: ``completion`` the original image (object included: the paper's
  generic inpainter "G"), except where the hole hides every object pixel (then the background:
  nothing is left to complete from); ``removal`` the true background everywhere.
* **Losses**, chosen so that the fill is textured, not the blurred conditional mean that plain
  L1 gives: L1 on the low-passed error only, a match of the local high-frequency (Laplacian)
  energy of the fill to the target's, and a hinge adversarial term from a spectral-normalised
  PatchGAN critic (:func:`inpainter_losses`).
* **Budget**: 8,000 iterations of 16 images drawn from 10,000 world ``train`` images (128,000
  samples, each with a random flip/rotation and fresh holes). At 1,200 iterations (the first
  shipped pair) the fills kept 0.42-0.46 of the true background's texture and the removal model
  completed about half of a partly hidden object; at 8,000, 0.66-0.69 and about a quarter
  (``README.md``, notebook 00).
"""

from __future__ import annotations

import argparse
import io
import math
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from kit import world
from kit.nets import PatchDiscriminator, WorldCNN

CLASSIFIER_DEFAULTS = dict(
    n_train=30000, n_val=1000, epochs=4, batch_size=64, lr=3e-3, width=24, weight_decay=5e-4,
    seed=0,
)
INPAINTER_DEFAULTS = dict(
    n_train=10000, iterations=8000, batch_size=16, lr=1e-3, arch="lite", width=32, d_width=32,
    hole_mix=(1.0, 1.0, 1.0), l1_weight=6.0, hf_weight=3.0, lowpass_sigma=1.0, adv_weight=0.1,
    warmup=150, seed=0,
)


def save_atomic(obj: dict, path: str | os.PathLike) -> Path:
    """``torch.save`` to memory, then :func:`kit.cache.write_atomic_bytes` (never half-written)."""
    from kit.cache import write_atomic_bytes

    buf = io.BytesIO()
    torch.save(obj, buf)
    return write_atomic_bytes(buf.getvalue(), path)


def _dihedral(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Apply one of the 8 flips/rotations ``k[i]`` to each image (label-preserving here)."""
    out = x.clone()
    for code in range(8):
        sel = k == code
        if sel.any():
            y = x[sel]
            if code & 4:
                y = y.flip(-1)
            out[sel] = torch.rot90(y, code & 3, dims=(-2, -1))
    return out


def _pixels(name: str, x) -> torch.Tensor:
    """uint8 (as stored) or float [0,1] images -> float32 pixel space."""
    from kit.checks import images

    if isinstance(x, torch.Tensor) and x.dtype == torch.uint8:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"{name} must be a (N,3,H,W) tensor, got {tuple(x.shape)}")
        return x.float() / 255
    return images(name, x).float()


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    seed: int = 0,
    epochs: int = CLASSIFIER_DEFAULTS["epochs"],
    batch_size: int = CLASSIFIER_DEFAULTS["batch_size"],
    lr: float = CLASSIFIER_DEFAULTS["lr"],
    width: int = CLASSIFIER_DEFAULTS["width"],
    weight_decay: float = CLASSIFIER_DEFAULTS["weight_decay"],
    drop_last: bool = False,
    classes: Sequence[str] = world.CLASSES,
    progress: bool = False,
    desc: str = "classifier",
):
    """Train a fresh :class:`~kit.nets.WorldCNN` on these images: kit's classifier recipe.

    AdamW, a one-cycle learning rate over all steps, a random flip/rotation per image and step
    (the world's labels survive all 8), inputs normalised by the training images' per-channel mean
    and std. Every random draw (initialisation, batch order, augmentation) comes from ``seed``;
    the global generators are left as they were. The world classifier
    (:func:`train_world_classifier`) and ROAR's retrainings (:mod:`kit.studies.roar`) both train
    here.

    Args:
        images: ``(N,3,H,W)`` uint8 (divided by 255) or float images in [0,1].
        labels: ``(N,)`` class indices in ``[0, len(classes))``.
        seed: seed of initialisation, batch order and augmentation.
        epochs, batch_size, lr, width, weight_decay: the recipe (defaults:
            :data:`CLASSIFIER_DEFAULTS`).
        drop_last: drop each epoch's last partial batch (``N // batch_size`` steps, the shipped
            checkpoint's recipe) instead of training on it (``ceil(N / batch_size)`` steps; a
            last batch of one image is skipped, since batch norm needs two, but still advances
            the schedule).
        classes: class names of the returned classifier (one logit each).
        progress: tqdm bar over steps.
        desc: the bar's label.

    Returns:
        A :class:`kit.models.Classifier` (eval mode, frozen) around the trained network, with the
        training images' mean and std as its normalisation.

    Raises:
        ValueError / TypeError naming the argument (bad images, labels, sizes or seed).
    """
    from kit.checks import boolean, number, positive_int
    from kit.checks import seed as check_seed
    from kit.models import Classifier

    seed = check_seed("seed", seed)
    epochs = positive_int("epochs", epochs)
    bs = positive_int("batch_size", batch_size)
    width = positive_int("width", width)
    lr = number("lr", lr, minimum=0, strict=True)
    weight_decay = number("weight_decay", weight_decay, minimum=0)
    drop_last = boolean("drop_last", drop_last)
    x = _pixels("images", images)
    n = x.shape[0]
    if (not isinstance(labels, torch.Tensor) or labels.is_floating_point()
            or labels.shape != (n,)):
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must be an integer tensor of shape ({n},), got {shape}")
    y = labels.long()
    if n < 2:
        raise ValueError(f"images: need at least 2 training images, got {n}")
    if drop_last and n < bs:
        raise ValueError(f"batch_size: drop_last needs at least one full batch of {bs} images, "
                         f"got {n} images")
    mean, std = x.mean((0, 2, 3)), x.std((0, 2, 3)).clamp_min(1e-6)
    norm = lambda v: (v - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)  # noqa: E731
    gen = torch.Generator().manual_seed(seed)
    cl = torch.channels_last
    with torch.random.fork_rng(devices=[]):  # the initialisation draws from the global generator
        torch.manual_seed(seed)
        net = WorldCNN(len(classes), width).to(memory_format=cl)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    steps = n // bs if drop_last else math.ceil(n / bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps)
    bar = tqdm(total=epochs * steps, disable=not progress, desc=desc)
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(steps):
            idx = perm[i * bs:(i + 1) * bs]
            k = torch.randint(8, (len(idx),), generator=gen)
            if len(idx) < 2 and not drop_last:  # batch norm needs two samples; the step still
                sched.step()                        # advances the schedule
                continue
            # normalising after the flip equals normalising first: both act per pixel
            loss = F.cross_entropy(net(norm(_dihedral(x[idx], k)).contiguous(memory_format=cl)),
                                   y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()
    return Classifier(net.eval(), classes, mean.tolist(), std.tolist(), name=desc)


def train_world_classifier(
    out: str | os.PathLike | None = None, *, progress: bool = False, **overrides
) -> dict:
    """Train the world classifier on world ``train`` images and save the checkpoint.

    :func:`train_classifier` on ``n_train`` images of the world's ``train`` split (full batches
    only), validated on ``n_val`` images of its ``val`` split.

    Args:
        out: checkpoint path (default ``data/world_classifier.pt``).
        progress: show a tqdm bar.
        **overrides: any key of :data:`CLASSIFIER_DEFAULTS`.

    Returns:
        The saved checkpoint dict (``state_dict``, ``config``, ``classes``, ``mean``, ``std``,
        ``val_accuracy``, ``train_seconds``).
    """
    from kit.models import WORLD_CLASSIFIER_PATH

    cfg = {**CLASSIFIER_DEFAULTS, **overrides}
    unknown = set(overrides) - set(CLASSIFIER_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown options {sorted(unknown)}; valid: {sorted(CLASSIFIER_DEFAULTS)}")
    t0 = time.time()
    data = world.sample(cfg["n_train"], cfg["seed"], "train")
    val = world.sample(cfg["n_val"], cfg["seed"], "val")
    clf = train_classifier(
        data.images, data.labels, seed=cfg["seed"], epochs=cfg["epochs"],
        batch_size=cfg["batch_size"], lr=cfg["lr"], width=cfg["width"],
        weight_decay=cfg["weight_decay"], drop_last=True, progress=progress, desc="classifier",
    )
    with torch.inference_mode():
        val_acc = float((clf(val.images).argmax(1) == val.labels).float().mean())
    ckpt = {
        "state_dict": {k: v.contiguous() for k, v in clf.net.state_dict().items()},
        "config": cfg,
        "classes": list(world.CLASSES),
        "mean": list(clf.mean),
        "std": list(clf.std),
        "val_accuracy": val_acc,
        "train_seconds": time.time() - t0,
    }
    save_atomic(ckpt, out or WORLD_CLASSIFIER_PATH)
    return ckpt


def _stroke(canvas: np.ndarray, rng, x: float, y: float, steps: int, lengths: tuple,
            width: int) -> None:
    """Draw a random walk of ``steps`` thick segments from (x, y) on ``canvas`` (in place);
    segment lengths are drawn from ``lengths`` (shares of the side), in a fixed draw order."""
    import cv2

    size = canvas.shape[-1]
    for _ in range(steps):
        angle = rng.uniform(0, 2 * math.pi)
        length = rng.uniform(*lengths) * size
        nx = float(np.clip(x + length * math.cos(angle), 0, size - 1))
        ny = float(np.clip(y + length * math.sin(angle), 0, size - 1))
        cv2.line(canvas, (int(x), int(y)), (int(nx), int(ny)), 1, width)
        x, y = nx, ny


def random_holes(n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """Free-form training holes: brush strokes and boxes, ``(n,1,size,size)`` float in {0,1}.

    Strokes follow DeepFill v2's generator scaled to the image size: a few random walks of
    thick line segments; half of the masks also get one box of 15–50% of the side.
    """

    seeds = torch.randint(2**31 - 1, (n,), generator=gen).tolist()
    out = np.zeros((n, size, size), np.uint8)
    for i, s in enumerate(seeds):  # cv2 draws one mask at a time; microseconds each
        rng = np.random.default_rng(s)
        for _ in range(rng.integers(1, 4)):
            x, y = rng.uniform(0, size, 2)
            width = int(rng.uniform(0.06, 0.16) * size)
            _stroke(out[i], rng, x, y, rng.integers(2, 6), (0.1, 0.35), width)
        if rng.uniform() < 0.5:
            bw, bh = (rng.uniform(0.15, 0.5, 2) * size).astype(int)
            bx, by = rng.integers(0, size - bw), rng.integers(0, size - bh)
            out[i, by : by + bh, bx : bx + bw] = 1
    return torch.from_numpy(out).float().unsqueeze(1)


def dilate(mask: torch.Tensor, px: int | torch.Tensor) -> torch.Tensor:
    """Dilate ``(N,1,H,W)`` masks by ``px`` pixels (square structuring element), per image."""
    px = torch.as_tensor(px).expand(mask.shape[0])
    out = mask.float()
    for r in sorted(set(px.tolist())):
        if r > 0:
            sel = px == r
            out[sel] = F.max_pool2d(mask[sel].float(), 2 * r + 1, stride=1, padding=r)
    return out


TARGETS = ("completion", "removal")
"""What an inpainter learns to put inside a hole (:func:`train_inpainter`'s ``target``)."""

_LAPLACE = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def laplacian(x: torch.Tensor) -> torch.Tensor:
    """Per-channel 5-point Laplacian of ``(N,C,H,W)`` images (replicate-padded), same shape."""
    c = x.shape[1]
    k = _LAPLACE.to(x).view(1, 1, 3, 3).expand(c, 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=c)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (radius 2σ, replicate padding) of ``(N,C,H,W)``."""
    r = max(1, math.ceil(2 * sigma))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    c = x.shape[1]
    gx, gy = g.view(1, 1, 1, -1).expand(c, 1, 1, -1), g.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), gx, groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), gy, groups=c)


def local_hf_energy(x: torch.Tensor, window: int = 5) -> torch.Tensor:
    """Local high-frequency energy: the squared Laplacian, summed over channels and averaged over
    a ``window``×``window`` neighbourhood, ``(N,1,H,W)``."""
    e = laplacian(x).pow(2).sum(1, keepdim=True)
    return F.avg_pool2d(e, window, stride=1, padding=window // 2, count_include_pad=False)


def object_holes(masks: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Training holes over *part* of each object: ``(n,1,H,W)`` float in {0,1}.

    Each hole starts at a uniformly drawn object pixel: either a square of 4–20 px side centred
    there (SP's patches, a box over part of the object) or one thick brush stroke (2–4 segments,
    as :func:`random_holes`) from there. A part of the object usually stays visible, which is
    what separates completion from removal.

    Args:
        masks: ``(n,1,H,W)`` object masks (bool or {0,1}).
        gen: the caller's generator (one seed per mask is drawn from it).
    """

    n, _, size, _ = masks.shape
    seeds = torch.randint(2**31 - 1, (n,), generator=gen).tolist()
    out = np.zeros((n, size, size), np.uint8)
    m = masks.bool()[:, 0].numpy()
    for i, s in enumerate(seeds):
        rng = np.random.default_rng(s)
        ys, xs = np.nonzero(m[i])
        if len(ys) == 0:  # no object (not in the world's data): a central square
            ys, xs = np.array([size // 2]), np.array([size // 2])
        j = rng.integers(len(ys))
        x, y = float(xs[j]), float(ys[j])
        if rng.uniform() < 0.5:
            half = rng.uniform(2, 10)
            x0, y0 = int(max(0, x - half)), int(max(0, y - half))
            x1, y1 = int(min(size, x + half + 1)), int(min(size, y + half + 1))
            out[i, y0:y1, x0:x1] = 1
        else:
            width = max(2, int(rng.uniform(0.06, 0.16) * size))
            _stroke(out[i], rng, x, y, rng.integers(2, 5), (0.05, 0.2), width)
    return torch.from_numpy(out).float().unsqueeze(1)


def box_holes(boxes: torch.Tensor, size: int, pad: torch.Tensor) -> torch.Tensor:
    """Holes covering each object's box ``(x0, y0, x1, y1)`` grown by ``pad`` px, ``(n,1,S,S)``."""
    t = torch.arange(size)
    x0, y0, x1, y1 = (boxes[:, k, None] for k in range(4))
    p = pad[:, None]
    cols = (t >= x0 - p) & (t < x1 + p)
    rows = (t >= y0 - p) & (t < y1 + p)
    return (rows[:, :, None] & cols[:, None, :]).float().unsqueeze(1)


def training_batch(data, idx: torch.Tensor, gen: torch.Generator, *, target: str,
                   mix: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One batch of the inpainter recipe: images, holes and the target, all pixel space.

    The holes are the same for both targets. ``mix`` = shares of (free-form strokes and boxes
    anywhere, :func:`random_holes`; holes over part of the object, :func:`object_holes`;
    whole-object holes: the silhouette dilated by 0–4 px or the box grown by 0–3 px, half each).
    Inside the hole the target is

    * ``"completion"`` (the paper's generic inpainter "G"): the original image, object included,
      so a hole over part of an object is completed from the part that stays visible. Where the
      hole hides *every* object pixel nothing is left to complete from and the target is the
      true background (a generic inpainter cannot know an object was there; a silhouette-shaped
      hole would otherwise teach it to redraw the shape the hole outlines).
    * ``"removal"``: the true background, whatever part of the object the hole covers.

    Returns:
        ``(images, holes, targets)``: ``(B,3,H,W)``, ``(B,1,H,W)`` in {0,1}, ``(B,3,H,W)``; the
        target equals the image outside the hole. A random flip/rotation per sample.
    """
    bs = len(idx)
    k = torch.randint(8, (bs,), generator=gen)
    img = _dihedral(data.images[idx], k)
    bg = _dihedral(data.backgrounds[idx], k)
    obj = _dihedral(data.masks[idx].float(), k)
    size = img.shape[-1]
    counts = np.floor(np.asarray(mix, dtype=float) / sum(mix) * bs).astype(int)
    counts[0] += bs - counts.sum()
    n_free, n_part, n_whole = counts.tolist()
    n_sil = n_whole // 2
    hole = torch.cat([
        random_holes(n_free, size, gen),
        object_holes(obj[n_free:n_free + n_part], gen),
        dilate(obj[n_free + n_part:n_free + n_part + n_sil],
               torch.randint(0, 5, (n_sil,), generator=gen)),
        box_holes(_tight_boxes(obj[n_free + n_part + n_sil:]), size,
                  torch.randint(0, 4, (n_whole - n_sil,), generator=gen)),
    ])
    if target == "removal":
        tgt = torch.where(hole.bool(), bg, img)
    else:
        hidden = ((obj > 0) & (hole < 0.5)).flatten(1).sum(1) == 0  # no object pixel visible
        tgt = torch.where(hidden.view(-1, 1, 1, 1), bg, img)
    return img, hole, tgt


def _tight_boxes(mask: torch.Tensor) -> torch.Tensor:
    """``(x0, y0, x1, y1)`` (exclusive) tight boxes of ``(n,1,H,W)`` masks."""
    m = mask[:, 0] > 0
    h, w = m.shape[-2:]
    cols, rows = m.any(1), m.any(2)
    ar_w, ar_h = torch.arange(w), torch.arange(h)
    x0 = torch.where(cols, ar_w, w).amin(1)
    x1 = torch.where(cols, ar_w, -1).amax(1) + 1
    y0 = torch.where(rows, ar_h, h).amin(1)
    y1 = torch.where(rows, ar_h, -1).amax(1) + 1
    return torch.stack([x0, y0, x1, y1], 1)


def inpainter_losses(pred: torch.Tensor, target: torch.Tensor, hole: torch.Tensor, cfg: dict):
    """The generator's reconstruction terms (``[-1,1]`` tensors), returned separately.

    * ``l1``: L1 of the *low-passed* error (Gaussian σ = ``cfg["lowpass_sigma"]``) inside the
      hole, plus the plain L1 over the whole image. Pure L1/L2 on the raw fill is minimised by the
      conditional mean, i.e. blur; on the low-passed fill it fixes colour and layout and leaves
      the texture free.
    * ``hf``: the texture term, L1 between the square roots of the local high-frequency energies
      (:func:`local_hf_energy`) of the composite and of the target, inside the hole: the fill
      must carry as much Laplacian energy as the target locally, not the same pixels.
    """
    comp = pred * hole + target * (1 - hole)
    area = hole.sum().clamp_min(1)
    err = pred - target
    low = _gaussian_blur(err, cfg["lowpass_sigma"]).abs()
    l1 = (low * hole).sum() / area / 3 + err.abs().mean()
    e_c = local_hf_energy(comp).add(1e-6).sqrt()
    e_t = local_hf_energy(target).add(1e-6).sqrt()
    hf = ((e_c - e_t).abs() * hole).sum() / area
    return comp, l1, hf


def train_inpainter(
    out: str | os.PathLike | None = None, *, target: str = "completion", progress: bool = False,
    snapshot_every: int = 0, **overrides,
) -> dict:
    """Train a world inpainter (:class:`~kit.nets.LiteInpainter`) and save the checkpoint.

    One recipe for both shipped inpainters; only the target inside the holes differs
    (:func:`training_batch`). Generator losses: ``l1_weight`` × the low-passed L1 and
    ``hf_weight`` × the local high-frequency energy match (:func:`inpainter_losses`), and after
    ``warmup`` iterations ``adv_weight`` × a hinge adversarial loss from a spectral-normalised
    PatchGAN critic (:class:`~kit.nets.PatchDiscriminator`) that sees the composite and the hole.
    Adam (β₁ = 0.5) with a cosine-decayed learning rate; world ``train`` images only; every random
    draw from generators seeded with ``seed``.

    Args:
        out: checkpoint path (default: ``data/world_inpainter.pt`` for completion,
            ``data/world_inpainter_removal.pt`` for removal).
        target: ``"completion"`` or ``"removal"`` (:data:`TARGETS`).
        progress: show a tqdm bar.
        snapshot_every: if > 0, also save the generator every this many iterations to
            ``data/cache/world_inpainter_<target>.snapshot.pt`` (to evaluate a long run early).
        **overrides: any key of :data:`INPAINTER_DEFAULTS`.

    Returns:
        The saved checkpoint dict (``state_dict``, ``config`` (with ``arch`` and ``target``),
        ``train_seconds``, ``losses``).
    """
    from kit.checks import choice
    from kit.models import WORLD_INPAINTER_PATH, WORLD_REMOVAL_INPAINTER_PATH
    from kit.nets import INPAINTER_ARCHS

    target = choice("target", target, TARGETS, "inpainter target")
    unknown = set(overrides) - set(INPAINTER_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown options {sorted(unknown)}; valid: {sorted(INPAINTER_DEFAULTS)}")
    cfg = {**INPAINTER_DEFAULTS, **overrides, "target": target}
    t0 = time.time()
    seed = cfg["seed"]
    gen = torch.Generator().manual_seed(seed)
    cl = torch.channels_last
    with torch.random.fork_rng(devices=[]):  # initialisations draw from the global generator
        torch.manual_seed(seed)
        g_net = INPAINTER_ARCHS[cfg["arch"]](cfg["width"]).to(memory_format=cl)
        d_net = PatchDiscriminator(cfg["d_width"]).to(memory_format=cl)
    data = world.sample(cfg["n_train"], seed + 1000, "train")  # not the classifier's images
    iterations, lr = cfg["iterations"], cfg["lr"]
    g_opt = torch.optim.Adam(g_net.parameters(), lr=lr, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(d_net.parameters(), lr=lr, betas=(0.5, 0.999))
    g_sched = torch.optim.lr_scheduler.CosineAnnealingLR(g_opt, iterations, lr / 20)
    d_sched = torch.optim.lr_scheduler.CosineAnnealingLR(d_opt, iterations, lr / 20)
    losses: list[float] = []
    bar = tqdm(range(iterations), disable=not progress, desc=f"inpainter ({target})")
    for it in bar:
        idx = torch.randint(len(data), (cfg["batch_size"],), generator=gen)
        img, hole, tgt = training_batch(data, idx, gen, target=target, mix=cfg["hole_mix"])
        x = (img * 2 - 1).contiguous(memory_format=cl)
        tgt = (tgt * 2 - 1).contiguous(memory_format=cl)
        hole = hole.contiguous(memory_format=cl)
        pred = g_net(x, hole)
        comp, l1, hf = inpainter_losses(pred, tgt, hole, cfg)
        g_loss = cfg["l1_weight"] * l1 + cfg["hf_weight"] * hf
        use_adv = it >= cfg["warmup"] and cfg["adv_weight"] > 0
        if use_adv:  # critic step on detached composites (hinge loss)
            d_loss = F.relu(1 - d_net(tgt, hole)).mean() + F.relu(
                1 + d_net(comp.detach(), hole)).mean()
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()
            g_loss = g_loss - cfg["adv_weight"] * d_net(comp, hole).mean()
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        g_sched.step()
        with warnings.catch_warnings():  # the critic's schedule counts the warmup too, on purpose
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
            d_sched.step()
        losses.append(l1.item())
        bar.set_postfix(l1=f"{np.mean(losses[-50:]):.3f}", hf=f"{hf.item():.3f}", refresh=False)
        if snapshot_every and (it + 1) % snapshot_every == 0 and it + 1 < iterations:
            # a snapshot in the cache (never the shipped path) to inspect long runs early
            from kit.paths import CACHE_DIR

            save_atomic({"state_dict": g_net.state_dict(), "config": cfg, "iteration": it + 1,
                         "seconds": time.time() - t0},
                        CACHE_DIR / f"world_inpainter_{target}.snapshot.pt")
    ckpt = {
        "state_dict": {kk: v.contiguous() for kk, v in g_net.state_dict().items()},
        "config": cfg,
        "train_seconds": time.time() - t0,
        "losses": losses[:: max(1, len(losses) // 200)],
    }
    default = WORLD_REMOVAL_INPAINTER_PATH if target == "removal" else WORLD_INPAINTER_PATH
    save_atomic(ckpt, out or default)
    return ckpt


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m kit.train", description=__doc__.split("\n")[0])
    parser.add_argument("model", choices=["classifier", "inpainter"])
    parser.add_argument("--out", default=None, help="checkpoint path (default: data/world_*.pt)")
    parser.add_argument("--target", choices=TARGETS, default="completion",
                        help="inpainter: what fills the holes (default completion)")
    parser.add_argument("--iterations", type=int, default=None, help="inpainter iterations")
    parser.add_argument("--epochs", type=int, default=None, help="classifier epochs")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--snapshot-every", type=int, default=0,
                        help="inpainter: save a snapshot to data/cache every N iterations")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model == "classifier":
        kw = {} if args.epochs is None else {"epochs": args.epochs}
        ckpt = train_world_classifier(args.out, progress=not args.quiet, **kw)
        print(f"val accuracy {ckpt['val_accuracy']:.4f} in {ckpt['train_seconds']:.0f} s")
    else:
        kw = {} if args.iterations is None else {"iterations": args.iterations}
        ckpt = train_inpainter(
            args.out, target=args.target, progress=not args.quiet,
            snapshot_every=args.snapshot_every, **kw,
        )
        print(f"final L1 {np.mean(ckpt['losses'][-10:]):.4f} in {ckpt['train_seconds']:.0f} s")


if __name__ == "__main__":
    main()
