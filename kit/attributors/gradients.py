"""Gradient attributors through Captum (methods.md §3.6, style.md §5).

Let ``g(x) = dS_t/dx``, taken w.r.t. the **pixel-space** input (the classifier normalises inside),
with ``S_t`` the target's ``score`` (default: the **logit**). Each method forms a per-channel
estimate ``e(x)`` of shape ``(N,3,H,W)`` and reduces it over channels to the ``(N,1,H,W)`` map
(project choice, methods.md §7):

========================  ================================================  =========  ======
function                  per-channel estimate e(x) (Captum class)          reduction  sign
========================  ================================================  =========  ======
``saliency``              g(x) (``Saliency``)                               max|e_c|   >= 0
``input_x_gradient``      x * g(x) (``InputXGradient``)                     sum_c      signed
``integrated_gradients``  (x - x0) * (1/k) sum_i g(x0 + (i/k)(x - x0))      sum_c      signed
                          (``IntegratedGradients``, right Riemann sum)
``smoothgrad``            (1/J) sum_j g(x + eta_j)                          max|e_c|   >= 0
``smoothgrad_sq``         (1/J) sum_j g(x + eta_j)^2                        sum_c      >= 0
``vargrad``               (1/J) sum_j g(x + eta_j)^2 - SmoothGrad^2         sum_c      >= 0
``guided_backprop``       g, ReLU backward R_in = 1[a > 0] max(R_out, 0)    max|e_c|   >= 0
                          (``GuidedBackprop``)
========================  ================================================  =========  ======

Defaults: IG ``steps=50``, right Riemann sum, black baseline ``x0 = 0`` (pixel space);
SmoothGrad family ``n_samples=50`` (J), ``spread=0.15``: ``eta_j ~ N(0, sigma^2)`` with
``sigma = spread * (max x - min x)`` per image (``sigma=`` overrides it in pixel units). SmoothGrad
averages the signed per-channel gradients, then reduces channels (PAIR's order). VarGrad is the
population variance (1/J), as Captum's ``NoiseTunnel(nt_type="vargrad")``. Noisy inputs are not
clamped to [0,1] (as in PAIR and Captum).

Determinism and the RNG: the SmoothGrad noise is drawn from a **private** CPU ``torch.Generator``
seeded with ``seed`` (the global RNG is neither read nor advanced); the same J noise fields are used
for every image of the batch, scaled by that image's sigma, so the noise depends only on ``(seed,
n_samples, H, W)``, not on the batch composition, ``batch_size`` or the device.
Captum's ``NoiseTunnel`` is not used for that reason (it draws from the global RNG, per batch
partition); its results are reproduced exactly given the same noise (see the tests). The base
gradients come from Captum's ``Saliency``.

Guided backprop hooks every ``nn.ReLU`` *module* of the model (functional ``relu`` calls are not
seen: methods.md pitfall 34). In-place ReLUs are switched to out-of-place for the call and switched
back afterwards; Captum removes its hooks, and :func:`~kit.attributors._common.model_guard` checks
that none is left.

``batch_size`` bounds the number of images per forward/backward pass (IG: interpolation points;
SmoothGrad: noisy copies); it does not change the results beyond floating-point summation order.
``gradient_explain`` returns the per-channel estimate too (ROAR ranks channel elements, §4.6).

Usage::

    from kit.attributors.gradients import integrated_gradients, gradient_explain
    sal = integrated_gradients(clf, x, target, steps=50)          # (N,1,H,W)
    res = gradient_explain(clf, x, target, method="smoothgrad_sq", n_samples=25)
    res.sal, res.per_channel                                       # (N,1,H,W), (N,3,H,W)
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from kit.attributors._common import (
    check_inputs,
    check_positive_int,
    check_score,
    model_guard,
    no_remover,
)
from kit.engine import BATCH_SIZE

# ----------------------------------------------------------------------------------------------
# shared plumbing
# ----------------------------------------------------------------------------------------------


class Scored(nn.Module):
    """Forward function for Captum: pixel-space images -> ``(B,C)`` scores of every class.

    Captum picks the target column; the values are those of
    :func:`~kit.attributors._common.class_score` for ``score``.
    """

    def __init__(self, model: nn.Module, score: str) -> None:
        super().__init__()
        self.model = model
        self.score = score

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        logits = self.model(z)
        if self.score == "prob":
            return logits.softmax(1)
        if self.score == "logprob":
            return logits.log_softmax(1)
        return logits


def check_grad_mode() -> None:
    if torch.is_inference_mode_enabled():
        raise RuntimeError(
            "gradient attributors need autograd: call them outside torch.inference_mode()"
        )


def _check_float(name: str, value, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= minimum:
        raise ValueError(f"{name} must be a number >= {minimum}, got {value!r}")
    return float(value)


def chunks(n: int, batch_size: int, progress: bool, desc: str):
    starts = range(0, n, batch_size)
    return tqdm(starts, disable=not progress, desc=desc, leave=False)


def leaf(x: torch.Tensor) -> torch.Tensor:
    """A detached copy requiring grad: Captum then neither warns nor touches the caller's x."""
    return x.detach().clone().requires_grad_(True)


def _reduce(per_channel: torch.Tensor, how: str) -> torch.Tensor:
    if how == "max_abs":
        sal = per_channel.abs().amax(1, keepdim=True)
    else:
        sal = per_channel.sum(1, keepdim=True)
    return sal.float()


@contextlib.contextmanager
def _out_of_place_relus(model: nn.Module):
    """Switch in-place ``nn.ReLU`` modules to out-of-place for the block (pitfall 34)."""
    switched = [m for m in model.modules() if isinstance(m, nn.ReLU) and m.inplace]
    for m in switched:
        m.inplace = False
    try:
        yield
    finally:
        for m in switched:
            m.inplace = True


def _plain_gradients(method: str, model, x, t, score, batch_size, progress) -> torch.Tensor:
    """Per-channel estimate of saliency, input x gradient or guided backprop, in chunks."""
    from captum.attr import GuidedBackprop, InputXGradient, Saliency

    fwd = Scored(model, score)
    if method == "saliency":
        algo = Saliency(fwd)
        kwargs = {"abs": False}
    elif method == "input_x_gradient":
        algo, kwargs = InputXGradient(fwd), {}
    else:
        algo, kwargs = GuidedBackprop(fwd), {}
    out = []
    for i in chunks(x.shape[0], batch_size, progress, method):
        out.append(algo.attribute(leaf(x[i : i + batch_size]), target=t[i : i + batch_size],
                                  **kwargs).detach())
    return torch.cat(out)


def _ig(model, x, t, score, batch_size, progress, steps, baseline) -> torch.Tensor:
    from captum.attr import IntegratedGradients

    algo = IntegratedGradients(Scored(model, score), multiply_by_inputs=True)
    out = []
    for i in chunks(x.shape[0], batch_size, progress, "integrated_gradients"):
        xi = x[i : i + batch_size]
        out.append(algo.attribute(
            leaf(xi), baselines=baseline[i : i + batch_size].to(xi.dtype),
            target=t[i : i + batch_size], n_steps=steps, method="riemann_right",
            internal_batch_size=max(batch_size, xi.shape[0]),
        ).detach())
    return torch.cat(out)


def _noise(seed: int, n_samples: int, shape, device, dtype) -> torch.Tensor:
    """``(J,3,H,W)`` standard normal noise from a private CPU generator (global RNG untouched)."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn((n_samples, *shape), generator=g).to(device=device, dtype=dtype)


def _smooth(model, x, t, score, batch_size, progress, n_samples, spread, sigma, seed):
    """Mean and mean square of the noisy gradients, ``(N,3,H,W)`` each (float64 sums)."""
    from captum.attr import Saliency

    algo = Saliency(Scored(model, score))
    n = x.shape[0]
    eps = _noise(seed, n_samples, x.shape[1:], x.device, x.dtype)
    if sigma is None:
        flat = x.detach().flatten(1)
        sig = spread * (flat.amax(1) - flat.amin(1))
    else:
        sig = torch.full((n,), sigma, dtype=x.dtype, device=x.device)
    total, total_sq = (torch.zeros(x.shape, dtype=torch.float64, device=x.device) for _ in "ab")
    for k in chunks(n * n_samples, batch_size, progress, "smoothgrad"):
        idx = torch.arange(k, min(k + batch_size, n * n_samples), device=x.device)
        img, smp = idx // n_samples, idx % n_samples
        noisy = x.detach()[img] + sig[img].view(-1, 1, 1, 1) * eps[smp]
        grad = algo.attribute(leaf(noisy), target=t[img], abs=False).detach().double()
        total.index_add_(0, img, grad)
        total_sq.index_add_(0, img, grad * grad)
    return total / n_samples, total_sq / n_samples


# ----------------------------------------------------------------------------------------------
# the common engine and its diagnostics
# ----------------------------------------------------------------------------------------------

REDUCTIONS = {
    "saliency": "max_abs",
    "input_x_gradient": "sum",
    "integrated_gradients": "sum",
    "smoothgrad": "max_abs",
    "smoothgrad_sq": "sum",
    "vargrad": "sum",
    "guided_backprop": "max_abs",
}
"""Method -> channel reduction (methods.md §3.6, §7): ``max_abs`` = max_c |e_c|, ``sum`` = sum_c."""


@dataclass(frozen=True)
class GradientResult:
    """Output of :func:`gradient_explain`.

    Attributes:
        sal: ``(N,1,H,W)`` float32 map, as the method's attributor returns it.
        per_channel: ``(N,3,H,W)`` float32 per-channel estimate e(x) before the channel reduction.
        method: the method's name (a key of :data:`REDUCTIONS`).
    """

    sal: torch.Tensor
    per_channel: torch.Tensor
    method: str


def gradient_explain(model, x: torch.Tensor, target, *, method: str = "saliency",
                     score: str = "logit", batch_size: int = BATCH_SIZE, seed: int = 0,
                     progress: bool = False, steps: int = 50, baseline=0.0,
                     n_samples: int = 50, spread: float = 0.15,
                     sigma: float | None = None) -> GradientResult:
    """Any gradient method of this module, with its per-channel estimate.

    Args:
        model: pixel-space :class:`~kit.models.Classifier`.
        x: ``(N,3,H,W)`` float images in [0,1].
        target: int or ``(N,)`` long, the explained class.
        method: a key of :data:`REDUCTIONS`.
        score: ``"logit"`` (default), ``"prob"`` or ``"logprob"``.
        batch_size: images per forward/backward pass.
        seed: seed of the SmoothGrad noise (unused by the deterministic methods).
        progress: show a tqdm bar.
        steps: IG's number of Riemann steps k.
        baseline: IG's baseline x0 in pixel space: a float (0 = black) or a tensor broadcastable
            to ``(N,3,H,W)``.
        n_samples: SmoothGrad family's number of noisy samples J.
        spread: noise std relative to each image's range ``max x - min x``.
        sigma: absolute noise std in pixel units (overrides ``spread`` when given).

    Returns:
        :class:`GradientResult` with float32 tensors on ``x.device``.

    Raises:
        ValueError / TypeError naming the bad argument.
    """
    if method not in REDUCTIONS:
        valid = ", ".join(REDUCTIONS)
        raise ValueError(f"unknown gradient method {method!r}; valid names: {valid}")
    t = check_inputs(model, x, target)
    check_score(score)
    check_positive_int("batch_size", batch_size)
    check_grad_mode()
    with model_guard(model), torch.enable_grad():
        if method in ("saliency", "input_x_gradient"):
            e = _plain_gradients(method, model, x, t, score, batch_size, progress)
        elif method == "guided_backprop":
            with _out_of_place_relus(model), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
                e = _plain_gradients(method, model, x, t, score, batch_size, progress)
        elif method == "integrated_gradients":
            check_positive_int("steps", steps, 2)  # Captum needs >= 2
            base = _baseline(baseline, x)
            e = _ig(model, x, t, score, batch_size, progress, steps, base)
        else:
            check_positive_int("n_samples", n_samples)
            _check_float("spread", spread)
            if sigma is not None:
                _check_float("sigma", sigma)
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise ValueError(f"seed must be an integer, got {seed!r}")
            mean, mean_sq = _smooth(model, x, t, score, batch_size, progress, n_samples, spread,
                                    sigma, seed)
            if method == "smoothgrad":
                e = mean
            elif method == "smoothgrad_sq":
                e = mean_sq
            else:  # population variance, clipped at 0 against rounding
                e = (mean_sq - mean * mean).clamp_min(0)
    per_channel = e.float()
    return GradientResult(_reduce(per_channel, REDUCTIONS[method]), per_channel, method)


def _baseline(baseline, x: torch.Tensor) -> torch.Tensor:
    """IG baseline as an ``(N,3,H,W)`` tensor (pixel space)."""
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return torch.full_like(x, float(baseline))
    if isinstance(baseline, torch.Tensor):
        try:
            return baseline.to(device=x.device, dtype=x.dtype).expand_as(x)
        except RuntimeError as err:
            raise ValueError(
                f"baseline must broadcast to x's shape {tuple(x.shape)}, "
                f"got {tuple(baseline.shape)}"
            ) from err
    raise TypeError(f"baseline must be a float or a tensor, got {type(baseline).__name__}")


# ----------------------------------------------------------------------------------------------
# the registered attributors
# ----------------------------------------------------------------------------------------------


def saliency(model, x: torch.Tensor, target, *, remover=None, score: str = "logit",
             batch_size: int = BATCH_SIZE, seed: int = 0, progress: bool = False) -> torch.Tensor:
    """Vanilla gradient (Simonyan et al. 2014): ``max_c |dS_t/dx_c|``.

    Args: as :func:`gradient_explain` (``seed`` is unused: the method is deterministic).

    Returns:
        ``(N,1,H,W)`` float32, >= 0.
    """
    no_remover("saliency", remover)
    return gradient_explain(model, x, target, method="saliency", score=score,
                            batch_size=batch_size, seed=seed, progress=progress).sal


def input_x_gradient(model, x: torch.Tensor, target, *, remover=None, score: str = "logit",
                     batch_size: int = BATCH_SIZE, seed: int = 0,
                     progress: bool = False) -> torch.Tensor:
    """Input x gradient: ``sum_c x_c * dS_t/dx_c`` (pixel space).

    Returns:
        ``(N,1,H,W)`` float32, signed.
    """
    no_remover("input_x_gradient", remover)
    return gradient_explain(model, x, target, method="input_x_gradient", score=score,
                            batch_size=batch_size, seed=seed, progress=progress).sal


def integrated_gradients(model, x: torch.Tensor, target, *, remover=None, score: str = "logit",
                         batch_size: int = BATCH_SIZE, seed: int = 0, progress: bool = False,
                         steps: int = 50, baseline=0.0) -> torch.Tensor:
    """Integrated gradients (Sundararajan et al. 2017), right Riemann sum, black baseline.

    ``sum_c (x - x0)_c * (1/k) sum_{i=1..k} dS_t/dx_c (x0 + (i/k)(x - x0))``; the channel sum keeps
    completeness: the map sums to about ``S_t(x) - S_t(x0)``.

    Args:
        steps: k >= 2 (default 50; ROAR replication: 25).
        baseline: x0 in pixel space, a float (default 0 = black) or a tensor broadcastable to x.
        others: as :func:`gradient_explain`.

    Returns:
        ``(N,1,H,W)`` float32, signed.
    """
    no_remover("integrated_gradients", remover)
    return gradient_explain(model, x, target, method="integrated_gradients", score=score,
                            batch_size=batch_size, seed=seed, progress=progress, steps=steps,
                            baseline=baseline).sal


def smoothgrad(model, x: torch.Tensor, target, *, remover=None, score: str = "logit",
               batch_size: int = BATCH_SIZE, seed: int = 0, progress: bool = False,
               n_samples: int = 50, spread: float = 0.15,
               sigma: float | None = None) -> torch.Tensor:
    """SmoothGrad (Smilkov et al. 2017): mean of the signed gradients at J noisy copies, then
    ``max_c |.|`` (the vanilla gradient's reduction).

    Args:
        n_samples: J (default 50).
        spread: noise std as a fraction of each image's range (default 0.15).
        sigma: absolute noise std in pixel units; overrides ``spread``.
        seed: seed of the private noise generator.

    Returns:
        ``(N,1,H,W)`` float32, >= 0.
    """
    no_remover("smoothgrad", remover)
    return gradient_explain(model, x, target, method="smoothgrad", score=score,
                            batch_size=batch_size, seed=seed, progress=progress,
                            n_samples=n_samples, spread=spread, sigma=sigma).sal


def smoothgrad_sq(model, x: torch.Tensor, target, *, remover=None, score: str = "logit",
                  batch_size: int = BATCH_SIZE, seed: int = 0, progress: bool = False,
                  n_samples: int = 50, spread: float = 0.15,
                  sigma: float | None = None) -> torch.Tensor:
    """SmoothGrad²: ``sum_c mean_j g_c(x + eta_j)^2``. Arguments as :func:`smoothgrad`.

    Returns:
        ``(N,1,H,W)`` float32, >= 0.
    """
    no_remover("smoothgrad_sq", remover)
    return gradient_explain(model, x, target, method="smoothgrad_sq", score=score,
                            batch_size=batch_size, seed=seed, progress=progress,
                            n_samples=n_samples, spread=spread, sigma=sigma).sal


def vargrad(model, x: torch.Tensor, target, *, remover=None, score: str = "logit",
            batch_size: int = BATCH_SIZE, seed: int = 0, progress: bool = False,
            n_samples: int = 50, spread: float = 0.15,
            sigma: float | None = None) -> torch.Tensor:
    """VarGrad: ``sum_c`` of the population variance (1/J) of ``g_c(x + eta_j)``.
    Arguments as :func:`smoothgrad`.

    Returns:
        ``(N,1,H,W)`` float32, >= 0.
    """
    no_remover("vargrad", remover)
    return gradient_explain(model, x, target, method="vargrad", score=score,
                            batch_size=batch_size, seed=seed, progress=progress,
                            n_samples=n_samples, spread=spread, sigma=sigma).sal


def guided_backprop(model, x: torch.Tensor, target, *, remover=None, score: str = "logit",
                    batch_size: int = BATCH_SIZE, seed: int = 0,
                    progress: bool = False) -> torch.Tensor:
    """Guided backprop (Springenberg et al. 2015) through Captum's ``GuidedBackprop``:
    ``max_c |e_c|``.

    Only ``nn.ReLU`` modules are modified (functional ``relu`` is invisible to hooks); in-place
    ReLUs are made out-of-place during the call. ``seed`` is unused.

    Returns:
        ``(N,1,H,W)`` float32, >= 0.
    """
    no_remover("guided_backprop", remover)
    return gradient_explain(model, x, target, method="guided_backprop", score=score,
                            batch_size=batch_size, seed=seed, progress=progress).sal
