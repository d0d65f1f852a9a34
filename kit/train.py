"""Training of the embedded world's classifier and inpainter (reproducible with a fixed seed).

Command line (what ``00_world.ipynb`` runs with ``train=True``)::

    python -m kit.train classifier            # -> data/world_classifier.pt (~10 min on 2 cores)
    python -m kit.train inpainter             # -> data/world_inpainter.pt (~45 min on 2 cores)
    python -m kit.train inpainter --out /tmp/inp.pt --iterations 200   # a quick smoke run

:func:`train_classifier` is the classifier recipe on given tensors (ROAR's retrainings use it);
:func:`train_world_classifier` runs it on world ``train`` images and saves the shipped checkpoint.
The world trainers draw data only from the world's ``train`` split, use a private
``torch.Generator`` for every random choice, and write their checkpoint atomically (in memory, then
:func:`kit.cache.write_atomic_bytes`), as a plain dict of tensors and literals that
``torch.load(..., weights_only=True)`` accepts.

Inpainter training (DeepFill v2 recipe, scaled to 64×64 and a CPU budget):

* **Holes.** Half of each batch gets free-form brush strokes and boxes on world images (the target
  is the image itself, as in any inpainter's training); the other half gets the object's own
  silhouette, dilated by 0–4 px, with the true background as the target. The second half is a
  **project choice**: it teaches exactly the removal task the explanations use, the way LaMa
  tailors its mask generator to its use.
* **Losses.** L1 reconstruction (hole pixels weighted 6×, as in partial-convolution training)
  plus a hinge adversarial loss from a spectral-normalised PatchGAN critic (weight ``adv_weight``),
  switched on after ``warmup`` iterations of L1 alone.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from kit import world
from kit.nets import GatedInpainter, PatchDiscriminator, WorldCNN

CLASSIFIER_DEFAULTS = dict(
    n_train=30000, n_val=1000, epochs=4, batch_size=64, lr=3e-3, width=24, weight_decay=5e-4,
    seed=0,
)
INPAINTER_DEFAULTS = dict(
    n_train=12000, iterations=3000, batch_size=24, lr=1e-3, width=24, adv_weight=0.01,
    warmup=800, seed=0, ft_iterations=1000, ft_lr=3e-4, ft_object_share=0.75,
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


def random_holes(n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """Free-form training holes: brush strokes and boxes, ``(n,1,size,size)`` float in {0,1}.

    Strokes follow DeepFill v2's generator scaled to the image size: a few random walks of
    thick line segments; half of the masks also get one box of 15–50% of the side.
    """
    import cv2

    seeds = torch.randint(2**31 - 1, (n,), generator=gen).tolist()
    out = np.zeros((n, size, size), np.uint8)
    for i, s in enumerate(seeds):  # cv2 draws one mask at a time; microseconds each
        rng = np.random.default_rng(s)
        for _ in range(rng.integers(1, 4)):
            x, y = rng.uniform(0, size, 2)
            width = int(rng.uniform(0.06, 0.16) * size)
            for _ in range(rng.integers(2, 6)):
                angle = rng.uniform(0, 2 * math.pi)
                length = rng.uniform(0.1, 0.35) * size
                nx = float(np.clip(x + length * math.cos(angle), 0, size - 1))
                ny = float(np.clip(y + length * math.sin(angle), 0, size - 1))
                cv2.line(out[i], (int(x), int(y)), (int(nx), int(ny)), 1, width)
                x, y = nx, ny
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


def _inpainter_stage(
    g_net: torch.nn.Module, data, cfg: dict, *, iterations: int, lr: float, warmup: int,
    object_share: float, seed: int, progress: bool, desc: str, snapshot_every: int = 0,
    t0: float = 0.0, reseed_global: bool = True,
) -> list[float]:
    """One training stage: a fresh critic and fresh optimisers, cosine-decayed learning rate.

    Every random draw comes from a generator seeded with ``seed``; the critic's initialisation
    from the global generator, seeded with ``seed`` just before it is built when
    ``reseed_global`` (stage 1 instead continues right after the generator's initialisation).
    """
    gen = torch.Generator().manual_seed(seed)
    if reseed_global:
        torch.manual_seed(seed)
    cl = torch.channels_last
    d_net = PatchDiscriminator(32).to(memory_format=cl)
    g_opt = torch.optim.Adam(g_net.parameters(), lr=lr, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(d_net.parameters(), lr=lr, betas=(0.5, 0.999))
    g_sched = torch.optim.lr_scheduler.CosineAnnealingLR(g_opt, iterations, lr / 20)
    bs = cfg["batch_size"]
    n_free = bs - round(bs * object_share)  # the first n_free samples get free-form holes
    size = data.images.shape[-1]
    losses = []
    bar = tqdm(range(iterations), disable=not progress, desc=desc)
    for it in bar:
        idx = torch.randint(len(data), (bs,), generator=gen)
        k = torch.randint(8, (bs,), generator=gen)
        img = _dihedral(data.images[idx], k)
        bg = _dihedral(data.backgrounds[idx], k)
        obj = _dihedral(data.masks[idx].float(), k)
        hole = torch.cat([
            random_holes(n_free, size, gen),
            dilate(obj[n_free:], torch.randint(0, 5, (bs - n_free,), generator=gen)),
        ])
        # free-form holes reconstruct the image; object holes must give the true background
        target = torch.cat([img[:n_free], bg[n_free:]]) * 2 - 1
        x = (img * 2 - 1).contiguous(memory_format=cl)
        hole = hole.contiguous(memory_format=cl)
        pred = g_net(x, hole)
        comp = pred * hole + target * (1 - hole)
        use_adv = it >= warmup
        if use_adv:  # critic step on detached composites (hinge loss)
            d_loss = F.relu(1 - d_net(target, hole)).mean() + F.relu(
                1 + d_net(comp.detach(), hole)
            ).mean()
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()
        err = (pred - target).abs()
        l1 = (err * hole).sum() / hole.sum().clamp_min(1) / 3 * 6 + err.mean()
        g_loss = l1 - cfg["adv_weight"] * d_net(comp, hole).mean() if use_adv else l1
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        g_sched.step()
        losses.append(l1.item())
        bar.set_postfix(l1=f"{np.mean(losses[-50:]):.3f}", refresh=False)
        if snapshot_every and (it + 1) % snapshot_every == 0 and it + 1 < iterations:
            # a snapshot in the cache (never the shipped path) to inspect long runs early
            from kit.paths import CACHE_DIR

            save_atomic({"state_dict": g_net.state_dict(), "config": cfg, "stage": desc,
                         "iteration": it + 1, "seconds": time.time() - t0},
                        CACHE_DIR / "world_inpainter.snapshot.pt")
    return losses


def train_inpainter(
    out: str | os.PathLike | None = None, *, progress: bool = False, snapshot_every: int = 0,
    init: str | os.PathLike | None = None, **overrides,
) -> dict:
    """Train :class:`~kit.nets.GatedInpainter` on world ``train`` images and save the checkpoint.

    Two stages: ``iterations`` with half free-form / half object-removal holes (the critic joins
    after ``warmup``), then ``ft_iterations`` of fine-tuning with a fresh critic and a larger
    object-removal share ``ft_object_share`` at learning rate ``ft_lr``.

    Args:
        out: checkpoint path (default ``data/world_inpainter.pt``).
        progress: show tqdm bars.
        snapshot_every: if > 0, also save the generator every this many iterations to
            ``data/cache/world_inpainter.snapshot.pt`` (to evaluate a long run early).
        init: a checkpoint of this configuration's first stage (``stage1_state_dict`` of a saved
            checkpoint, or a snapshot saved at the end of stage 1): skip stage 1 and run stage 2
            only. Stage 2 draws from its own seeds, so the result equals a full run's bits.
        **overrides: any key of :data:`INPAINTER_DEFAULTS`.

    Returns:
        The saved checkpoint dict (``state_dict``, ``config``, ``train_seconds``, ``losses``).
    """
    from kit.models import WORLD_INPAINTER_PATH, load_state

    cfg = {**INPAINTER_DEFAULTS, **overrides}
    unknown = set(overrides) - set(INPAINTER_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown options {sorted(unknown)}; valid: {sorted(INPAINTER_DEFAULTS)}")
    t0 = time.time()
    torch.manual_seed(cfg["seed"])  # weight initialisation draws from the global generator
    g_net = GatedInpainter(cfg["width"]).to(memory_format=torch.channels_last)
    data = world.sample(cfg["n_train"], cfg["seed"] + 1000, "train")  # not the classifier's images
    losses: list[float] = []
    if init is None:
        losses += _inpainter_stage(
            g_net, data, cfg, iterations=cfg["iterations"], lr=cfg["lr"], warmup=cfg["warmup"],
            object_share=0.5, seed=cfg["seed"], progress=progress, desc="inpainter",
            snapshot_every=snapshot_every, t0=t0, reseed_global=False,
        )
    else:
        state = load_state(init, "inpainter stage-1", "Pass a checkpoint saved by this function.")
        g_net.load_state_dict(state.get("stage1_state_dict", state["state_dict"]))
    stage1 = {kk: v.clone().contiguous() for kk, v in g_net.state_dict().items()}
    if cfg["ft_iterations"]:
        losses += _inpainter_stage(
            g_net, data, cfg, iterations=cfg["ft_iterations"], lr=cfg["ft_lr"], warmup=0,
            object_share=cfg["ft_object_share"], seed=cfg["seed"] + 1, progress=progress,
            desc="inpainter fine-tune", snapshot_every=snapshot_every, t0=t0,
        )
    ckpt = {
        "state_dict": {kk: v.contiguous() for kk, v in g_net.state_dict().items()},
        "config": cfg,
        "train_seconds": time.time() - t0,
        "losses": losses[:: max(1, len(losses) // 200)],
    }
    if cfg["ft_iterations"]:
        ckpt["stage1_state_dict"] = stage1
    save_atomic(ckpt, out or WORLD_INPAINTER_PATH)
    return ckpt


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m kit.train", description=__doc__.split("\n")[0])
    parser.add_argument("model", choices=["classifier", "inpainter"])
    parser.add_argument("--out", default=None, help="checkpoint path (default: data/world_*.pt)")
    parser.add_argument("--iterations", type=int, default=None, help="inpainter iterations")
    parser.add_argument("--epochs", type=int, default=None, help="classifier epochs")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--init", default=None,
                        help="inpainter: stage-1 checkpoint; run the fine-tuning stage only")
    parser.add_argument("--snapshot-every", type=int, default=0,
                        help="inpainter: save a snapshot to data/cache every N iterations")
    args = parser.parse_args(argv)
    if args.model == "classifier":
        kw = {} if args.epochs is None else {"epochs": args.epochs}
        ckpt = train_world_classifier(args.out, progress=not args.quiet, **kw)
        print(f"val accuracy {ckpt['val_accuracy']:.4f} in {ckpt['train_seconds']:.0f} s")
    else:
        kw = {} if args.iterations is None else {"iterations": args.iterations}
        ckpt = train_inpainter(
            args.out, progress=not args.quiet, snapshot_every=args.snapshot_every,
            init=args.init, **kw,
        )
        print(f"final L1 {np.mean(ckpt['losses'][-10:]):.4f} in {ckpt['train_seconds']:.0f} s")


if __name__ == "__main__":
    main()
