"""Grad-CAM (Selvaraju et al. 2017) through Captum's ``LayerGradCam``.

For a layer with activations ``A`` of shape ``(K,h,w)``:
``sal = ReLU( sum_k alpha_k A_k )`` with ``alpha_k = mean_{h,w} dS_t/dA_k``, ``S_t`` the target's
``score`` (default: the logit). The map stays on the layer's native ``(h,w)`` grid (methods.md
§1.2): resize it only with ``kit.masks.upsample``.

Layer choice: ``layer=None`` takes the **output of the last convolutional block**
(:func:`block_output`): the module that, in one probe forward pass, last produces a spatial
``(N,K,h,w)`` map (``h·w > 1``) before the network pools it away. Containers finish after their
children, so this is the block's output after its BatchNorm and ReLU, the usual Grad-CAM layer
(Selvaraju et al. use the last convolutional layer's rectified feature maps; pytorch-grad-cam
recommends ``layer4[-1]`` for ResNets and ``features[-1]`` for VGG):

* the world classifier (:class:`kit.nets.WorldCNN`): ``net.body`` (its last block's
  Conv-BN-ReLU output, 8×8 at 64×64), not the last ``Conv2d``, whose output precedes BN and ReLU;
* torchvision ResNets: ``net.layer4``; VGG and other models with a ``features`` trunk:
  ``net.features`` (after the last pooling, as pytorch-grad-cam's ``features[-1]``).

:func:`last_conv` (the last ``nn.Conv2d``, before its BN and ReLU) remains available as an
explicit ``layer=``; any module or dotted name (``layer="net.body.19"``) can be passed.

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
from kit.attributors.gradients import Scored, check_grad_mode, chunks, leaf
from kit.engine import BATCH_SIZE


def block_output(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """The module whose output is the last convolutional block's (Grad-CAM's default layer).

    One forward pass on ``x[:1]`` with a hook on every submodule records which modules return a
    4-D ``(1,K,h,w)`` tensor with ``h·w > 1``; the last one to *finish* is the block output
    (a container finishes after its last child, so the Sequential or residual stage wins over the
    ReLU inside it). Modules called more than once in the pass (a ReLU reused inside a ResNet
    block) are skipped: a layer hook would see several activations.

    Args:
        model: the classifier.
        x: ``(N,3,H,W)`` images (only the first is used).

    Returns:
        A submodule of ``model``.

    Raises:
        ValueError: no submodule returns a spatial map (pass ``layer=``).
    """
    calls: list[tuple[nn.Module, bool]] = []
    counts: dict[int, int] = {}

    def hook(module, _inputs, output):
        counts[id(module)] = counts.get(id(module), 0) + 1
        spatial = (isinstance(output, torch.Tensor) and output.dim() == 4
                   and output.shape[-1] * output.shape[-2] > 1)
        calls.append((module, spatial))

    handles = [m.register_forward_hook(hook) for m in model.modules() if m is not model]
    try:
        with model_guard(model), torch.no_grad():
            model(x[:1])
    finally:
        for h in handles:
            h.remove()
    for module, spatial in reversed(calls):
        if spatial and counts[id(module)] == 1:
            return module
    raise ValueError(
        f"model {type(model).__name__} has no submodule returning a spatial (N,K,h,w) map; pass "
        "layer= (a module or its dotted name) to grad_cam")


def last_conv(model: nn.Module) -> nn.Conv2d:
    """The last ``nn.Conv2d`` in ``model.modules()`` order; ValueError if there is none."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(
            f"model {type(model).__name__} has no nn.Conv2d layer; pass layer= (a module or "
            "its dotted name) to grad_cam"
        )
    return convs[-1]


def _resolve_layer(model: nn.Module, layer, x: torch.Tensor) -> nn.Module:
    if layer is None:
        return block_output(model, x)
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
        layer: a module of ``model``, its dotted name (``"net.body.18"``), or None for the
            last convolutional block's output (:func:`block_output`, after its BN and ReLU;
            see the module docstring).
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
    module = _resolve_layer(model, layer, x)
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
