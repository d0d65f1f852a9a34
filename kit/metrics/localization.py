"""Object localisation from attribution maps (methods.md §4.2): relevance mass inside the mask.

So far: :func:`mass_inside` (the fraction of the positive relevance that falls inside the
ground-truth object mask, "relevance mass accuracy") and :func:`pointing_game` (is the map's
maximum inside the mask). The IoU sweep of SAM belongs here too (issue 4).
"""

from __future__ import annotations

import torch

from kit.masks import upsample

HIGHER_IS_BETTER = {"mass_inside": True, "pointing_game": True}


def _to_pixels(sal: torch.Tensor, mask: torch.Tensor, upsample_mode: str, **kw) -> torch.Tensor:
    if sal.dim() != 4 or sal.shape[1] != 1:
        raise ValueError(f"sal must have shape (N,1,h,w), got {tuple(sal.shape)}")
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[0] != sal.shape[0]:
        raise ValueError(f"mask must have shape ({sal.shape[0]},1,H,W), got {tuple(mask.shape)}")
    return upsample(sal.float(), tuple(mask.shape[-2:]), mode=upsample_mode, **kw)


def mass_inside(sal: torch.Tensor, mask: torch.Tensor, *, upsample_mode: str = "bilinear",
                **upsample_kw) -> torch.Tensor:
    """Fraction of the positive relevance inside the object mask, per image.

    Args:
        sal: ``(N,1,h,w)`` maps at their native grid (higher = more evidence).
        mask: ``(N,1,H,W)`` bool object masks.
        upsample_mode: resizing mode of :func:`kit.masks.upsample` (``"coverage"`` needs
            ``window=`` and ``stride=``).

    Returns:
        ``(N,)`` in [0,1]; NaN for a map without positive values.
    """
    pix = _to_pixels(sal, mask, upsample_mode, **upsample_kw).clamp_min(0)
    total = pix.sum((1, 2, 3))
    inside = (pix * mask.float()).sum((1, 2, 3))
    return torch.where(total > 0, inside / total, torch.full_like(total, float("nan")))


def pointing_game(sal: torch.Tensor, mask: torch.Tensor, *, upsample_mode: str = "bilinear",
                  **upsample_kw) -> torch.Tensor:
    """1.0 where the map's maximum (first one in raster order) falls inside the mask, per image."""
    pix = _to_pixels(sal, mask, upsample_mode, **upsample_kw)
    idx = pix.flatten(1).argmax(1)
    return mask.flatten(1).gather(1, idx[:, None]).squeeze(1).float()
