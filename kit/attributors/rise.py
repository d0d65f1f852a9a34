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

from kit.attributors._common import check_inputs, model_guard
from kit.checks import positive_int
from kit.engine import BATCH_SIZE, check_score, score_masks
from kit.masks import RiseMasks
from kit.removers import get_remover


def masks(x: torch.Tensor, *, n_masks: int = 4000, s: int = 7, p: float = 0.5, seed: int = 0,
          **_params) -> RiseMasks:
    """The mask set RISE uses on images like ``x`` (the same N masks for every image)."""
    return RiseMasks(positive_int("n_masks", n_masks), tuple(x.shape[-2:]),
                     positive_int("s", s), p, seed)


def rise(model, x: torch.Tensor, target, *, remover="gray", seed: int = 0,
         batch_size: int = BATCH_SIZE, progress: bool = False, n_masks: int = 4000, s: int = 7,
         p: float = 0.5, score: str = "prob") -> torch.Tensor:
    """RISE saliency: score-weighted mean of random keep-masks.

    Args:
        model: pixel-space :class:`~kit.models.Classifier`.
        x: ``(N,3,H,W)`` float images in [0,1].
        target: int or ``(N,)`` long, the explained class.
        remover: a :mod:`kit.removers` name or object (``"gray"``: RISE; ``"inpaint"``: RISE-G).
        seed: seed of the private mask generator.
        batch_size: masks per remover call and forward pass.
        progress: show a tqdm bar.
        n_masks: number of masks N (project choice 4000).
        s: grid cells per side (7).
        p: probability of keeping a cell (0.5).
        score: ``"prob"`` (default), ``"logit"`` or ``"logprob"``.

    Returns:
        ``(N,1,H,W)`` float32 on ``x.device``.
    """
    t = check_inputs(model, x, target)
    check_score(score)
    positive_int("batch_size", batch_size)
    mset = masks(x, n_masks=n_masks, s=s, p=p, seed=seed)
    n, (H, W) = x.shape[0], x.shape[-2:]
    rem = get_remover(remover, model=model, size=(H, W))
    total = torch.zeros(n, H * W, dtype=torch.float64, device=x.device)

    def accumulate(img, idx, keep, sc):  # sum_i S_t(R(x, M_i)) M_i(u), without a second build
        total.index_add_(0, img, sc.double()[:, None] * keep.reshape(-1, H * W).double())

    # Chunks never mix images when batch_size divides n_masks; either way the sums are the
    # same up to float64 summation order.
    with model_guard(model):
        score_masks(model, x.detach(), t, mset, rem, score=score, batch_size=batch_size,
                    progress=progress, desc="rise", on_batch=accumulate)
    sal = total / (n_masks * mset.p)
    return sal.float().reshape(n, 1, H, W).clone()
