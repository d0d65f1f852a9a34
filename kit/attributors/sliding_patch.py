"""Sliding patch (SP) and SP-G: Zeiler & Fergus occlusion with any remover (methods.md §3.1).

For patch side ``window`` = p and ``stride`` = s there are ``n = (H - p) // s + 1`` positions per
axis (GAM's count; Captum's ``Occlusion`` uses ``ceil``, methods.md pitfall 18). Position
``(r, c)`` (row-major) removes the p x p square with top-left ``(r s, c s)``:

    A[r, c] = S_t(x) - S_t(R(x, K_rc))

with ``S_t`` the target's ``score`` (default the softmax probability) and ``R`` the remover
(``"gray"``: SP; ``"inpaint"``: SP-G). Positive = the patch is evidence for the target. The map
is the ``(N,1,n_h,n_w)`` grid of patch **top-left** positions; for pixel-level use call
``kit.masks.upsample(sal, H, mode="coverage", window=p, stride=s)``, which equals Captum
``Occlusion`` on the same geometry when ``(H - p) % s == 0`` (tests).

Cost: ``n_h * n_w`` forward passes per image (841 at 64/8/2, 4356 at 224/29/3), and as many
inpaintings for SP-G. Masks are built ``batch_size`` at a time and go through the remover and
the model as one batch; forwards run under ``torch.inference_mode``, on channels-last
composites when on the CPU (:func:`model_input`).

**Local inpainting** (``local=True``): each patch is filled from a crop of side
``window + 2 * margin`` (clipped to the image, shifted inward at the borders) around it; the
filled crop is pasted back into the full image before classification. This is exact whenever the
remover's fill inside the hole depends only on pixels within ``margin`` of the hole, with zero
or reflect padding at the image border treated alike in crop and image (gray always; a
fully convolutional inpainter whose receptive field is at most ``margin``). For a deep
inpainter with a larger receptive field it is an approximation that trades context for speed:
the inpainter sees ``(p + 2 margin)^2`` instead of ``H W`` pixels per mask (at 64/8/2 with the
default margin: 24x24 instead of 64x64, about 7x fewer pixels). Removers whose fill is tied to
the full image (``noise``, ``precomputed``, ``oracle``) are refused.

Usage::

    from kit.attributors.sliding_patch import sliding_patch
    from kit.masks import upsample
    sal = sliding_patch(clf, x, y)                                  # SP, (N,1,29,29) at 64x64
    sal_g = sliding_patch(clf, x, y, remover="inpaint", local=True)  # SP-G, local crops
    pix = upsample(sal, 64, mode="coverage", window=8, stride=2)     # (N,1,64,64)
"""

from __future__ import annotations

import torch

from kit.attributors._common import check_inputs, model_guard
from kit.checks import boolean, positive_int
from kit.defaults import resolve
from kit.engine import BATCH_SIZE, batched_scores, check_score, score_masks
from kit.masks import SlidingWindows
from kit.removers import Noise, Precomputed, get_remover


def _geometry(x: torch.Tensor, window, stride) -> tuple[int, int]:
    side = min(x.shape[-2:])
    window = resolve("sp_window", side) if window is None else window
    stride = resolve("sp_stride", side) if stride is None else stride
    positive_int("window", window)
    positive_int("stride", stride)
    return window, stride


def masks(x: torch.Tensor, *, window: int | None = None, stride: int | None = None,
          local: bool = False, margin: int | None = None, **_params) -> SlidingWindows:
    """The mask set SP uses on images like ``x``: the windows it removes, local or not."""
    window, stride = _geometry(x, window, stride)
    return SlidingWindows(tuple(x.shape[-2:]), window, stride, local=local, margin=margin)


def geometry(size: tuple[int, int], *, window: int | None = None, stride: int | None = None,
             **_params) -> dict:
    """How an SP grid reaches pixels: ``coverage`` with the run's window and stride."""
    side = min(size)
    window = resolve("sp_window", side) if window is None else window
    stride = resolve("sp_stride", side) if stride is None else stride
    return {"mode": "coverage", "window": int(window), "stride": int(stride)}


def sliding_patch(model, x: torch.Tensor, target, *, remover="gray", seed: int = 0,
                  batch_size: int = BATCH_SIZE, progress: bool = False,
                  window: int | None = None, stride: int | None = None, score: str = "prob",
                  local: bool = False, margin: int | None = None) -> torch.Tensor:
    """Sliding-patch occlusion map: score drop when each patch is removed.

    Args:
        model: pixel-space :class:`~kit.models.Classifier`.
        x: ``(N,3,H,W)`` float images in [0,1].
        target: int or ``(N,)`` long, the explained class.
        remover: a :mod:`kit.removers` name or object; ``"gray"`` (SP, the classifier's mean
            colour) or ``"inpaint"`` (SP-G).
        window, stride: patch side and step in pixels; None = ``kit.defaults`` for the image
            size (29 / 3 at 224, 8 / 2 at 64).
        score: ``"prob"`` (default), ``"logit"`` or ``"logprob"``.
        batch_size: masks per remover call and forward pass.
        progress: show a tqdm bar.
        seed: accepted for the uniform signature; SP is deterministic.
        local: fill each patch from a local crop (see the module docstring).
        margin: crop margin around the patch for ``local=True``; None = ``window``.

    Returns:
        ``(N,1,n_h,n_w)`` float32 score drops on the patch grid (top-left indexed), on
        ``x.device``.

    Raises:
        ValueError / TypeError naming the bad argument (e.g. a window larger than the image,
        an unknown remover, ``local=True`` with an image-bound remover).
    """
    t = check_inputs(model, x, target)
    check_score(score)
    positive_int("batch_size", batch_size)
    window, stride = _geometry(x, window, stride)
    rem = get_remover(remover, model=model, size=tuple(x.shape[-2:]))
    boolean("local", local)
    if local:
        margin = window if margin is None else margin
        positive_int("margin", margin, 0)
        if isinstance(rem, (Precomputed, Noise)):
            raise ValueError(
                f"local=True needs a remover whose fill is local (gray, blur, telea, ns, "
                f"inpaint); {rem.name!r} is tied to the full image"
            )
    elif margin is not None:
        raise ValueError("margin is only used with local=True")
    windows = masks(x, window=window, stride=stride, local=local, margin=margin)
    with model_guard(model):
        x = x.detach()
        p0 = batched_scores(model, x, t, score, batch_size).double()
        s = score_masks(model, x, t, windows, rem, score=score, batch_size=batch_size,
                        progress=progress, desc="sliding_patch")
    return (p0[:, None] - s).float().reshape(x.shape[0], 1, *windows.grid).clone()
