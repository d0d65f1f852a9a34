"""RISE: randomised input sampling with any remover (methods.md §3.7; pitfalls 21, 22).

    S(u) = 1 / (N p) * sum_i S_t(R(x, M_i)) * M_i(u)

with N = ``n_masks`` soft keep-masks M_i from :func:`kit.masks.rise_masks` (``s x s`` binary
grid, cell kept with probability ``p``, bilinear upsampling to ``(s+1) ceil(H/s)`` with RISE's
skimage boundary rule, random shift, crop), ``S_t`` the target's ``score`` (default the softmax
probability) and ``R`` the remover (``"gray"``: RISE, the soft composite ``x M + c (1 - M)``;
``"inpaint"``: RISE-G, the adapter thresholds each batch of soft masks with its ``threshold``
rule and composites with the soft mask). The normalisation is RISE's ``RISE`` class (1/(N p));
TorchRay divides by N only and applies a sigmoid (pitfall 21).

The same N masks (drawn once from ``seed``) serve every image of the batch; masks are built
``batch_size`` at a time, never all at once, and each batch goes through the remover and the model
in one call under ``torch.inference_mode``. Cost: N forward passes per image (and N inpaintings
for RISE-G).

Usage::

    from kit.attributors.rise import rise
    sal = rise(clf, x, y)                      # (N,1,H,W), >= 0 for score="prob"
"""

from __future__ import annotations

import torch
from tqdm import tqdm  # plain bars: tqdm.auto warns without ipywidgets

from kit.attributors._common import (
    check_inputs,
    check_positive_int,
    check_score,
    class_score,
    model_guard,
)
from kit.attributors.sliding_patch import model_input
from kit.masks import RiseMasks
from kit.removers import get_remover

BATCH_SIZE = 64
"""Default masks per remover call and forward pass."""


def rise(model, x: torch.Tensor, target, *, remover="gray", n_masks: int = 4000, s: int = 7,
         p: float = 0.5, score: str = "prob", seed: int = 0, batch_size: int = BATCH_SIZE,
         progress: bool = False) -> torch.Tensor:
    """RISE saliency: score-weighted mean of random keep-masks.

    Args:
        model: pixel-space :class:`~kit.models.Classifier`.
        x: ``(N,3,H,W)`` float images in [0,1].
        target: int or ``(N,)`` long, the explained class.
        remover: a :mod:`kit.removers` name or object (``"gray"``: RISE; ``"inpaint"``: RISE-G).
        n_masks: number of masks N (project choice 4000).
        s: grid cells per side (7).
        p: probability of keeping a cell (0.5).
        score: ``"prob"`` (default), ``"logit"`` or ``"logprob"``.
        seed: seed of the private mask generator.
        batch_size: masks per remover call and forward pass.
        progress: show a tqdm bar.

    Returns:
        ``(N,1,H,W)`` float32 on ``x.device``.
    """
    t = check_inputs(model, x, target)
    check_score(score)
    check_positive_int("batch_size", batch_size)
    check_positive_int("n_masks", n_masks)
    check_positive_int("s", s)
    n, (H, W) = x.shape[0], x.shape[-2:]
    masks = RiseMasks(n_masks, (H, W), s, p, seed)
    rem = get_remover(remover, model=model)
    total = torch.zeros(n, H * W, dtype=torch.float64, device=x.device)
    starts = range(0, n_masks, batch_size)
    bar = tqdm(total=len(starts), disable=not progress, desc="rise", leave=False)
    with model_guard(model), torch.inference_mode(), bar:
        x = x.detach()
        for start in starts:
            idx = torch.arange(start, min(start + batch_size, n_masks))
            m = masks.build(idx, device=x.device, dtype=x.dtype)  # (B,1,H,W)
            flat = m.reshape(idx.shape[0], H * W).double()
            for i in range(n):
                xt = model_input(rem(x[i : i + 1], m))
                sc = class_score(model(xt), t[i].expand(idx.shape[0]), score)
                total[i] += sc.double() @ flat
            bar.update()
    sal = total / (n_masks * masks.p)
    return sal.float().reshape(n, 1, H, W).clone()
