"""Meaningful perturbation: GAM's MP / MP-G and the project's MP2 / MP2-G (methods.md §3.3-3.4).

Both optimise a keep-mask ``m`` (1 = keep) on a coarse ``g x g`` grid for every image at once
(one batched Adam loop, no per-image loop), minimising per image

    L(m) = l1_coef * (A_ref / g²) * sum|1 - m| + tv_coef * (g_ref / g) * TV_beta(m)
           + S_t(R(x, up(m)))

with ``S_t`` the target's ``score`` (default the softmax probability), ``up`` the upsampling of
the grid to the image and ``R`` the remover; ``m`` is clamped to [0,1] after every Adam step. The
map returned is ``1 - m`` on the grid: the deleted region, higher = more evidence for the target.

**Penalties normalised for the image size** (docs/methods.md). ``l1_coef`` and ``tv_coef`` are
the published weights at 224×224 and are applied rescaled so that deleting a fraction ``f`` of
the image costs what it costs there: the area term by ``A_ref / g²`` (``A_ref`` = the reference
grid's cell count: MP 28² = 784, MP2 14² = 196), i.e. ``l1_coef · A_ref · f``; the TV term by
``g_ref / g`` (MP: 28 / g; a sharp-edged region of fixed fraction crosses ``∝ g`` grid edges).
At 64×64 (8×8 grids) that is ×12.25 / ×3.5 for MP and ×3.06 for MP2's area term; at 224×224 with
the default grids both factors are 1 (the published objective). The factors come from
:func:`kit.defaults.area_scale` / :func:`kit.defaults.boundary_scale`. Without them the 64×64
area cost was 12× weaker than GAM's and MP deleted 55–66% of a world image (science audit §2.2).

The validation, remover, init, jitter, regularisers, composite, guard and Adam loop are the
shared mask-optimisation engine's (:mod:`kit.attributors.mask_optimisation`, also FIDO's).

==============  ==========================================  ===================================
item            MP (GAM, §3.3.1)                            MP2 (project choice, §3.4)
==============  ==========================================  ===================================
grid            ``mp_grid``: 28 at 224, 8 at 64             ``mp2_grid``: 14 at 224, 8 at 64
upsampling      nearest                                     bilinear (``align_corners=False``)
TV              anisotropic, ``tv_coef`` 1e-2, beta 3       none
jitter          ``mp_jitter``: 4 px at 224, 1 px at 64      none
==============  ==========================================  ===================================

Shared: ``l1_coef`` 1e-4 (MP2's reference is its own 14×14 grid at 224, pitfall 15), Adam lr 0.1,
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

from dataclasses import dataclass

import torch

from kit import checks
from kit.attributors import mask_optimisation as mo
from kit.attributors.mask_optimisation import binarise
from kit.defaults import resolve
from kit.engine import BATCH_SIZE, check_score, class_score
from kit.masks import upsample

__all__ = ["BATCH_SIZE", "MPResult", "binarise", "mask_composite", "mp_explain",
           "meaningful_perturbation", "mp2_explain", "mp2"]


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


def mask_composite(remover, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The composite an MP-family optimiser differentiates through.

    Differentiable remover: ``remover(x, keep)`` (same composite and clamp). Otherwise the
    straight-through binarised composite
    ``x * M_b + stopgrad(remover.fill(x, hard)) * (1 - M_b)`` with ``hard = binarise(keep)``
    and ``M_b = keep + stopgrad(hard - keep)`` (methods.md §3.3.1); see
    :func:`kit.attributors.mask_optimisation.fill_composite`.

    Args:
        remover: a built :class:`~kit.removers.Remover`.
        x: ``(B,3,H,W)`` images in [0,1]; keep: ``(B,1,H,W)`` in [0,1], may require grad.

    Returns:
        ``(B,3,H,W)`` composites (gradient w.r.t. ``keep`` in both cases).
    """
    return mo.fill_composite(remover, x, keep, hard=binarise, straight_through=True)


def _optimise(model, x, target, *, remover, grid, grid_name, mode, iterations, lr, l1_coef,
              tv_coef, tv_beta, jitter, score, seed, batch_size, progress, desc) -> MPResult:
    """MP and MP2 on the shared engine (grid and jitter already resolved; ``grid_name`` is the
    :mod:`kit.defaults` grid whose 224 value the penalties are normalised to)."""
    t, lr = mo.check_common(model, x, target, iterations=iterations, batch_size=batch_size,
                            grid=grid, lr=lr, seed=seed)
    check_score(score)
    checks.positive_int("jitter", jitter, 0)
    l1_coef = checks.number("l1_coef", l1_coef, minimum=0.0)
    tv_coef = checks.number("tv_coef", tv_coef, minimum=0.0)
    tv_beta = checks.number("tv_beta", tv_beta, minimum=0.0, strict=True)
    n, (H, W) = x.shape[0], x.shape[-2:]
    if jitter >= min(H, W):
        raise ValueError(f"jitter must be below the image size {min(H, W)}, got {jitter}")
    x = x.detach()
    rem = mo.build_remover(remover, model, x)
    gen = torch.Generator().manual_seed(seed)  # private: init, then the jitter offsets
    m = mo.uniform_grid(n, grid, gen, like=x)
    shifted = mo.Jitter(x, rem, jitter, gen)

    def objective(it: int) -> torch.Tensor:
        x0, rem0 = shifted()
        row = torch.empty(n, dtype=torch.float32)
        for sl, index in mo.chunks(n, batch_size):
            mc = m[sl]
            xt = mask_composite(rem0.take(index), x0[sl], upsample(mc, (H, W), mode))
            reg = mo.area_penalty(1 - mc, l1_coef, grid_name)
            if tv_coef:
                reg = reg + mo.boundary_penalty(mc, tv_coef, tv_beta, grid_name)
            loss = reg + class_score(model(xt), t[sl], score)
            loss.sum().backward()
            row[sl] = loss.detach().float().cpu()
        return row

    losses = mo.optimise(model, m, objective, lr=lr, iterations=iterations, n=n,
                         project=lambda p: p.clamp_(0, 1), progress=progress, desc=desc)
    mask = m.detach().float().clone()
    return MPResult(1 - mask, mask, losses)


def geometry(size: tuple[int, int], **_params) -> dict:
    """How an MP map reaches pixels: the method's own rule, nearest (it composites its mask grid
    upsampled with ``mode="nearest"``; MP2 upsamples bilinearly, the default)."""
    return {"mode": "nearest"}


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
        l1_coef: reference weight of the deletion area ``sum|1 - m|`` at 224×224 (1e-4), applied
            as ``l1_coef * 784 / grid²`` (deleting a fraction f costs ``0.0784 f`` at any size).
        tv_coef, tv_beta: reference weight and exponent of the anisotropic TV on the grid
            (1e-2, 3), the weight applied as ``tv_coef * 28 / grid``.
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
    return _optimise(model, x, target, remover=remover, grid=grid, grid_name="mp_grid",
                     mode="nearest",
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
        l1_coef: reference weight of the area at 224×224 (1e-4 on MP2's 14×14 grid), applied
            as ``l1_coef * 196 / grid²``.
        Others: as :func:`mp_explain`.

    Returns:
        :class:`MPResult` with ``sal = 1 - mask`` at ``(N,1,grid,grid)``.
    """
    side = min(x.shape[-2:]) if isinstance(x, torch.Tensor) and x.dim() == 4 else 224
    grid = resolve("mp2_grid", side) if grid is None else grid
    return _optimise(model, x, target, remover=remover, grid=grid, grid_name="mp2_grid",
                     mode="bilinear",
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
