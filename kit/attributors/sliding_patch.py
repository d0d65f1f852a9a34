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
from tqdm import tqdm  # plain bars: tqdm.auto warns without ipywidgets

from kit.attributors._common import (
    batched_scores,
    check_inputs,
    check_positive_int,
    check_score,
    class_score,
    model_guard,
)
from kit.defaults import resolve
from kit.masks import grid_shape, window_masks
from kit.removers import Noise, Precomputed, get_remover

BATCH_SIZE = 64
"""Default masks per remover call and forward pass."""


def model_input(x: torch.Tensor) -> torch.Tensor:
    """Composites laid out for the forward pass: channels-last on the CPU, unchanged elsewhere.

    Same values, another memory layout: oneDNN's CPU convolutions run faster on channels-last
    inputs (measured 1.5x on the world classifier, 1.2x on ResNet-50, see
    ``benchmarks/attributors.py``). Shared by the perturbation attributors.
    """
    return x.contiguous(memory_format=torch.channels_last) if x.device.type == "cpu" else x


def _geometry(x: torch.Tensor, window, stride) -> tuple[int, int]:
    side = min(x.shape[-2:])
    window = resolve("sp_window", side) if window is None else window
    stride = resolve("sp_stride", side) if stride is None else stride
    check_positive_int("window", window)
    check_positive_int("stride", stride)
    return window, stride


def geometry(size: tuple[int, int], *, window: int | None = None, stride: int | None = None,
             **_params) -> dict:
    """How an SP grid reaches pixels: ``coverage`` with the run's window and stride."""
    side = min(size)
    window = resolve("sp_window", side) if window is None else window
    stride = resolve("sp_stride", side) if stride is None else stride
    return {"mode": "coverage", "window": int(window), "stride": int(stride)}


def _local_composites(remover, img: torch.Tensor, index: torch.Tensor, n_w: int, window: int,
                      stride: int, margin: int) -> torch.Tensor:
    """Composites of ``img`` (3,H,W) for positions ``index``, filled on crops around the patch.

    Returns ``(B,3,H,W)``: the original image with each crop replaced by ``remover(crop, keep)``.
    """
    _, H, W = img.shape
    ch, cw = min(window + 2 * margin, H), min(window + 2 * margin, W)
    py, px = (index // n_w) * stride, (index % n_w) * stride  # patch top-left
    y0 = (py - margin).clamp(0, H - ch)
    x0 = (px - margin).clamp(0, W - cw)
    ry = y0[:, None] + torch.arange(ch, device=img.device)  # (B,ch) image rows of each crop
    rx = x0[:, None] + torch.arange(cw, device=img.device)  # (B,cw)
    crops = img[:, ry[:, :, None], rx[:, None, :]].permute(1, 0, 2, 3)  # (B,3,ch,cw)
    in_y = (ry >= py[:, None]) & (ry < py[:, None] + window)
    in_x = (rx >= px[:, None]) & (rx < px[:, None] + window)
    keep = (~(in_y[:, :, None] & in_x[:, None, :])).to(img.dtype).unsqueeze(1)
    filled = remover(crops, keep)  # (B,3,ch,cw)
    b = index.shape[0]
    out = img.unsqueeze(0).repeat(b, 1, 1, 1)
    flat = (ry[:, :, None] * W + rx[:, None, :]).reshape(b, 1, -1).expand(b, 3, -1)
    out.view(b, 3, H * W).scatter_(2, flat, filled.reshape(b, 3, -1))
    return out


def sliding_patch(model, x: torch.Tensor, target, *, remover="gray", window: int | None = None,
                  stride: int | None = None, score: str = "prob", batch_size: int = BATCH_SIZE,
                  progress: bool = False, local: bool = False,
                  margin: int | None = None) -> torch.Tensor:
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
    check_positive_int("batch_size", batch_size)
    window, stride = _geometry(x, window, stride)
    H, W = x.shape[-2:]
    n_h, n_w = grid_shape((H, W), window, stride)
    rem = get_remover(remover, model=model)
    if not isinstance(local, bool):
        raise TypeError(f"local must be a bool, got {local!r}")
    if local:
        margin = window if margin is None else margin
        check_positive_int("margin", margin, 0)
        if isinstance(rem, (Precomputed, Noise)):
            raise ValueError(
                f"local=True needs a remover whose fill is local (gray, blur, telea, ns, "
                f"inpaint); {rem.name!r} is tied to the full image"
            )
    elif margin is not None:
        raise ValueError("margin is only used with local=True")
    n, k = x.shape[0], n_h * n_w
    out = torch.empty(n, k, dtype=torch.float64, device=x.device)
    starts = range(0, k, batch_size)
    bar = tqdm(total=n * len(starts), disable=not progress, desc="sliding_patch", leave=False)
    with model_guard(model), torch.inference_mode(), bar:
        x = x.detach()
        p0 = batched_scores(model, x, t, score, batch_size)
        for i in range(n):
            for start in starts:
                idx = torch.arange(start, min(start + batch_size, k), device=x.device)
                if local:
                    xt = _local_composites(rem, x[i], idx, n_w, window, stride, margin)
                else:
                    keep = window_masks((H, W), window, stride, idx, device=x.device,
                                        dtype=x.dtype)
                    xt = rem(x[i : i + 1], keep)
                s = class_score(model(model_input(xt)), t[i].expand(idx.shape[0]), score)
                out[i, idx] = (p0[i] - s).double()
                bar.update()
    return out.float().reshape(n, 1, n_h, n_w).clone()
