"""Meaningful perturbation: GAM's MP / MP-G and the project's MP2 / MP2-G (methods.md §3.3-3.4).

Both optimise a keep-mask ``m`` (1 = keep) on a coarse ``g x g`` grid for every image at once
(one batched Adam loop, no per-image loop), minimising per image

    L(m) = l1_coef * sum|1 - m| + tv_coef * TV_beta(m) + S_t(R(x, up(m)))

with ``S_t`` the target's ``score`` (default the softmax probability), ``up`` the upsampling of
the grid to the image and ``R`` the remover; ``m`` is clamped to [0,1] after every Adam step. The
map returned is ``1 - m`` on the grid: the deleted region, higher = more evidence for the target.

==============  ==========================================  ===================================
item            MP (GAM, §3.3.1)                            MP2 (project choice, §3.4)
==============  ==========================================  ===================================
grid            ``mp_grid``: 28 at 224, 8 at 64             ``mp2_grid``: 14 at 224, 8 at 64
upsampling      nearest                                     bilinear (``align_corners=False``)
TV              anisotropic, ``tv_coef`` 1e-2, beta 3       none
jitter          ``mp_jitter``: 4 px at 224, 1 px at 64      none
==============  ==========================================  ===================================

Shared: ``l1_coef`` 1e-4 (not rescaled for MP2's smaller grid, pitfall 15), Adam lr 0.1,
300 iterations, init ``m ~ U[0,1)`` from a private generator seeded with ``seed``.

**Removers.** A differentiable remover (``gray``, ``blur``, ``noise``, ...) gives the continuous
composite ``R(x, M)``. A non-differentiable one (``remover.differentiable`` False: ``inpaint``,
``telea``, ``ns``; the "-G" variants) gives GAM's straight-through binarised composite
(:func:`mask_composite`): ``hard = 1[M >= tau]`` with ``tau = max(0.5, (max M + min M) / 2)`` per
image, fill ``I = R.fill(x, hard)`` recomputed every iteration and detached, and
``x_tilde = x * M_b + I * (1 - M_b)`` with ``M_b = M + stopgrad(hard - M)``: the forward pass
uses the binary mask, the gradient reaches ``M`` as ``x - I`` (methods.md pitfall 10). As in
GAM, ``I`` is the inpainter's output, which reproduces ``x`` outside the hole, so the score's
gradient is zero on currently kept pixels and the search moves through the deleted ones (plus the
area and TV terms). This costs one remover call per iteration and image (300 inpaintings per
image at the defaults).

Kit adaptations (documented deviations from GAM):

* ``remover="blur"`` (the default) blurs the given image with ``blur_sigma`` of ``kit.defaults``
  (10 px at 224, 3 at 64); GAM blurs the full-resolution photo (pitfall 4: pass
  ``Precomputed(fill)`` for that).
* Jitter: GAM crops 224 from a 228 image with offsets ``{0..3}``. The kit only has the image, so
  it reflect-pads it by ``jitter // 2`` (top/left) and ``jitter - jitter // 2`` (bottom/right)
  and crops at offsets ``j1, j2`` drawn uniformly from ``{0..jitter}`` each iteration (offset
  ``jitter // 2`` = the unshifted image); the mask is not shifted. ``jitter=0`` disables it.
* The binarisation threshold ``tau`` is per image (GAM explains one image at a time); the seeded
  init and the jitter offsets are shared by all images of a call, as GAM's per-image seed 0 does,
  so a batch gives the same maps as its images one at a time.
* GAM's circular initialisation is not implemented.

Usage::

    from kit.attributors.meaningful_perturbation import meaningful_perturbation, mp2, mp_explain
    sal = meaningful_perturbation(clf, x, y)             # MP, (N,1,8,8) at 64x64, 1 - m
    sal_g = meaningful_perturbation(clf, x, y, remover="inpaint")   # MP-G (straight-through)
    res = mp_explain(clf, x, y); res.mask, res.losses    # diagnostics
    sal2 = mp2(clf, x, y, remover="inpaint")              # MP2-G, (N,1,8,8) at 64x64
    pix = kit.masks.upsample(sal, 64)                     # bilinear project default
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from kit.attributors._common import (
    check_inputs,
    check_positive_int,
    check_score,
    class_score,
    model_guard,
)
from kit.defaults import resolve
from kit.masks import upsample
from kit.removers import Precomputed, composite, get_remover

BATCH_SIZE = 64
"""Default images per forward/backward pass inside one optimisation step."""


@dataclass(frozen=True)
class MPResult:
    """Output of :func:`mp_explain` / :func:`mp2_explain`.

    Attributes:
        sal: ``(N,1,g,g)`` float32 map ``1 - mask`` (higher = more evidence for the target).
        mask: ``(N,1,g,g)`` float32 optimised keep-mask in [0,1] (1 = keep).
        losses: ``(iterations, N)`` float32 (CPU) per-image objective at each iteration, before
            that iteration's step.
    """

    sal: torch.Tensor
    mask: torch.Tensor
    losses: torch.Tensor


def _check_number(name: str, value, minimum: float = 0.0, strict: bool = True) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        value > minimum if strict else value >= minimum)
    if not ok:
        rel = ">" if strict else ">="
        raise ValueError(f"{name} must be a number {rel} {minimum:g}, got {value!r}")
    return float(value)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return seed


def binarise(keep: torch.Tensor) -> torch.Tensor:
    """GAM's hard mask ``1[keep >= tau]``, ``tau = max(0.5, (max + min) / 2)`` per mask.

    Args:
        keep: ``(B,1,H,W)`` in [0,1].

    Returns:
        ``(B,1,H,W)`` in {0,1}, same dtype, no gradient.
    """
    flat = keep.detach().flatten(1)
    tau = (0.5 * (flat.amax(1) + flat.amin(1))).clamp_min(0.5).view(-1, 1, 1, 1)
    return (keep.detach() >= tau).to(keep.dtype)


def mask_composite(remover, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The composite an MP-family optimiser differentiates through.

    Differentiable remover: ``remover(x, keep)`` (same composite and clamp). Otherwise the
    straight-through binarised composite
    ``x * M_b + stopgrad(remover.fill(x, hard)) * (1 - M_b)`` with ``hard = binarise(keep)``
    and ``M_b = keep + stopgrad(hard - keep)`` (methods.md §3.3.1).

    Args:
        remover: a built :class:`~kit.removers.Remover`.
        x: ``(B,3,H,W)`` images in [0,1]; keep: ``(B,1,H,W)`` in [0,1], may require grad.

    Returns:
        ``(B,3,H,W)`` composites (gradient w.r.t. ``keep`` in both cases).
    """
    if remover.differentiable:
        # remover(x, keep) without its input checks (x is checked, keep is in [0,1] by
        # construction; the checks would pull a grad-requiring tensor to Python floats)
        fill = remover.fill(x, keep).to(dtype=x.dtype, device=x.device)
        return composite(x, keep, fill).clamp(0, 1)
    hard = binarise(keep)
    fill = remover.fill(x, hard).detach().to(dtype=x.dtype, device=x.device)
    keep_st = keep + (hard - keep).detach()
    return composite(x, keep_st, fill)


def _tv(m: torch.Tensor, beta: float) -> torch.Tensor:
    """Anisotropic TV_beta per mask: ``(B,)``."""
    dh = (m[..., 1:, :] - m[..., :-1, :]).abs().pow(beta).flatten(1).sum(1)
    dw = (m[..., :, 1:] - m[..., :, :-1]).abs().pow(beta).flatten(1).sum(1)
    return dh + dw


def _remover(remover, model, side: int):
    if isinstance(remover, str) and remover == "blur":
        return get_remover("blur", sigma=float(resolve("blur_sigma", side)))
    return get_remover(remover, model=model)


def _optimise(model, x, target, *, remover, grid, mode, iterations, lr, l1_coef, tv_coef,
              tv_beta, jitter, score, seed, batch_size, progress, desc) -> MPResult:
    """The shared batched Adam loop of MP and MP2 (arguments already resolved)."""
    t = check_inputs(model, x, target)
    check_score(score)
    check_positive_int("iterations", iterations)
    check_positive_int("batch_size", batch_size)
    check_positive_int("grid", grid)
    check_positive_int("jitter", jitter, 0)
    lr = _check_number("lr", lr)
    l1_coef = _check_number("l1_coef", l1_coef, strict=False)
    tv_coef = _check_number("tv_coef", tv_coef, strict=False)
    tv_beta = _check_number("tv_beta", tv_beta)
    _check_seed(seed)
    n, (H, W) = x.shape[0], x.shape[-2:]
    if grid > min(H, W):
        raise ValueError(f"grid must be at most the image size {min(H, W)}, got {grid}")
    if jitter >= min(H, W):
        raise ValueError(f"jitter must be below the image size {min(H, W)}, got {jitter}")
    rem = _remover(remover, model, min(H, W))
    gen = torch.Generator().manual_seed(seed)  # private: init and jitter
    m0 = torch.rand((1, 1, grid, grid), generator=gen).expand(n, -1, -1, -1)
    m = m0.to(device=x.device, dtype=x.dtype).clone().requires_grad_(True)
    opt = torch.optim.Adam([m], lr=lr)
    losses = torch.empty(iterations, n, dtype=torch.float32)
    x = x.detach()
    fill_full = fill_pad = None
    if isinstance(rem, Precomputed):
        f = rem.fill_image.to(device=x.device, dtype=x.dtype)
        if f.shape[0] not in (1, n) or f.shape[-2:] != x.shape[-2:]:
            raise ValueError(f"the remover's fill_image has shape {tuple(f.shape)}, which does "
                             f"not match x {tuple(x.shape)} (batch 1 or {n}, same H, W)")
        fill_full = f.expand(n, -1, -1, -1)
    if jitter:
        top = jitter // 2
        pads = (top, jitter - top, top, jitter - top)
        x_pad = F.pad(x, pads, mode="reflect")
        if fill_full is not None:
            fill_pad = F.pad(fill_full, pads, mode="reflect")
    devices = [x.device.index or 0] if x.device.type == "cuda" else []
    with model_guard(model), torch.random.fork_rng(devices=devices), torch.enable_grad(), \
            tqdm(total=iterations, disable=not progress, desc=desc, leave=False) as bar:
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        for it in range(iterations):
            if jitter:
                j1, j2 = torch.randint(0, jitter + 1, (2,), generator=gen).tolist()
                x0 = x_pad[..., j1 : j1 + H, j2 : j2 + W]
                f0 = None if fill_pad is None else fill_pad[..., j1 : j1 + H, j2 : j2 + W]
            else:
                x0, f0 = x, fill_full
            opt.zero_grad(set_to_none=True)
            for start in range(0, n, batch_size):
                sl = slice(start, min(start + batch_size, n))
                mc = m[sl]
                keep = upsample(mc, (H, W), mode)
                # a precomputed fill is tied to the images: crop and slice it like them
                rc = rem if f0 is None else dataclasses.replace(rem, fill_image=f0[sl])
                xt = mask_composite(rc, x0[sl], keep)
                s = class_score(model(xt), t[sl], score)
                reg = l1_coef * (1 - mc).abs().flatten(1).sum(1)
                if tv_coef:
                    reg = reg + tv_coef * _tv(mc, tv_beta)
                loss = reg + s
                loss.sum().backward()
                losses[it, sl] = loss.detach().float().cpu()
            opt.step()
            with torch.no_grad():
                m.clamp_(0, 1)
            bar.update()
    mask = m.detach().float().clone()
    return MPResult(1 - mask, mask, losses)


def mp_explain(model, x: torch.Tensor, target, *, remover="blur", grid: int | None = None,
               iterations: int = 300, lr: float = 0.1, l1_coef: float = 1e-4,
               tv_coef: float = 1e-2, tv_beta: float = 3.0, jitter: int | None = None,
               score: str = "prob", seed: int = 0, batch_size: int = BATCH_SIZE,
               progress: bool = False) -> MPResult:
    """GAM's meaningful perturbation with its diagnostics (mask, per-iteration losses).

    Args:
        model: pixel-space :class:`~kit.models.Classifier`.
        x: ``(N,3,H,W)`` float images in [0,1].
        target: int or ``(N,)`` long, the explained class.
        remover: a :mod:`kit.removers` name or object. ``"blur"`` (MP; sigma from
            ``kit.defaults``: 3 at 64, 10 at 224) or ``"inpaint"`` (MP-G, straight-through).
        grid: mask grid side; None = ``mp_grid`` (8 at 64, 28 at 224).
        iterations: Adam steps (300).
        lr: Adam learning rate (0.1).
        l1_coef: weight of the deletion area ``sum|1 - m|`` (1e-4).
        tv_coef, tv_beta: weight and exponent of the anisotropic TV on the grid (1e-2, 3).
        jitter: maximal image shift in pixels; None = ``mp_jitter`` (1 at 64, 4 at 224);
            0 = none.
        score: ``"prob"`` (default), ``"logit"`` or ``"logprob"``; the score is minimised.
        seed: seed of the private generator (init ``U[0,1)`` and jitter).
        batch_size: images per forward/backward pass within a step.
        progress: show a tqdm bar over iterations.

    Returns:
        :class:`MPResult` with ``sal = 1 - mask`` at ``(N,1,grid,grid)``.

    Raises:
        ValueError / TypeError naming the bad argument.
    """
    side = min(x.shape[-2:]) if isinstance(x, torch.Tensor) and x.dim() == 4 else 224
    grid = resolve("mp_grid", side) if grid is None else grid
    jitter = resolve("mp_jitter", side) if jitter is None else jitter
    return _optimise(model, x, target, remover=remover, grid=grid, mode="nearest",
                     iterations=iterations, lr=lr, l1_coef=l1_coef, tv_coef=tv_coef,
                     tv_beta=tv_beta, jitter=jitter, score=score, seed=seed,
                     batch_size=batch_size, progress=progress, desc="meaningful_perturbation")


def meaningful_perturbation(model, x: torch.Tensor, target, *, remover="blur",
                            grid: int | None = None, iterations: int = 300, lr: float = 0.1,
                            l1_coef: float = 1e-4, tv_coef: float = 1e-2, tv_beta: float = 3.0,
                            jitter: int | None = None, score: str = "prob", seed: int = 0,
                            batch_size: int = BATCH_SIZE, progress: bool = False) -> torch.Tensor:
    """MP / MP-G map ``1 - m`` on the mask grid (methods.md §3.3.1).

    Args: as :func:`mp_explain`.

    Returns:
        ``(N,1,g,g)`` float32 in [0,1] on ``x.device`` (g = 8 at 64x64, 28 at 224x224).
    """
    return mp_explain(model, x, target, remover=remover, grid=grid, iterations=iterations,
                      lr=lr, l1_coef=l1_coef, tv_coef=tv_coef, tv_beta=tv_beta, jitter=jitter,
                      score=score, seed=seed, batch_size=batch_size, progress=progress).sal


def mp2_explain(model, x: torch.Tensor, target, *, remover="blur", grid: int | None = None,
                iterations: int = 300, lr: float = 0.1, l1_coef: float = 1e-4,
                score: str = "prob", seed: int = 0, batch_size: int = BATCH_SIZE,
                progress: bool = False) -> MPResult:
    """MP2 with its diagnostics: MP without TV and jitter, bilinear coarse grid (§3.4).

    Args:
        grid: mask grid side; None = ``mp2_grid`` (8 at 64, 14 at 224).
        Others: as :func:`mp_explain`.

    Returns:
        :class:`MPResult` with ``sal = 1 - mask`` at ``(N,1,grid,grid)``.
    """
    side = min(x.shape[-2:]) if isinstance(x, torch.Tensor) and x.dim() == 4 else 224
    grid = resolve("mp2_grid", side) if grid is None else grid
    return _optimise(model, x, target, remover=remover, grid=grid, mode="bilinear",
                     iterations=iterations, lr=lr, l1_coef=l1_coef, tv_coef=0.0, tv_beta=1.0,
                     jitter=0, score=score, seed=seed, batch_size=batch_size,
                     progress=progress, desc="mp2")


def mp2(model, x: torch.Tensor, target, *, remover="blur", grid: int | None = None,
        iterations: int = 300, lr: float = 0.1, l1_coef: float = 1e-4, score: str = "prob",
        seed: int = 0, batch_size: int = BATCH_SIZE, progress: bool = False) -> torch.Tensor:
    """MP2 / MP2-G map ``1 - m`` on the coarse grid (methods.md §3.4).

    Args: as :func:`mp2_explain`.

    Returns:
        ``(N,1,g,g)`` float32 in [0,1] on ``x.device`` (g = 8 at 64x64, 14 at 224x224).
    """
    return mp2_explain(model, x, target, remover=remover, grid=grid, iterations=iterations,
                       lr=lr, l1_coef=l1_coef, score=score, seed=seed, batch_size=batch_size,
                       progress=progress).sal
