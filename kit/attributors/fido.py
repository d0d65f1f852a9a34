"""FIDO: saliency by learned Bernoulli dropout, SSR and SDR (methods.md §3.5; pitfall 32).

A dropout logit ``theta`` per cell of a ``g x g`` grid (``fido_grid``: 56 at 224, 16 at 64),
init 0 (drop probability 0.5), is optimised for every image at once (one batched Adam loop).
Each iteration ``e`` (0-based, ``E = iterations``):

1. ``p = bilinear_up(sigmoid(theta))``: the per-pixel drop probability, upsampled *before*
   sampling.
2. ``n_copies`` concrete samples per image (temperature ``tau``, ``u ~ U(0,1)``):
   ``z = 1 - sigmoid((log p - log(1 - p) + log u - log(1 - u)) / tau)``, z ~ 1 = keep.
3. In-fill ``x_tilde = x * z + F * (1 - z)``. A differentiable remover (gray, blur, noise) fills
   as usual; a non-differentiable one (``inpaint``: FIDO-CA) sees the **rounded** sample,
   ``F = stopgrad(R.fill(x, round(z)))``, while the composite keeps the continuous ``z``
   (:func:`dropout_composite`).
4. ``S`` = the target's ``score``, by default FIDO's log-odds
   ``log p(t | x_tilde) - log sum_{c != t} p(c | x_tilde)``, averaged over the copies.
5. Objective, with the L1 over the **upsampled** probabilities and ``r(e) = min(e / ramp, 1)``:

   * ``"sdr"`` (default, project choice): ``S + r(e) * l1_coef * s * sum p`` (drop little,
     destroy the class); map ``p - 0.5``;
   * ``"ssr"``: ``-S + r(e) * l1_coef * s * sum (1 - p)`` (keep little, preserve the class); map
     ``(1 - p) - 0.5``;

   plus ``tv_coef * sum (grad p)^2`` on the upsampled ``p`` (default 0; a smooth region of fixed
   image fraction costs the same at every size, so it is not rescaled).

   **Scale correction** ``s = 224² / (H·W)`` (:func:`kit.defaults.area_scale` ``"pixels"``):
   ``l1_coef`` is FIDO's published λ for sums over 224×224 pixels, so dropping a fraction ``f``
   of the image costs ``λ · 50176 · f`` at any size (×12.25 at 64×64; before, the 64×64 area cost
   was 12× weaker than FIDO's, science audit §4).

   **Ramp**: ``ramp`` defaults to :data:`RAMP_SHARE` (10%) of ``iterations``, FIDO's 30 of 300;
   a ramp as long as the run (the old fixed 30 at a 30-step budget) keeps the area weight below
   its value for the whole run.
6. Adam (lr 0.05) with FIDO's linear decay in the old ``LambdaLR`` semantics: iteration ``e``
   steps with ``lr * (1 - (e + 1) / E)`` (the last step has rate 0).

Both maps are per pixel, in [-0.5, 0.5], higher = more evidence for the target.

The loop runs on the mask-optimisation engine shared with MP / MP2
(:mod:`kit.attributors.mask_optimisation`: checks, remover, composite, TV, guard, Adam).

Kit adaptations: the concrete noise ``u`` comes from a private generator seeded with ``seed``
(FIDO seeds its globals with 1) and is shared by all images of a call (each image sees the
sequence it would see alone, so batches equal single-image calls); ``remover="blur"`` uses
``blur_sigma`` of ``kit.defaults`` (3 at 64, 10 at 224, FIDO's ``BlurryInpainter``).

Usage::

    from kit.attributors.fido import fido, fido_explain
    sal = fido(clf, x, y)                                  # SDR, blur fill, (N,1,H,W)
    sal_g = fido(clf, x, y, remover="inpaint")             # FIDO-CA (generative in-fill)
    res = fido_explain(clf, x, y, objective="ssr"); res.drop, res.losses
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kit import checks
from kit.attributors import mask_optimisation as mo
from kit.defaults import resolve
from kit.engine import BATCH_SIZE, SCORES, class_score
from kit.masks import upsample

__all__ = ["BATCH_SIZE", "OBJECTIVES", "FIDO_SCORES", "RAMP_SHARE", "FidoResult", "logodds",
           "concrete_keep", "dropout_composite", "default_ramp", "fido_explain", "fido"]

OBJECTIVES = ("sdr", "ssr")
RAMP_SHARE = 0.1
"""Share of the iterations over which the L1 weight ramps up by default (FIDO: 30 of 300)."""
FIDO_SCORES = ("logodds", *SCORES)
_EPS = 1e-6


@dataclass(frozen=True)
class FidoResult:
    """Output of :func:`fido_explain`.

    Attributes:
        sal: ``(N,1,H,W)`` float32 map in [-0.5, 0.5] (SDR: ``p - 0.5``; SSR: ``0.5 - p``).
        drop: ``(N,1,g,g)`` float32 drop probabilities ``sigmoid(theta)`` on the grid.
        losses: ``(iterations, N)`` float32 (CPU) per-image objective at each iteration, before
            that iteration's step.
    """

    sal: torch.Tensor
    drop: torch.Tensor
    losses: torch.Tensor


def logodds(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """FIDO's score ``log p(t) - log sum_{c != t} p(c)`` per row, computed stably.

    Args:
        logits: ``(B,C)``, C >= 2; target: ``(B,)`` long.
    """
    lsm = logits.log_softmax(1)
    own = lsm.gather(1, target.view(-1, 1)).squeeze(1)
    others = lsm.scatter(1, target.view(-1, 1), float("-inf")).logsumexp(1)
    return own - others


def concrete_keep(drop: torch.Tensor, u: torch.Tensor, temperature: float) -> torch.Tensor:
    """Relaxed keep sample ``1 - sigmoid((logit drop + logit u) / temperature)``.

    Args:
        drop: drop probabilities in [0,1]; u: uniforms in (0,1), broadcastable against ``drop``.
    """
    d = drop.clamp(_EPS, 1 - _EPS)
    u = u.clamp(_EPS, 1 - _EPS)
    return 1 - torch.sigmoid((d.log() - (1 - d).log() + u.log() - (1 - u).log()) / temperature)


def _rounded(keep: torch.Tensor) -> torch.Tensor:
    return keep.detach().round()


def dropout_composite(remover, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """FIDO's in-fill ``x * keep + F * (1 - keep)`` for a relaxed sample ``keep``.

    Differentiable remover: ``remover(x, keep)`` (same composite and clamp). Otherwise the fill
    is computed on the rounded sample and detached, ``F = stopgrad(remover.fill(x,
    round(keep)))``, and the composite keeps the continuous ``keep`` (gradient ``x - F``); see
    :func:`kit.attributors.mask_optimisation.fill_composite`.

    Args:
        remover: a built :class:`~kit.removers.Remover`.
        x: ``(B,3,H,W)`` in [0,1]; keep: ``(B,1,H,W)`` in [0,1], may require grad.
    """
    return mo.fill_composite(remover, x, keep, hard=_rounded, straight_through=False)


def default_ramp(iterations: int) -> int:
    """The default ramp: ``max(1, round(RAMP_SHARE * iterations))`` iterations (30 at 300, 10 at
    100), always shorter than the run once ``iterations >= 2``."""
    return max(1, round(RAMP_SHARE * iterations))


def _score(logits, t, score):
    return logodds(logits, t) if score == "logodds" else class_score(logits, t, score)


def fido_explain(model, x: torch.Tensor, target, *, remover="blur", objective: str = "sdr",
                 grid: int | None = None, iterations: int = 300, lr: float = 0.05,
                 l1_coef: float = 1e-3, tv_coef: float = 0.0, temperature: float = 0.1,
                 n_copies: int = 8, ramp: int | None = None, score: str = "logodds",
                 seed: int = 0, batch_size: int = BATCH_SIZE,
                 progress: bool = False) -> FidoResult:
    """FIDO (SSR / SDR) with its diagnostics (grid drop probabilities, per-iteration losses).

    Args:
        model: pixel-space :class:`~kit.models.Classifier`.
        x: ``(N,3,H,W)`` float images in [0,1].
        target: int or ``(N,)`` long, the explained class.
        remover: a :mod:`kit.removers` name or object: ``"blur"`` (sigma from ``kit.defaults``),
            ``"gray"``, ``"noise"``, ``"inpaint"`` (FIDO-CA: rounded sample, detached fill).
        objective: ``"sdr"`` (default) or ``"ssr"``.
        grid: dropout grid side; None = ``fido_grid`` (16 at 64, 56 at 224).
        iterations: Adam steps E (300), each on ``n_copies`` samples per image.
        lr: initial Adam learning rate (0.05), decayed linearly to 0.
        l1_coef: FIDO's L1 weight lambda for sums over 224×224 pixels (1e-3), applied as
            ``l1_coef * 224² / (H*W)`` on the upsampled probabilities.
        tv_coef: weight of ``sum (grad p)^2`` on the upsampled drop probabilities (0).
        temperature: concrete temperature (0.1).
        n_copies: concrete samples per image and iteration (8).
        ramp: iterations over which the L1 weight ramps up linearly from 0; None =
            :func:`default_ramp` (10% of ``iterations``: 30 at 300); 0 = none. An explicit ramp
            must be shorter than ``iterations``.
        score: ``"logodds"`` (default), ``"prob"``, ``"logit"`` or ``"logprob"``.
        seed: seed of the private generator of the concrete noise.
        batch_size: perturbed copies per forward/backward pass.
        progress: show a tqdm bar over iterations.

    Returns:
        :class:`FidoResult` with the ``(N,1,H,W)`` map.

    Raises:
        ValueError / TypeError naming the bad argument (and the valid choices).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if score not in FIDO_SCORES:
        raise ValueError(f"score must be one of {', '.join(FIDO_SCORES)}, got {score!r}")
    side = min(x.shape[-2:]) if isinstance(x, torch.Tensor) and x.dim() == 4 else 224
    grid = resolve("fido_grid", side) if grid is None else grid
    t, lr = mo.check_common(model, x, target, iterations=iterations, batch_size=batch_size,
                            grid=grid, lr=lr, seed=seed)
    checks.positive_int("n_copies", n_copies)
    if ramp is None:
        ramp = default_ramp(iterations)
    else:
        checks.positive_int("ramp", ramp, 0)
        if ramp and ramp >= iterations:
            raise ValueError(f"ramp must be below iterations ({iterations}) or 0, got {ramp}: a "
                             "ramp as long as the run never reaches the full L1 weight")
    l1_coef = checks.number("l1_coef", l1_coef, minimum=0.0)
    tv_coef = checks.number("tv_coef", tv_coef, minimum=0.0)
    temperature = checks.number("temperature", temperature, minimum=0.0, strict=True)
    if score == "logodds" and len(getattr(model, "classes", ())) == 1:
        raise ValueError("score='logodds' needs a model with at least 2 classes")
    n, (H, W), k = x.shape[0], x.shape[-2:], n_copies
    x = x.detach()
    rem = mo.build_remover(remover, model, x)
    xr = x.repeat_interleave(k, 0)  # (N*K,3,H,W), copies of an image adjacent
    tr = t.repeat_interleave(k, 0)
    gen = torch.Generator().manual_seed(seed)  # private: the concrete noise
    theta = mo.constant_grid(n, grid, 0.0, like=x)
    sign = 1.0 if objective == "sdr" else -1.0

    def objective_at(e: int) -> torch.Tensor:
        rw = min(e / ramp, 1.0) if ramp else 1.0
        drop = upsample(torch.sigmoid(theta), (H, W), "bilinear")  # (N,1,H,W)
        u = torch.rand((1, k, 1, H, W), generator=gen).to(device=x.device, dtype=x.dtype)
        z = concrete_keep(drop.unsqueeze(1), u, temperature).reshape(n * k, 1, H, W)
        # the copies are scored in chunks: backpropagate the score into the sample z first,
        # then z (and the regulariser) into theta once
        z_leaf = z.detach().requires_grad_(True)
        data = torch.zeros(n * k, dtype=torch.float32)
        for sl, index in mo.chunks(n * k, batch_size):
            xt = dropout_composite(rem.take(index // k), xr[sl], z_leaf[sl])
            s = _score(model(xt), tr[sl], score)
            (sign * s / k).sum().backward()
            data[sl] = (sign * s).detach().float().cpu()
        area = drop if objective == "sdr" else 1 - drop
        # lambda per fraction of the image: l1_coef * 224**2 / (H*W) * sum (kit.defaults)
        reg = rw * mo.area_penalty(area, l1_coef, "pixels")
        if tv_coef:
            reg = reg + tv_coef * mo.tv(drop, 2.0)  # sum (grad p)^2
        torch.autograd.backward([z, reg.sum()], [z_leaf.grad, None])
        return data.view(n, k).mean(1) + reg.detach().float().cpu()

    # FIDO's LambdaLR in its old semantics, stepped before each epoch: the last step has rate 0
    losses = mo.optimise(model, theta, objective_at, lr=lr, iterations=iterations, n=n,
                         lr_at=lambda e: lr * (1 - (e + 1) / iterations), progress=progress,
                         desc="fido")
    with torch.no_grad():
        p_grid = torch.sigmoid(theta).float()
        drop = upsample(p_grid, (H, W), "bilinear")
        sal = drop - 0.5 if objective == "sdr" else 0.5 - drop
    return FidoResult(sal.clone(), p_grid.clone(), losses)


def fido(model, x: torch.Tensor, target, *, remover="blur", objective: str = "sdr",
         grid: int | None = None, iterations: int = 300, lr: float = 0.05,
         l1_coef: float = 1e-3, tv_coef: float = 0.0, temperature: float = 0.1,
         n_copies: int = 8, ramp: int | None = None, score: str = "logodds", seed: int = 0,
         batch_size: int = BATCH_SIZE, progress: bool = False) -> torch.Tensor:
    """FIDO saliency map (SDR: ``p_drop - 0.5``; SSR: ``p_keep - 0.5``), per pixel.

    Args: as :func:`fido_explain`.

    Returns:
        ``(N,1,H,W)`` float32 in [-0.5, 0.5] on ``x.device``, higher = more evidence for the
        target.
    """
    return fido_explain(model, x, target, remover=remover, objective=objective, grid=grid,
                        iterations=iterations, lr=lr, l1_coef=l1_coef, tv_coef=tv_coef,
                        temperature=temperature, n_copies=n_copies, ramp=ramp, score=score,
                        seed=seed, batch_size=batch_size, progress=progress).sal
