"""The perturbation engine: masks × remover × model → scores (XAITK's split, as functions).

Every perturbation method in kit is a **mask set** (which pixels each perturbed copy keeps) plus a
**reduction** of the scores the classifier gives those copies:

===================  =========================================  ================================
method / metric      mask set                                   reduction
===================  =========================================  ================================
SP / SP-G            :class:`kit.masks.SlidingWindows`          ``S(x) - S(copy)`` per window
RISE / RISE-G        :class:`kit.masks.RiseMasks`               score-weighted mean of masks
LIME / LIME-G        :class:`kit.masks.Coalitions` (LIME draw)  weighted ridge on coalitions
KernelSHAP(-G)       :class:`kit.masks.Coalitions` (Shapley)    constrained weighted regression
deletion/insertion   :class:`kit.masks.TopFraction`             the curve and its AUC
ROAR/KAR, GAD, 07    :class:`kit.masks.TopFraction`             modified data / top-q / views
===================  =========================================  ================================

:func:`score_masks` owns the loop that all of them share: it streams the ``N × K`` (image, mask)
jobs image-major in chunks of ``batch_size``, builds each chunk's keep-masks, composites them with
the remover (per-image fills such as the oracle's are sliced with :meth:`Remover.take`), runs one
forward pass per chunk under ``torch.inference_mode`` on channels-last composites
(:func:`model_input`), and returns the ``(N, K)`` scores. A mask set is any object with
``__len__`` (K, the masks per image), ``build(index, *, image, device, dtype) -> (B,1,H,W)`` keep
masks and optionally ``composites(remover, x, image, index) -> (B,3,H,W)`` when it composites
itself (SP's local crops).

Usage::

    from kit.engine import score_masks
    from kit.masks import SlidingWindows
    s = score_masks(clf, x, y, SlidingWindows((64, 64), 8, 2), get_remover("gray", model=clf))
"""

from __future__ import annotations

import torch
from tqdm import tqdm  # plain bars: tqdm.auto warns without ipywidgets

from kit.checks import images, positive_int

__all__ = ["BATCH_SIZE", "SCORES", "model_input", "class_score", "check_score", "batched_scores",
           "score_masks"]

BATCH_SIZE = 32
"""Default images per chunk of every batched call in kit: composites per remover call and forward
pass, gradients per backward pass, images per metric forward pass and inpainter call.

On the CPU the world classifier's passes cost the least per image at 16-64 images and 2-3x more
at 256 (their activations stop fitting in cache; the inpainter's cost is flat), and whole maps
are fastest at 16-64 (``benchmarks/batch_size.py``, ``benchmarks/results/batch_size.md``). A GPU
wants larger chunks: pass ``batch_size``."""

SCORES = ("prob", "logit", "logprob")
"""The explained scalar: softmax probability, logit or log-probability of the target."""


def model_input(x: torch.Tensor) -> torch.Tensor:
    """Composites laid out for the forward pass: channels-last on the CPU, unchanged elsewhere.

    Same values, another memory layout: oneDNN's CPU convolutions run faster on channels-last
    inputs (measured 1.5x on the world classifier, 1.2x on ResNet-50, see
    ``benchmarks/attributors.py``).
    """
    return x.contiguous(memory_format=torch.channels_last) if x.device.type == "cpu" else x


def check_score(score: str) -> str:
    """Raise unless ``score`` is one of :data:`SCORES`."""
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}, got {score!r}")
    return score


def class_score(logits: torch.Tensor, target: torch.Tensor, score: str = "prob") -> torch.Tensor:
    """The explained scalar per row: softmax probability, logit or log-probability of ``target``.

    Args:
        logits: ``(B,C)``; target: ``(B,)`` long.
    """
    if score == "prob":
        vals = logits.softmax(1)
    elif score == "logprob":
        vals = logits.log_softmax(1)
    elif score == "logit":
        vals = logits
    else:
        check_score(score)
    return vals.gather(1, target.view(-1, 1)).squeeze(1)


@torch.inference_mode()
def batched_scores(model, x: torch.Tensor, target: torch.Tensor, score: str = "prob",
                   batch_size: int = BATCH_SIZE) -> torch.Tensor:
    """``class_score`` of ``model`` on many unperturbed images, ``batch_size`` per forward pass.

    Args:
        x: ``(B,3,H,W)``; target: ``(B,)`` or ``(1,)`` (broadcast).

    Returns:
        ``(B,)`` scores.
    """
    out = []
    for i in range(0, x.shape[0], batch_size):
        chunk = x[i : i + batch_size]
        t = target.expand(x.shape[0])[i : i + batch_size]
        out.append(class_score(model(model_input(chunk)), t, score))
    return torch.cat(out)


def score_masks(model, x: torch.Tensor, target: torch.Tensor, masks, remover, *,
                score: str = "prob", batch_size: int = BATCH_SIZE, progress: bool = False,
                desc: str = "masks", on_batch=None) -> torch.Tensor:
    """Scores of ``model`` on every (image, mask) composite: the shared perturbation loop.

    Args:
        model: pixel-space classifier (already in eval mode; run under ``inference_mode``).
        x: ``(N,3,H,W)`` images in [0,1].
        target: ``(N,)`` long targets on ``x.device``.
        masks: a mask set (see the module docstring) with K masks per image.
        remover: a built :class:`kit.removers.Remover` (per-image data aligned with ``x``).
        score: ``"prob"``, ``"logit"`` or ``"logprob"``.
        batch_size: composites per remover call and forward pass; chunks may span images.
        progress: a tqdm bar over chunks.
        desc: the bar's label.
        on_batch: optional ``f(image, index, keep, scores)`` called per chunk with ``(B,)``
            image and mask indices, the ``(B,1,H,W)`` keep-masks and the ``(B,)`` scores (RISE
            accumulates its weighted masks there instead of building them twice).

    Returns:
        ``(N, K)`` float64 scores on ``x.device``.
    """
    images("x", x)
    positive_int("batch_size", batch_size)
    check_score(score)
    n, k = x.shape[0], len(masks)
    total = n * k
    out = torch.empty(total, dtype=torch.float64, device=x.device)
    composites = getattr(masks, "composites", None)
    starts = range(0, total, batch_size)
    with torch.inference_mode():
        for start in tqdm(starts, desc=desc, disable=not progress, leave=False):
            job = torch.arange(start, min(start + batch_size, total), device=x.device)
            img, idx = job // k, job % k
            if composites is not None:
                keep = None
                xt = composites(remover, x, img, idx)
            else:
                keep = masks.build(idx, image=img, device=x.device, dtype=x.dtype)
                one = bool((img == img[0]).all())  # one image against many masks: broadcast
                xt = remover.take(img[:1] if one else img)(x[img[:1]] if one else x[img], keep)
            s = class_score(model(model_input(xt)), target[img], score)
            out[job] = s.double()
            if on_batch is not None:
                on_batch(img, idx, keep, s)
    return out.view(n, k)
