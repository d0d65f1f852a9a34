"""Classifiers and inpainters behind one pixel-space contract, loaded by name from two registries.

* A :class:`Classifier` maps pixel-space images ``(N,3,H,W)`` in [0,1] to logits ``(N,C)``;
  normalisation lives inside it. It is in eval mode with frozen parameters, exposes ``classes``,
  ``mean`` (the "gray" colour: the training data's mean, methods.md §2.1) and ``features(x)``
  (penultimate features ``(N,D)``, the input of the last layer, for Fréchet distances).
* An :class:`Inpainter` is called as ``inpainter(images, keep) -> images``: pixel-space images, a
  keep-mask ``(N,1,H,W)`` (1 = keep, 0 = hole), returning the composite (original pixels where
  keep = 1, generated content in the holes), batched and under ``torch.inference_mode``.

Layout (the dependency runs one way, from the loaders to the contract):

* :mod:`kit.models.base`: the contract (:class:`Classifier`, :class:`Inpainter`,
  :func:`load_state`, ImageNet normalisation);
* :mod:`kit.models.world`: the shipped world classifier and inpainter (trained by :mod:`kit.train`);
* :mod:`kit.models.torchvision`, :mod:`kit.models.places365`, :mod:`kit.models.torchscript`:
  real-scale models from files the user already has (nothing here downloads);
* this module: the registries :data:`CLASSIFIERS` and :data:`INPAINTERS` (name -> loader) and
  :func:`load_classifier` / :func:`load_inpainter`, which look names up in them.

Every loader is called as ``loader(path=None, *, device="cpu", **options)``; adding a model is one
entry in a registry. Every torchvision classification model name is accepted too
(:func:`kit.models.torchvision.names`): they share one loader and are listed by
:func:`available_classifiers`, without importing torchvision at import time.

Usage::

    from kit.models import load_classifier, load_inpainter
    clf = load_classifier("world")            # shipped checkpoint, trained by kit.train
    inp = load_inpainter("world")             # completion; "world-removal": removal
    filled = inp(x, keep)
    resnet = load_classifier("resnet50")      # torchvision weights from TORCH_HOME's cache
    lama = load_inpainter("lama", path="big-lama.pt")
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import torch

from kit import checks
from kit.models import places365, torchscript, world
from kit.models import torchvision as _torchvision
from kit.models.base import IMAGENET_MEAN, IMAGENET_STD, Classifier, Inpainter, load_state
from kit.models.world import (
    WORLD_CLASSIFIER_PATH,
    WORLD_INPAINTER_PATH,
    WORLD_REMOVAL_INPAINTER_PATH,
    WorldInpainter,
)

__all__ = [
    "on_device",
    "CLASSIFIERS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INPAINTERS",
    "WORLD_CLASSIFIER_PATH",
    "WORLD_INPAINTER_PATH",
    "WORLD_REMOVAL_INPAINTER_PATH",
    "Classifier",
    "Inpainter",
    "WorldInpainter",
    "available_classifiers",
    "available_inpainters",
    "load_classifier",
    "load_inpainter",
    "load_state",
]

CLASSIFIERS: dict[str, Callable[..., Classifier]] = {
    "world": world.world_classifier,
    "places365_resnet50": places365.load_resnet50,
}
"""Classifier loaders by name, each ``loader(path=None, *, device="cpu", **options)``. Torchvision
names are not listed here (they are only known once torchvision is imported): they all go to
:func:`kit.models.torchvision.load`."""

INPAINTERS: dict[str, Callable[..., Inpainter]] = {
    "world": world.world_inpainter,
    "world-removal": world.world_removal_inpainter,
    "lama": torchscript.load_lama,
    "torchscript": torchscript.load_torchscript,
}
"""Inpainter loaders by name, each ``loader(path=None, *, device="cpu", **options)``."""


def available_classifiers() -> list[str]:
    """Names accepted by :func:`load_classifier`: :data:`CLASSIFIERS`, then torchvision's."""
    return [*CLASSIFIERS, *_torchvision.names()]


def available_inpainters() -> list[str]:
    """Names accepted by :func:`load_inpainter` (the keys of :data:`INPAINTERS`)."""
    return list(INPAINTERS)


def load_classifier(
    name: str = "world", *, path: str | Path | None = None, device: str | torch.device = "cpu",
    **kwargs,
) -> Classifier:
    """Load a pixel-space classifier by name.

    Args:
        name: ``"world"`` (the shipped checkpoint), ``"places365_resnet50"`` (needs ``path`` to the
            CSAIL ``resnet50_places365.pth.tar``), or any torchvision classification model name
            (e.g. ``"resnet50"``), whose weights come from torchvision's cache (never downloaded
            here: a missing file raises an error saying where to put it). See
            :func:`available_classifiers`.
        path: checkpoint path (world: overrides the shipped file; places365: required;
            torchvision: not accepted).
        device: target device.
        **kwargs: passed to the loader (torchvision: e.g. ``weights=None`` for random
            initialisation; places365: ``categories_path``, ``arch``).

    Returns:
        An eval-mode, frozen :class:`Classifier` on ``(N,3,H,W)`` pixel-space images.

    Raises:
        TypeError: ``name`` is not a str.
        ValueError: unknown name (the message lists the valid ones), or a missing/extra ``path``.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    loader = CLASSIFIERS.get(name)
    if loader is None:
        checks.choice("name", name, available_classifiers(), "classifier")
        loader = functools.partial(_torchvision.load, name)
    return loader(path=path, device=device, **kwargs)


def load_inpainter(
    name: str = "world", *, path: str | Path | None = None, device: str | torch.device = "cpu",
    **kwargs,
) -> Inpainter:
    """Load a pixel-space inpainter ``inpainter(images, keep) -> images`` by name.

    Args:
        name: ``"world"`` (the shipped completion inpainter, the paper's "G"),
            ``"world-removal"`` (the shipped removal inpainter: true background in every hole),
            ``"lama"`` (a TorchScript big-lama export at
            ``path``) or ``"torchscript"`` (any TorchScript ``(image, hole_mask) -> image`` file).
            See :func:`available_inpainters`.
        path: model file (world: overrides the shipped file; lama and torchscript: required).
        device: target device.
        **kwargs: loader options (``batch_size``; for TorchScript files see
            :func:`kit.models.torchscript.load_torchscript_inpainter`).

    Returns:
        An :class:`Inpainter` on ``(N,3,H,W)`` images in [0,1] and ``(N,1,H,W)`` keep-masks.

    Raises:
        ValueError: unknown name (the message lists the valid ones), or a missing ``path``.
    """
    loader = INPAINTERS[checks.choice("name", name, INPAINTERS, "inpainter")]
    return loader(path=path, device=device, **kwargs)


_COPIES: dict = {}


def on_device(model: torch.nn.Module, device) -> torch.nn.Module:
    """``model`` on ``device``: itself when its parameters and buffers are there already, else a
    copy moved there (kept, so the next call with the same model and device returns the same
    copy). The caller's model is never moved: a map computed on a GPU leaves it on the CPU.

    Args:
        model: a module (a :class:`Classifier`, an :class:`Inpainter`).
        device: a ``torch.device`` or its name (``"cpu"``, ``"cuda"``, ``"cuda:1"``).

    Raises:
        ValueError: ``device`` names no device.
    """
    import copy

    dev = checks.device("device", device)
    tensors = [*model.parameters(), *model.buffers()]
    if all(t.device == dev or (dev.index is None and t.device.type == dev.type) for t in tensors):
        return model
    key = (id(model), str(dev))
    hit = _COPIES.get(key)
    if hit is not None and hit[0] is model:
        return hit[1]
    moved = copy.deepcopy(model).to(dev)
    _COPIES[key] = (model, moved)  # the original is kept alive with its copy: ids stay unique
    return moved
