"""The saliency metric of Dabkowski & Gal (2017) (methods.md §4.4; CASME ``score_bboxes.py``).

``SM = log(max(a, 0.05)) - log p_c(crop)``, lower is better: a good map finds a *small* box whose
crop alone keeps the classifier confident in the explained class.

1. The box: protocol (c) of :mod:`kit.metrics.localization` (binarise at the map's mean, largest
   connected component, tight box; :func:`~kit.metrics.localization.largest_component_box`).
2. ``a`` = box area / (H·W), floored at 0.05.
3. The box is cropped from the image and resized to ``H×W`` bicubically with OpenCV
   (``cv2.INTER_CUBIC``, as CASME; aspect ratio not preserved), clipped to [0,1]. An empty box
   gives the gray image (the classifier's mean colour: CASME's all-zero normalised image).
4. ``p_c`` = softmax probability of the explained class (the ground-truth class in the project).

Usage::

    from kit.metrics.saliency_metric import saliency_metric
    res = saliency_metric(clf, x, sal, target)      # SaliencyMetric: sm, area, p, boxes
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kit.metrics.localization import largest_component_box

__all__ = ["HIGHER_IS_BETTER", "AREA_FLOOR", "SaliencyMetric", "crop_resize", "saliency_metric",
           "saliency_table", "score_boxes"]

HIGHER_IS_BETTER = {"saliency_metric": False}
"""Lower SM = smaller box with a confident crop."""

AREA_FLOOR = 0.05
"""Box areas below 5% of the image count as 5% (Dabkowski & Gal)."""


@dataclass(frozen=True, eq=False)
class SaliencyMetric:
    """Per-image results.

    Attributes:
        sm: ``(N,)`` ``log(max(area, 0.05)) - log p``.
        area: ``(N,)`` box area / (H·W), unfloored.
        p: ``(N,)`` softmax probability of the explained class on the resized crop.
        boxes: ``(N,4)`` int64 ``(x0, y0, x1, y1)`` boxes (exclusive upper corner).
    """

    sm: torch.Tensor
    area: torch.Tensor
    p: torch.Tensor
    boxes: torch.Tensor


def _gray(model) -> tuple[float, float, float]:
    from kit.removers import world_mean

    return tuple(model.mean) if hasattr(model, "mean") else world_mean()


def crop_resize(x: torch.Tensor, boxes: torch.Tensor, *,
                empty_color=(0.5, 0.5, 0.5)) -> torch.Tensor:
    """Crop each box from its image and resize it to the image size, bicubically (OpenCV).

    Args:
        x: ``(N,3,H,W)`` images in [0,1].
        boxes: ``(N,4)`` int ``(x0, y0, x1, y1)``, upper corner exclusive.
        empty_color: RGB of the image returned for an empty box.

    Returns:
        ``(N,3,H,W)`` float32 in [0,1] on x's device.
    """
    import cv2

    n, _, H, W = x.shape
    imgs = x.detach().float().cpu().permute(0, 2, 3, 1).numpy()
    out = np.empty((n, H, W, 3), dtype=np.float32)
    for i, (x0, y0, x1, y1) in enumerate(boxes.long().tolist()):
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
        if x1 <= x0 or y1 <= y0:
            out[i] = np.asarray(empty_color, dtype=np.float32)
            continue
        crop = np.ascontiguousarray(imgs[i, y0:y1, x0:x1])
        out[i] = cv2.resize(crop, (W, H), interpolation=cv2.INTER_CUBIC)  # dsize is (w, h)
    # bicubic overshoots at edges: clip back into pixel space
    return torch.from_numpy(out).permute(0, 3, 1, 2).clamp(0, 1).contiguous().to(x.device)


def score_boxes(model, x: torch.Tensor, boxes: torch.Tensor, target, *,
                batch_size: int = 256) -> SaliencyMetric:
    """The saliency metric of given boxes (e.g. the ground-truth box, a full-image box).

    Args:
        model: a :class:`kit.models.Classifier`.
        x: ``(N,3,H,W)`` images in [0,1].
        boxes: ``(N,4)`` int boxes ``(x0, y0, x1, y1)``.
        target: explained class, ``int`` or ``(N,)``.
        batch_size: crops per forward pass.
    """
    from kit.attributors._common import check_inputs

    t = check_inputs(model, x, target)
    n, _, H, W = x.shape
    if not isinstance(boxes, torch.Tensor) or boxes.shape != (n, 4):
        shape = tuple(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
        raise ValueError(f"boxes must be a ({n},4) tensor (x0, y0, x1, y1), got {shape}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    boxes = boxes.long().cpu()
    crops = crop_resize(x, boxes, empty_color=_gray(model))
    with torch.inference_mode():
        p = torch.cat([model(crops[i : i + batch_size]).float().softmax(1)
                       .gather(1, t[i : i + batch_size, None]).squeeze(1).cpu()
                       for i in range(0, n, batch_size)])
    w = (boxes[:, 2].clamp(0, W) - boxes[:, 0].clamp(0, W)).clamp_min(0)
    h = (boxes[:, 3].clamp(0, H) - boxes[:, 1].clamp(0, H)).clamp_min(0)
    area = (w * h).double() / (H * W)
    sm = area.clamp_min(AREA_FLOOR).log() - p.double().log()
    return SaliencyMetric(sm=sm.float(), area=area.float(), p=p, boxes=boxes)


def saliency_metric(model, x: torch.Tensor, sal: torch.Tensor, target, *,
                    batch_size: int = 256, upsample_mode: str = "bilinear",
                    **upsample_kw) -> SaliencyMetric:
    """Dabkowski & Gal's saliency metric of maps ``sal`` (box: protocol (c)).

    Args:
        model: a :class:`kit.models.Classifier`.
        x: ``(N,3,H,W)`` images in [0,1].
        sal: ``(N,1,h,w)`` maps at their native grid.
        target: explained class, ``int`` or ``(N,)``.
        batch_size: crops per forward pass.
        upsample_mode: how maps reach ``H×W`` (:func:`kit.masks.upsample`).

    Returns:
        :class:`SaliencyMetric`; ``sm`` lower is better.
    """
    from kit.checks import images

    images("x", x)
    if not isinstance(sal, torch.Tensor) or sal.dim() != 4 or sal.shape[0] != x.shape[0]:
        shape = tuple(sal.shape) if isinstance(sal, torch.Tensor) else type(sal).__name__
        raise ValueError(f"sal must have shape ({x.shape[0]},1,h,w), got {shape}")
    boxes = largest_component_box(sal, tuple(x.shape[-2:]), upsample_mode=upsample_mode,
                                  **upsample_kw)
    return score_boxes(model, x, boxes, target, batch_size=batch_size)


def saliency_table(model, x: torch.Tensor, maps: dict, target, *, batch_size: int = 256,
                   upsample_mode: str | None = None):
    """Per-image saliency metric of every map.

    Args:
        maps: method -> ``(N,1,h,w)``; a :class:`kit.maps.Maps` brings each map's geometry.
        upsample_mode: None (default) = each map's geometry; a mode name forces it.

    Returns:
        ``(per_image, results)``: DataFrame ``image, method, metric, value`` (metric
        ``saliency_metric``) and ``{method: SaliencyMetric}`` with the boxes, areas and
        probabilities behind each value.
    """
    import pandas as pd

    from kit.maps import geometry_of

    frames, results = [], {}
    for name, sal in maps.items():
        g = geometry_of(maps, name) if upsample_mode is None else {"mode": upsample_mode}
        r = saliency_metric(model, x, sal, target, batch_size=batch_size,
                            upsample_mode=g.pop("mode"), **g)
        results[name] = r
        frames.append(pd.DataFrame({"image": np.arange(x.shape[0]), "method": name,
                                    "metric": "saliency_metric", "value": r.sm.double().numpy()}))
    return pd.concat(frames, ignore_index=True), results
