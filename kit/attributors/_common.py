"""What every attributor shares: input checks and the model-state guard.

Class scores, batched forwards and the perturbation loop live in :mod:`kit.engine`; argument
checks in :mod:`kit.checks`.
"""

from __future__ import annotations

import contextlib

import torch

from kit.checks import images as _check_images
from kit.checks import positive_int as check_positive_int  # noqa: F401 (attributor vocabulary)
from kit.engine import SCORES, batched_scores, check_score, class_score  # noqa: F401


def no_remover(method: str, remover) -> None:
    """Raise unless ``remover`` is None: the uniform signature's ``remover`` for methods that
    remove no pixels (gradients, Grad-CAM, sobel, random)."""
    if remover is not None:
        raise ValueError(f"remover: {method} removes no pixels, so it takes no remover; "
                         f"got {remover!r} (pass remover=None)")


def check_inputs(model, x: torch.Tensor, target) -> torch.Tensor:
    """Validate ``x`` and ``target``; return the target as a long ``(N,)`` tensor on x's device.

    Raises:
        TypeError / ValueError naming the argument, the expectation and the value given.
    """
    _check_images("x", x)
    n = x.shape[0]
    n_classes = len(getattr(model, "classes", ())) or None
    if isinstance(target, bool):
        raise TypeError(f"target must be an int or a (N,) integer tensor, got {target!r}")
    if isinstance(target, int):
        t = torch.full((n,), target, dtype=torch.long)
    elif isinstance(target, torch.Tensor) and not target.is_floating_point() and target.dim() <= 1:
        t = target.long().reshape(-1)
        if t.numel() == 1:
            t = t.expand(n)
        if t.numel() != n:
            raise ValueError(f"target must have {n} entries (one per image), got {t.numel()}")
    else:
        raise TypeError(f"target must be an int or a (N,) integer tensor, got {target!r}")
    if n_classes is not None and (t.min() < 0 or t.max() >= n_classes):
        bad = t[(t < 0) | (t >= n_classes)][0].item()
        raise ValueError(f"target must be in [0, {n_classes - 1}] (model classes), got {bad}")
    return t.to(x.device)


@contextlib.contextmanager
def model_guard(model: torch.nn.Module):
    """Restore training mode and ``requires_grad`` flags on exit; fail loudly on leaked hooks."""
    modes = {m: m.training for m in model.modules()}
    flags = {p: p.requires_grad for p in model.parameters()}

    def n_hooks():
        return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
                   for m in model.modules())

    hooks = n_hooks()
    try:
        yield model
    finally:
        for m, mode in modes.items():
            m.train(mode)
        for p, flag in flags.items():
            p.requires_grad_(flag)
        if n_hooks() != hooks:  # a method forgot to remove a hook: a bug in kit, not user input
            raise RuntimeError("an attributor left hooks registered on the model")
