"""Deletion and insertion curves and their AUC (methods.md §4.3; RISE ``evaluation.py``).

Pixels are ranked by decreasing saliency (the map upsampled by :func:`kit.masks.upsample`, ties
broken by a **stable** sort, i.e. row-major order; the three channels of a pixel move together).
For ``i = 0 … n`` the curve records the softmax probability of the explained class on a fresh
composite ``R(x, keep_i)``:

* **deletion** — ``keep_i`` is 1 except the first ``i * step`` ranked pixels, which the remover
  removes (default ``gray``: RISE's substrate, 0 in normalised space). Lower AUC is better.
* **insertion** — ``keep_i`` is 0 except the first ``i * step`` ranked pixels, so the image is
  rebuilt on the remover's substrate (default :class:`InsertionBlur`, RISE's ``klen=11, sigma=5``
  blur of ``x``). Higher AUC is better.

``step = ceil(H*W / n)``, ``n = 28`` at any resolution (147 px at 64×64, 1792 at 224×224), so a
curve has ``n + 1`` points. For mask-independent fills (gray, seeded noise, blur) a composite equals
RISE's pixel copy; with an inpainter every point is a new inpainting of the current hole.

**AUC conventions** (explicit, ``auc=``): ``"rise"`` (default) is the trapezoid over ``x = i/n``,
``(sum(s) - s_0/2 - s_n/2) / n``; ``"sam"`` is the same trapezoid divided by ``max(s)`` of the
curve. The per-image AUCs averaged over images are the project's headline; :attr:`Curve.auc_of_mean`
(RISE's dataset number: the AUC of the mean curve) is reported beside it.

All ``N * (n + 1)`` composites go through the remover and the model in batches of ``batch_size``.

Usage::

    from kit.metrics.deletion import deletion_curve, insertion_curve
    d = deletion_curve(clf, x, sal, target, remover="inpaint")     # Curve: scores (N, 29)
    ins = insertion_curve(clf, x, sal, target)                      # blur substrate
    d.auc.mean(), d.auc_of_mean
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from kit.engine import BATCH_SIZE, score_masks
from kit.maps import geometry_of, to_pixels
from kit.masks import TopFraction, pixel_rank
from kit.removers import InsertionBlur, Remover, get_remover

__all__ = [
    "HIGHER_IS_BETTER",
    "MODES",
    "AUC_CONVENTIONS",
    "INSERTION_BLUR",
    "Curve",
    "InsertionBlur",
    "auc",
    "deletion_curve",
    "insertion_curve",
    "pixel_order",
    "resolve_remover",
    "curve_table",
]

HIGHER_IS_BETTER = {"deletion_auc": False, "insertion_auc": True}
"""Deletion: the score should fall fast (low AUC); insertion: rise fast (high AUC)."""

MODES = ("deletion", "insertion")
AUC_CONVENTIONS = ("rise", "sam")
INSERTION_BLUR = "insertion_blur"
"""Remover name of RISE's insertion substrate (:class:`InsertionBlur`)."""


@dataclass(frozen=True, eq=False)
class Curve:
    """Deletion or insertion curves of N images.

    Attributes:
        fractions: ``(S,)`` fraction of pixels deleted (inserted) at each point, ``S = steps+1``;
            the last point is 1.
        scores: ``(N,S)`` softmax probability of the explained class at each point.
        auc: ``(N,)`` per-image AUC under the ``convention``.
        mode: ``"deletion"`` or ``"insertion"``.
        convention: the AUC convention (``"rise"`` or ``"sam"``).
        remover: ``repr`` of the remover that made the composites.
    """

    fractions: torch.Tensor
    scores: torch.Tensor
    auc: torch.Tensor
    mode: str
    convention: str = "rise"
    remover: str = ""

    @property
    def auc_of_mean(self) -> float:
        """AUC of the mean curve over images (RISE's dataset number)."""
        return float(auc(self.scores.mean(0, keepdim=True), convention=self.convention)[0])

    @property
    def metric(self) -> str:
        """Name of the AUC in :data:`HIGHER_IS_BETTER` (``deletion_auc`` / ``insertion_auc``)."""
        return f"{self.mode}_auc"


def auc(scores: torch.Tensor, *, convention: str = "rise") -> torch.Tensor:
    """Area under curves sampled at ``x = i/n``, ``i = 0 … n``.

    Args:
        scores: ``(N,S)`` curves, ``S = n + 1 >= 2``.
        convention: ``"rise"``: trapezoid, ``(sum(s) - s_0/2 - s_n/2) / n``; ``"sam"``: the same
            divided by each curve's maximum (``sklearn.metrics.auc(i/n, s) / max(s)``; NaN for
            an all-zero curve).

    Returns:
        ``(N,)`` float AUCs.
    """
    if convention not in AUC_CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(AUC_CONVENTIONS)}, "
                         f"got {convention!r}")
    if not isinstance(scores, torch.Tensor) or scores.dim() != 2 or scores.shape[1] < 2:
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise ValueError(f"scores must have shape (N, S>=2), got {shape}")
    s = scores.double()
    area = torch.trapezoid(s, dx=1.0 / (s.shape[1] - 1), dim=1)
    if convention == "sam":
        mx = s.amax(1)
        area = torch.where(mx > 0, area / mx.clamp_min(1e-300), torch.full_like(area, math.nan))
    return area.float()


def resolve_remover(spec, model=None, *, backgrounds: torch.Tensor | None = None) -> Remover:
    """A remover from a name or object, through the one resolver :func:`kit.removers.get_remover`
    (``gray`` takes the classifier's mean colour; ``oracle`` needs ``backgrounds``)."""
    return get_remover(spec, model=model if hasattr(model, "mean") else None,
                       backgrounds=backgrounds)


def pixel_order(sal: torch.Tensor, size, *, upsample_mode: str = "bilinear",
                **upsample_kw) -> torch.Tensor:
    """Pixel ranks by decreasing saliency, ``(N, H*W)`` long; ``rank[n, p] = 0`` for the most
    salient pixel. Ties keep row-major order (:func:`kit.masks.pixel_rank`)."""
    pix = to_pixels(sal.detach().float().cpu(), size, {"mode": upsample_mode, **upsample_kw})
    return pixel_rank(pix)


def _check(model, x, sal, target, mode, steps, batch_size):
    from kit.attributors._common import check_inputs

    t = check_inputs(model, x, target)
    if not isinstance(sal, torch.Tensor):
        raise TypeError(f"sal must be a torch.Tensor, got {type(sal).__name__}")
    if sal.dim() != 4 or sal.shape[1] != 1 or sal.shape[0] != x.shape[0]:
        raise ValueError(f"sal must have shape ({x.shape[0]},1,h,w), got {tuple(sal.shape)}")
    if not sal.is_floating_point():
        raise TypeError(f"sal must be a float tensor, got dtype {sal.dtype}")
    if torch.isnan(sal).any():
        raise ValueError("sal contains NaN values")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    for name, v in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    return t


def deletion_curve(model, x: torch.Tensor, sal: torch.Tensor, target, *, remover="gray",
                   mode: str = "deletion", steps: int = 28, batch_size: int = BATCH_SIZE,
                   progress: bool = False, auc_convention: str = "rise",
                   upsample_mode: str = "bilinear", **upsample_kw) -> Curve:
    """Deletion (or insertion) curves of maps ``sal`` on images ``x``.

    Args:
        model: a :class:`kit.models.Classifier` (pixel space -> logits).
        x: ``(N,3,H,W)`` images in [0,1].
        sal: ``(N,1,h,w)`` maps at their native grid, higher = more evidence for ``target``.
        target: the explained class (the one the map explains), ``int`` or ``(N,)``.
        remover: a remover name or object (``gray``, ``blur``, ``inpaint``, ``oracle`` object,
            :data:`INSERTION_BLUR`, …). In insertion mode it supplies the substrate the image is
            rebuilt on. A ``Precomputed``/oracle remover with one fill per image is indexed
            along with the images.
        mode: ``"deletion"`` or ``"insertion"``.
        steps: ``n``; ``ceil(H*W/n)`` pixels move per step and the curve has ``n + 1`` points.
        batch_size: composites per remover + model call.
        progress: a tqdm bar over batches.
        auc_convention: ``"rise"`` or ``"sam"`` (:func:`auc`).
        upsample_mode: how maps reach ``H×W`` (:func:`kit.masks.upsample`; ``"coverage"`` needs
            ``window=``, ``stride=``).

    Returns:
        :class:`Curve` with ``fractions (n+1,)``, ``scores (N, n+1)``, ``auc (N,)``.

    Raises:
        ValueError / TypeError: bad shapes, NaN maps, unknown mode, remover or convention.
    """
    t = _check(model, x, sal, target, mode, steps, batch_size)
    if auc_convention not in AUC_CONVENTIONS:
        raise ValueError(f"auc_convention must be one of {', '.join(AUC_CONVENTIONS)}, "
                         f"got {auc_convention!r}")
    rem = resolve_remover(remover, model)
    n, _, H, W = x.shape
    hw = H * W
    step = math.ceil(hw / steps)
    counts = torch.clamp(torch.arange(steps + 1) * step, max=hw)           # pixels moved at i
    if isinstance(rem, Remover) and hasattr(rem, "fill_image") and \
            rem.fill_image.shape[0] not in (1, n):
        raise ValueError(f"remover's fill_image has {rem.fill_image.shape[0]} images, x has {n}")
    pix = to_pixels(sal.detach().float().cpu(), (H, W), {"mode": upsample_mode, **upsample_kw})
    masks = TopFraction(pix, counts=counts, mode="remove" if mode == "deletion" else "keep")
    S = steps + 1
    scores = score_masks(model, x, t, masks, rem, score="prob", batch_size=batch_size,
                         progress=progress, desc=mode).float().cpu()
    scores = scores.view(n, S)
    return Curve(
        fractions=counts.float() / hw,
        scores=scores,
        auc=auc(scores, convention=auc_convention),
        mode=mode,
        convention=auc_convention,
        remover=repr(rem),
    )


def insertion_curve(model, x: torch.Tensor, sal: torch.Tensor, target, *,
                    remover=INSERTION_BLUR, **kwargs) -> Curve:
    """Insertion curves: :func:`deletion_curve` with ``mode="insertion"`` and RISE's blur
    substrate (:class:`InsertionBlur`, ``klen=11, sigma=5``) by default."""
    if "mode" in kwargs:
        raise ValueError("insertion_curve sets mode='insertion'; use deletion_curve for deletion")
    return deletion_curve(model, x, sal, target, remover=remover, mode="insertion", **kwargs)


def _curve_task(task, *, model, x, target, removers):
    """One (remover, method) curve of :func:`curve_table` (a :func:`kit.distributed.map_tasks`
    task: the classifier, images and removers are shared, the map and its geometry travel)."""
    g = dict(task["geometry"])
    return deletion_curve(model, x, task["sal"], target, remover=removers[task["remover"]],
                          mode=task["mode"], steps=task["steps"], batch_size=task["batch_size"],
                          upsample_mode=g.pop("mode"), **g)


def curve_table(model, x: torch.Tensor, maps: dict, target, removers, *, mode: str = "deletion",
                steps: int = 28, batch_size: int = BATCH_SIZE, progress: bool = False,
                backgrounds: torch.Tensor | None = None, upsample_mode: str | None = None,
                client=None):
    """Curves of every map under every remover, and their per-image AUCs as a long table.

    Args:
        model, x, target: as in :func:`deletion_curve`.
        maps: method -> ``(N,1,h,w)`` maps of the images ``x``; a :class:`kit.maps.Maps` (what
            :func:`kit.mapcache.compute_maps` returns) brings each map's geometry, so SP grids
            are spread by coverage.
        removers: remover names (or a name -> remover mapping); ``oracle`` uses ``backgrounds``.
        mode, steps, batch_size, progress: as in :func:`deletion_curve` (``progress``: a bar
            over curves).
        upsample_mode: None (default) = each map's own geometry (:mod:`kit.maps`); a mode name
            forces it for every map.
        client: None = in this process; a ``distributed.Client`` = one task per (remover,
            method) curve (:func:`kit.distributed.map_tasks`; the classifier, images and
            removers go to each worker once), with the same curves.

    Returns:
        ``(per_image, curves)``: DataFrame ``image, method, remover, metric, value`` (metric
        ``deletion_auc`` or ``insertion_auc``) and ``{(method, remover): Curve}``.
    """
    import numpy as np
    import pandas as pd

    from kit.distributed import map_tasks

    if isinstance(removers, str):
        raise TypeError(f"removers must be a list of names or a mapping, got the string "
                        f"{removers!r}")
    named = dict(removers) if hasattr(removers, "items") else {r: r for r in removers}
    built = {k: resolve_remover(v, model, backgrounds=backgrounds) for k, v in named.items()}
    tasks = []
    for rname in built:
        for name, sal in maps.items():
            g = geometry_of(maps, name) if upsample_mode is None else {"mode": upsample_mode}
            tasks.append({"remover": rname, "method": name, "sal": sal, "geometry": g,
                          "mode": mode, "steps": steps, "batch_size": batch_size})
    done = map_tasks(_curve_task, tasks, client=client, progress=progress, desc=mode,
                     shared={"model": model, "x": x, "target": target, "removers": built})
    frames, curves = [], {}
    for task, c in zip(tasks, done, strict=True):
        curves[task["method"], task["remover"]] = c
        frames.append(pd.DataFrame({"image": np.arange(x.shape[0]), "method": task["method"],
                                    "remover": task["remover"], "metric": c.metric,
                                    "value": c.auc.double().numpy()}))
    return pd.concat(frames, ignore_index=True), curves
