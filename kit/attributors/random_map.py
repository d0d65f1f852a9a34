"""The random baseline: a uniform random map that ignores the model (registered as ``"random"``).

Each image gets ``U[0,1)`` values from a private CPU ``torch.Generator`` seeded with a hash of
``seed`` and the image's pixels (as float32), so

* the global RNG is neither read nor advanced (methods.md §1.4);
* a call is deterministic, and a batch gives the same maps as its images one at a time;
* different images get independent maps (a fixed map shared by all images would bias
  dataset-level metrics), identical images the same map.

Usage::

    from kit.attributors.random_map import random_baseline
    sal = random_baseline(clf, x, target, seed=0)            # (N,1,H,W)
    sal = random_baseline(clf, x, target, size=8)            # (N,1,8,8)
"""

from __future__ import annotations

import hashlib

import torch

from kit.attributors._common import check_inputs, no_remover
from kit.checks import size2


def _size(size, x: torch.Tensor) -> tuple[int, int]:
    if size is None:
        return int(x.shape[-2]), int(x.shape[-1])
    return size2("size", size)


def _image_seed(seed: int, image: torch.Tensor) -> int:
    h = hashlib.blake2b(digest_size=8)
    h.update(int(seed).to_bytes(16, "little", signed=True))
    h.update(image.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return int.from_bytes(h.digest(), "little") & ((1 << 63) - 1)


def random_baseline(model, x: torch.Tensor, target, *, remover=None, seed: int = 0,
                    size: int | tuple[int, int] | None = None, batch_size: int | None = None,
                    progress: bool = False) -> torch.Tensor:
    """Uniform random map per image, independent of the model and target.

    Args:
        model: the classifier (only used to validate ``target``).
        x: ``(N,3,H,W)`` float images in [0,1].
        target: int or ``(N,)`` long (validated, otherwise unused).
        seed: base seed; each image's generator is seeded with a hash of (seed, image).
        size: the map's grid: None = (H, W), an int n = (n, n), or (h, w).
        batch_size: accepted for the uniform attributor signature (callers such as
            :func:`kit.mapcache.compute_maps` pass it to every method); no forward pass is run,
            so it has no effect.
        progress: accepted for the same reason; there is nothing long to show.

    Returns:
        ``(N,1,h,w)`` float32 in [0,1) on ``x.device``.
    """
    no_remover("random", remover)
    check_inputs(model, x, target)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    h, w = _size(size, x)
    maps = [
        torch.rand((1, h, w), generator=torch.Generator().manual_seed(_image_seed(seed, img)))
        for img in x
    ]
    return torch.stack(maps).to(x.device)
