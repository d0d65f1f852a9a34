"""Grad-CAM (Selvaraju et al. 2017) through Captum's ``LayerGradCam``.

For a layer with activations ``A`` of shape ``(K,h,w)``:
``sal = ReLU( sum_k alpha_k A_k )`` with ``alpha_k = mean_{h,w} dS_t/dA_k``, ``S_t`` the target's
``score`` (default: the logit). The map stays on the layer's native ``(h,w)`` grid (methods.md
§1.2): resize it only with ``kit.masks.upsample``.

Layer choice: ``layer=None`` takes the **last** ``nn.Conv2d`` in the model's module registration
order (``model.modules()``), which for sequential CNNs (the world classifier, VGG) is the last
convolution applied. Its *output* is used, i.e. before any BatchNorm/ReLU that follows it; for the
conventional "last conv block" (e.g. a torchvision ResNet's ``layer4``) pass the module or its
dotted name (``layer="net.layer4"``).

Usage::

    from kit.attributors.grad_cam import grad_cam
    sal = grad_cam(clf, x, target)                 # (N,1,8,8) for the 64x64 world classifier
"""

from __future__ import annotations

import torch
from torch import nn

from kit.attributors._common import (
    check_inputs,
    check_positive_int,
    check_score,
    model_guard,
    no_remover,
)
from kit.attributors.gradients import BATCH_SIZE, Scored, check_grad_mode, chunks, leaf


def last_conv(model: nn.Module) -> nn.Conv2d:
    """The last ``nn.Conv2d`` in ``model.modules()`` order; ValueError if there is none."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(
            f"model {type(model).__name__} has no nn.Conv2d layer; pass layer= (a module or "
            "its dotted name) to grad_cam"
        )
    return convs[-1]


def _resolve_layer(model: nn.Module, layer) -> nn.Module:
    if layer is None:
        return last_conv(model)
    if isinstance(layer, str):
        try:
            return model.get_submodule(layer)
        except AttributeError as err:
            raise ValueError(f"layer {layer!r} is not a submodule of the model: {err}") from err
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in model.modules()):
            raise ValueError("layer must be a submodule of the model")
        return layer
    raise TypeError(f"layer must be None, a dotted name or a module, got {type(layer).__name__}")


def grad_cam(model, x: torch.Tensor, target, *, remover=None, layer: str | nn.Module | None = None,
             score: str = "logit", batch_size: int = BATCH_SIZE, seed: int = 0,
             progress: bool = False) -> torch.Tensor:
    """Grad-CAM map at ``layer``'s native grid.

    Args:
        model: pixel-space :class:`~kit.models.Classifier`.
        x: ``(N,3,H,W)`` float images in [0,1].
        target: int or ``(N,)`` long.
        layer: a module of ``model``, its dotted name (``"net.body.18"``), or None for the last
            ``nn.Conv2d`` (see the module docstring).
        score: ``"logit"`` (default), ``"prob"`` or ``"logprob"``.
        batch_size: images per forward/backward pass.
        seed: unused (deterministic); accepted for a uniform call.
        progress: show a tqdm bar.

    Returns:
        ``(N,1,h,w)`` float32 >= 0 on ``x.device``, (h,w) = the layer's output grid.
    """
    from captum.attr import LayerGradCam

    no_remover("grad_cam", remover)
    t = check_inputs(model, x, target)
    check_score(score)
    check_positive_int("batch_size", batch_size)
    module = _resolve_layer(model, layer)
    check_grad_mode()
    with model_guard(model), torch.enable_grad():
        algo = LayerGradCam(Scored(model, score), module)
        out = []
        for i in chunks(x.shape[0], batch_size, progress, "grad_cam"):
            cam = algo.attribute(leaf(x[i : i + batch_size]), target=t[i : i + batch_size],
                                 relu_attributions=True, attr_dim_summation=True)
            out.append(cam.detach())
    sal = torch.cat(out).float()
    if sal.dim() != 4 or sal.shape[1] != 1:
        raise ValueError(
            f"layer {type(module).__name__} gives Grad-CAM maps of shape {tuple(sal.shape[1:])}; "
            "choose a layer with (N,K,h,w) outputs"
        )
    return sal
