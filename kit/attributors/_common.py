"""Shared engine of the attributors: input checks, class scores, batched forwards, state guard."""

from __future__ import annotations

import contextlib

import torch

from kit.models import _check_images

SCORES = ("prob", "logit", "logprob")


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


def check_score(score: str) -> str:
    """Raise unless ``score`` is one of :data:`SCORES`."""
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}, got {score!r}")
    return score


def class_score(logits: torch.Tensor, target: torch.Tensor, score: str = "prob") -> torch.Tensor:
    """The explained scalar per row: softmax probability, logit or log-probability of ``target``.

    Args:
        logits: ``(B,C)``; target: ``(B,)`` long.
    """
    if score == "prob":
        vals = logits.softmax(1)
    elif score == "logprob":
        vals = logits.log_softmax(1)
    elif score == "logit":
        vals = logits
    else:
        check_score(score)
    return vals.gather(1, target.view(-1, 1)).squeeze(1)


@torch.inference_mode()
def batched_scores(model, images: torch.Tensor, target: torch.Tensor, score: str,
                   batch_size: int) -> torch.Tensor:
    """``class_score`` of ``model`` on many images, ``batch_size`` per forward pass.

    Args:
        images: ``(B,3,H,W)``; target: ``(B,)`` or ``(1,)`` (broadcast).
    """
    out = []
    for i in range(0, images.shape[0], batch_size):
        chunk = images[i : i + batch_size]
        t = target.expand(images.shape[0])[i : i + batch_size]
        out.append(class_score(model(chunk), t, score))
    return torch.cat(out)


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


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    """Raise a clear error unless ``value`` is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value
