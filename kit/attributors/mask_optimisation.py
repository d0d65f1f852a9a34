"""The mask-optimisation engine shared by MP / MP-G, MP2 / MP2-G and FIDO (methods.md §3.3-3.5).

The three methods optimise a coarse ``g x g`` grid per image (MP / MP2: a keep-mask in [0,1];
FIDO: dropout logits) with one batched Adam loop over all images of a call. What they share
lives here, once:

======================  ======================================================================
piece                   here
======================  ======================================================================
validation              :func:`check_common` (inputs, iterations, batch_size, grid, lr, seed)
                        with :mod:`kit.checks`' messages
remover                 :func:`build_remover`: the one resolver :func:`kit.removers.get_remover`
                        with the image size (blur sigma 3 px at 64, 10 at 224) and per-image
                        fills aligned with the images; chunks take theirs by
                        :meth:`~kit.removers.Remover.take`
grid parametrisation    :func:`uniform_grid` (MP: ``U[0,1)`` from the private generator, shared
                        by the images of a call), :func:`constant_grid` (FIDO: logits 0)
upsampling              :func:`kit.masks.upsample` (``"nearest"`` MP, ``"bilinear"`` MP2/FIDO)
jitter                  :class:`Jitter`: reflect-padded image (and per-pixel fill), random crop
regularisers            :func:`l1` (area), :func:`tv` (anisotropic ``TV_beta``), applied
                        scale-corrected by :func:`area_penalty` / :func:`boundary_penalty`
                        (weights of :mod:`kit.defaults`' ``area_scale`` / ``boundary_scale``:
                        deleting a fraction f of the image costs what it costs at 224×224)
composite               :func:`fill_composite`: continuous through a differentiable remover,
                        otherwise a detached fill of a binarised mask (straight-through for MP)
guard + loop            :func:`optimise`: model in eval mode with frozen parameters, global RNGs
                        forked, gradients enabled, Adam with an optional learning-rate schedule
                        and projection, a tqdm bar over iterations
======================  ======================================================================

Usage::

    from kit.attributors import mask_optimisation as mo
    t, lr = mo.check_common(model, x, target, iterations=300, batch_size=64, grid=8, lr=0.1,
                            seed=0)
    rem = mo.build_remover("blur", model, x)
    m = mo.uniform_grid(x.shape[0], 8, gen, like=x)          # (N,1,8,8) leaf, requires grad
    losses = mo.optimise(model, m, objective, lr=lr, iterations=300, n=x.shape[0],
                         project=lambda p: p.clamp_(0, 1))    # objective(it) -> (N,) losses
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from tqdm import tqdm

from kit import checks
from kit.attributors._common import check_inputs, model_guard
from kit.defaults import area_scale, boundary_scale
from kit.removers import Precomputed, Remover, composite, get_remover

__all__ = [
    "check_common", "check_grid", "build_remover", "uniform_grid", "constant_grid", "Jitter",
    "binarise", "fill_composite", "l1", "tv", "area_penalty", "boundary_penalty", "chunks",
    "frozen", "optimise",
]


def check_grid(grid: int, size) -> int:
    """Raise unless ``grid`` is an integer in ``[1, min(size)]``; return it."""
    grid = checks.positive_int("grid", grid)
    side = min(checks.size2("size", size))
    if grid > side:
        raise ValueError(f"grid must be at most the image size {side}, got {grid}")
    return grid


def check_common(model, x: torch.Tensor, target, *, iterations, batch_size, grid, lr,
                 seed) -> tuple[torch.Tensor, float]:
    """The checks every mask optimiser makes.

    Args:
        model, x, target: as the attributors (``x`` ``(N,3,H,W)`` in [0,1]).
        iterations, batch_size, grid: integers >= 1 (``grid`` at most the image side).
        lr: Adam's learning rate, > 0.
        seed: the private generator's seed.

    Returns:
        ``(target, lr)``: the target as ``(N,)`` long on x's device, ``lr`` as a float.

    Raises:
        ValueError / TypeError naming the bad argument.
    """
    t = check_inputs(model, x, target)
    checks.positive_int("iterations", iterations)
    checks.positive_int("batch_size", batch_size)
    check_grid(grid, tuple(x.shape[-2:]))
    lr = checks.number("lr", lr, minimum=0.0, strict=True)
    checks.seed("seed", seed)
    return t, lr


def build_remover(remover, model, x: torch.Tensor) -> Remover:
    """The remover for images ``x``, through the one resolver.

    ``get_remover(remover, model=model, size=(H, W))``: ``"blur"`` takes its sigma from the
    image size. A per-image fill (:class:`~kit.removers.Precomputed`, the oracle) is checked
    against ``x`` (batch 1 or N, same H, W) and moved to x's device and dtype once, so the
    chunks of the loop take their images' fills with :meth:`~kit.removers.Remover.take`.

    Raises:
        ValueError: unknown remover (valid names listed), or a fill that does not match ``x``.
    """
    n, size = x.shape[0], tuple(x.shape[-2:])
    rem = get_remover(remover, model=model, size=size)
    if isinstance(rem, Precomputed):
        f = rem.fill_image
        if f.shape[0] not in (1, n) or tuple(f.shape[-2:]) != size:
            raise ValueError(f"the remover's fill_image has shape {tuple(f.shape)}, which does "
                             f"not match x {tuple(x.shape)} (batch 1 or {n}, same H, W)")
        rem = dataclasses.replace(rem, fill_image=f.to(device=x.device, dtype=x.dtype))
    return rem


def uniform_grid(n: int, grid: int, generator: torch.Generator, *,
                 like: torch.Tensor) -> torch.Tensor:
    """MP's init: one ``U[0,1)`` grid from ``generator``, the same for all ``n`` images.

    Sharing the draw makes a batch give the maps its images give one at a time (GAM seeds each
    image alike).

    Returns:
        ``(n,1,grid,grid)`` leaf on ``like``'s device and dtype, requiring grad.
    """
    m0 = torch.rand((1, 1, grid, grid), generator=generator).expand(n, -1, -1, -1)
    return m0.to(device=like.device, dtype=like.dtype).clone().requires_grad_(True)


def constant_grid(n: int, grid: int, value: float, *, like: torch.Tensor) -> torch.Tensor:
    """A constant ``(n,1,grid,grid)`` leaf requiring grad (FIDO: dropout logits 0)."""
    return torch.full((n, 1, grid, grid), float(value), device=like.device, dtype=like.dtype,
                      requires_grad=True)


class Jitter:
    """Random shifts of the images (and of a fill tied to their pixels) for each iteration.

    The images are reflect-padded once by ``jitter // 2`` (top/left) and ``jitter - jitter // 2``
    (bottom/right); each call draws offsets ``j1, j2`` uniformly from ``{0..jitter}`` with the
    private generator and crops ``(H, W)`` there (offset ``jitter // 2`` = the unshifted image).
    A per-pixel fill (:class:`~kit.removers.Precomputed`) is padded and cropped alike, so it stays
    aligned with the pixels it replaces. ``jitter=0`` returns the inputs and draws nothing.

    Args:
        x: ``(N,3,H,W)`` images; remover: the built remover; jitter: maximal shift in pixels;
        generator: the private generator (its draws follow the init's).
    """

    def __init__(self, x: torch.Tensor, remover: Remover, jitter: int,
                 generator: torch.Generator) -> None:
        self.x, self.remover, self.jitter, self.generator = x, remover, jitter, generator
        self.size = tuple(x.shape[-2:])
        if jitter:
            top = jitter // 2
            pads = (top, jitter - top, top, jitter - top)
            self.x_pad = F.pad(x, pads, mode="reflect")
            self.fill_pad = (F.pad(remover.fill_image, pads, mode="reflect")
                             if isinstance(remover, Precomputed) else None)

    def __call__(self) -> tuple[torch.Tensor, Remover]:
        """``(x0, remover0)``: this iteration's ``(N,3,H,W)`` images and their remover."""
        if not self.jitter:
            return self.x, self.remover
        H, W = self.size
        j1, j2 = torch.randint(0, self.jitter + 1, (2,), generator=self.generator).tolist()
        x0 = self.x_pad[..., j1 : j1 + H, j2 : j2 + W]
        if self.fill_pad is None:
            return x0, self.remover
        f0 = self.fill_pad[..., j1 : j1 + H, j2 : j2 + W]
        return x0, dataclasses.replace(self.remover, fill_image=f0)


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


def fill_composite(remover: Remover, x: torch.Tensor, keep: torch.Tensor, *,
                   hard: Callable[[torch.Tensor], torch.Tensor],
                   straight_through: bool) -> torch.Tensor:
    """The composite a mask optimiser differentiates through, chosen by ``remover.differentiable``.

    Differentiable remover: ``clamp(x * keep + F(x, keep) * (1 - keep), 0, 1)``, the remover's
    own composite (its input checks skipped: they would pull a grad-requiring tensor to Python
    floats, and ``keep`` is in [0,1] by construction).

    Otherwise the fill is computed on ``h = hard(keep)`` and detached, ``F = stopgrad(R.fill(x,
    h))``, so the gradient reaches ``keep`` as ``x - F``:

    * ``straight_through=True`` (MP-G): ``x * M_b + F * (1 - M_b)`` with ``M_b = keep +
      stopgrad(h - keep)``: the forward pass uses the binary mask (methods.md §3.3.1, pitfall 10);
    * ``straight_through=False`` (FIDO-CA): ``clamp(x * keep + F * (1 - keep), 0, 1)`` with the
      continuous ``keep``.

    Args:
        remover: a built remover (per-image data aligned with ``x``).
        x: ``(B,3,H,W)`` images in [0,1]; keep: ``(B,1,H,W)`` in [0,1], may require grad.
        hard: the binarisation of ``keep`` the fill sees (:func:`binarise`, rounding, ...).
        straight_through: see above.

    Returns:
        ``(B,3,H,W)`` composites, with a gradient w.r.t. ``keep``.
    """
    if remover.differentiable:
        fill = remover.fill(x, keep).to(dtype=x.dtype, device=x.device)
        return composite(x, keep, fill).clamp(0, 1)
    h = hard(keep)
    fill = remover.fill(x, h).detach().to(dtype=x.dtype, device=x.device)
    if straight_through:
        return composite(x, keep + (h - keep).detach(), fill)
    return composite(x, keep, fill).clamp(0, 1)


def l1(v: torch.Tensor) -> torch.Tensor:
    """``sum |v|`` per map: ``(B,...) -> (B,)``."""
    return v.abs().flatten(1).sum(1)


def tv(m: torch.Tensor, beta: float) -> torch.Tensor:
    """Anisotropic ``TV_beta``: ``sum |dh|^beta + sum |dw|^beta`` per map, ``(B,1,h,w) -> (B,)``."""
    dh = (m[..., 1:, :] - m[..., :-1, :]).abs().pow(beta).flatten(1).sum(1)
    dw = (m[..., :, 1:] - m[..., :, :-1]).abs().pow(beta).flatten(1).sum(1)
    return dh + dw


def area_penalty(v: torch.Tensor, coef: float, name: str) -> torch.Tensor:
    """Scale-corrected area term ``coef · A_ref / A · Σ|v|`` per map (= ``coef · A_ref · mean|v|``).

    ``A`` is the number of terms of one map (``h*w``), ``A_ref`` their number at the 224×224
    reference (:func:`kit.defaults.area_scale`), so a map with ``|v| = 1`` on a fraction ``f`` of
    its cells costs ``coef · A_ref · f`` at every size: the published weight ``coef`` keeps its
    meaning per fraction of the image.

    Args:
        v: ``(B,1,h,w)`` (MP/MP2: ``1 - m`` on the grid; FIDO: upsampled probabilities).
        coef: the reference weight (MP/MP2 1e-4, FIDO 1e-3).
        name: the grid the reference sum runs over (``"mp_grid"``, ``"mp2_grid"``,
            ``"pixels"``; :func:`kit.defaults.reference_cells`).

    Returns:
        ``(B,)``.
    """
    return coef * area_scale(name, int(v[0].numel())) * l1(v)


def boundary_penalty(m: torch.Tensor, coef: float, beta: float, name: str) -> torch.Tensor:
    """Scale-corrected TV term ``coef · g_ref / g · TV_beta(m)`` per map on a ``g×g`` grid.

    A sharp-edged region of a fixed fraction of the image crosses ``∝ g`` grid edges; the factor
    ``g_ref / g`` (:func:`kit.defaults.boundary_scale`) gives it its cost on the reference grid.

    Args:
        m: ``(B,1,g,g)`` mask grid; coef: the reference weight (MP 1e-2); beta: the exponent;
        name: the grid default (``"mp_grid"``).

    Returns:
        ``(B,)``.
    """
    return coef * boundary_scale(name, int(m.shape[-1])) * tv(m, beta)


def chunks(total: int, batch_size: int) -> Iterator[tuple[slice, torch.Tensor]]:
    """``(slice, index)`` of consecutive chunks of ``batch_size`` over ``range(total)``; the
    ``(B,)`` long index is what :meth:`~kit.removers.Remover.take` receives."""
    for start in range(0, total, batch_size):
        stop = min(start + batch_size, total)
        yield slice(start, stop), torch.arange(start, stop)


@contextlib.contextmanager
def frozen(model: torch.nn.Module, device: torch.device):
    """Optimise inputs, not the model: eval mode, frozen parameters, forked global RNGs and
    gradients enabled inside; the model's modes and flags restored on exit (``model_guard``)."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with model_guard(model), torch.random.fork_rng(devices=devices), torch.enable_grad():
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        yield model


def optimise(model, param: torch.Tensor, objective: Callable[[int], torch.Tensor], *, lr: float,
             iterations: int, n: int, lr_at: Callable[[int], float] | None = None,
             project: Callable[[torch.Tensor], object] | None = None, progress: bool = False,
             desc: str = "mask optimisation") -> torch.Tensor:
    """The batched Adam loop of every mask optimiser, under :func:`frozen`.

    Each iteration ``it``: set the learning rate to ``lr_at(it)`` (when given), zero the
    gradient, call ``objective(it)`` (which backpropagates into ``param``, chunk by chunk, and
    returns the ``(n,)`` per-image objective before the step), step, then ``project(param)``
    in place without gradient (MP: clamp to [0,1]).

    Args:
        model: the explained classifier.
        param: the leaf tensor optimised (the grids of all images).
        objective: ``f(it) -> (n,)`` float losses (CPU).
        lr: Adam's initial learning rate.
        iterations: Adam steps.
        n: number of images (columns of the returned losses).
        lr_at: optional learning rate per iteration.
        project: optional in-place projection after each step.
        progress: a tqdm bar over iterations; desc: its label.

    Returns:
        ``(iterations, n)`` float32 (CPU) losses.
    """
    opt = torch.optim.Adam([param], lr=lr)
    losses = torch.empty(iterations, n, dtype=torch.float32)
    with frozen(model, param.device), \
            tqdm(total=iterations, disable=not progress, desc=desc, leave=False) as bar:
        for it in range(iterations):
            if lr_at is not None:
                for group in opt.param_groups:
                    group["lr"] = lr_at(it)
            opt.zero_grad(set_to_none=True)
            losses[it] = objective(it)
            opt.step()
            if project is not None:
                with torch.no_grad():
                    project(param)
            bar.update()
    return losses
