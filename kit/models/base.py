"""The pixel-space contract every classifier and inpainter in kit follows.

* A :class:`Classifier` maps pixel-space images ``(N,3,H,W)`` in [0,1] to logits ``(N,C)``;
  normalisation lives inside it. It is in eval mode with frozen parameters, exposes ``classes``,
  ``mean`` (the "gray" colour: the training data's mean, methods.md §2.1) and ``features(x)``
  (penultimate features ``(N,D)``, the input of the last layer, for Fréchet distances).
* An :class:`Inpainter` is called as ``inpainter(images, keep) -> images``: pixel-space images, a
  keep-mask ``(N,1,H,W)`` (1 = keep, 0 = hole), returning the composite (original pixels where
  keep = 1, generated content in the holes), batched and under ``torch.inference_mode``. The
  keep/hole conversion lives only here, in the base class; adapters implement ``generate``.
* :func:`load_state` reads a checkpoint with errors that say what is missing and how to get it.

This module imports nothing from the loaders (:mod:`kit.models.world`, ``torchvision``,
``places365``, ``torchscript``): they subclass the contract, so the dependency runs one way.

Usage::

    from kit.models.base import Classifier
    clf = Classifier(net, classes, mean, std, name="mine", fc_name="fc")
    logits = clf(x)                      # x (N,3,H,W) in [0,1] -> (N,C)
    feats = clf.features(x)              # (N,D)
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from kit import checks, passes
from kit.engine import model_input

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Classifier", "Inpainter", "load_state"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Classifier(nn.Module):
    """Pixel-space wrapper: ``logits = net((x - mean) / std)``.

    Args:
        net: the network on normalised inputs. If it has a ``features`` method, that gives the
            penultimate features; otherwise ``fc_name`` names the final layer, whose input is
            captured.
        classes: class names, index = logit position.
        mean, std: per-channel normalisation; ``mean`` is also the remover's gray colour.
        name: registry name, for display.
        fc_name: dotted name of the final layer (torchvision ResNets: ``"fc"``; VGG:
            ``"classifier.6"``), resolved with ``net.get_submodule``.
    """

    head_types: tuple[type[nn.Module], ...] = (nn.Linear,)
    """Layer types accepted as the final layer ``fc_name`` (a convolution's input is pooled)."""

    def __init__(
        self,
        net: nn.Module,
        classes: Sequence[str],
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        *,
        name: str = "",
        fc_name: str = "fc",
    ) -> None:
        super().__init__()
        self.net = net
        self.classes = tuple(classes)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.name = name
        self.fc_name = fc_name
        self.register_buffer("_mean", torch.tensor(self.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(self.std).view(1, 3, 1, 1), persistent=False)
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel space [0,1] -> the network's input space, laid out by :func:`model_input`.

        Every pass goes through here, so every caller (the engine's composites, the mask
        optimisers' and gradient methods' differentiable composites, the metrics) gets the
        channels-last layout on the CPU without converting its own tensors.
        """
        return model_input((x - self._mean) / self._std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N,3,H,W)`` pixel-space images -> ``(N,C)`` logits."""
        out = self.net(self.normalize(x))
        if passes.active():  # make run's pass counts (kit.passes); off by default
            n = int(x.shape[0])
            passes.record("classifier_forward", n)
            if out.requires_grad:
                out.register_hook(lambda g: passes.record("classifier_backward", n))
        return out

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N,3,H,W)`` pixel-space images -> ``(N,D)`` penultimate features."""
        z = self.normalize(x)
        passes.record("classifier_forward", int(x.shape[0]))
        # A *method* named features (kit's nets) gives the pooled vector; torchvision's
        # `features` submodules (VGG, DenseNet, ...) are conv trunks, so those use the head tap.
        if inspect.ismethod(getattr(self.net, "features", None)):
            return self.net.features(z)
        return self.head_input(z)

    def head_input(self, z: torch.Tensor) -> torch.Tensor:
        """The input of the final layer ``fc_name`` when the net runs on ``z``.

        Args:
            z: ``(N,3,H,W)`` images already in the network's input space (see :meth:`normalize`).

        Returns:
            ``(N,D)``: the captured input, flattened; a convolutional head's ``(N,D,h,w)`` input
            map is averaged over space first, as the head itself pools next (SqueezeNet).

        Raises:
            AttributeError: ``fc_name`` names no submodule of one of :attr:`head_types`.
        """
        try:
            head = self.net.get_submodule(self.fc_name)
        except AttributeError:
            head = None
        if not isinstance(head, self.head_types):
            kinds = " or ".join(t.__name__ for t in self.head_types)
            raise AttributeError(
                f"cannot find the final layer {self.fc_name!r} ({kinds}) of "
                f"{type(self.net).__name__}; pass fc_name= to {type(self).__name__}"
            )
        captured = []
        handle = head.register_forward_hook(lambda m, inp, out: captured.append(inp[0]))
        try:
            self.net(z)
        finally:
            handle.remove()  # never leave hooks behind (style.md §11 contract tests)
        out = captured[-1]
        if isinstance(head, nn.Conv2d):
            out = out.mean(dim=(2, 3))
        return out.flatten(1)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, classes={len(self.classes)}"


class Inpainter(nn.Module):
    """Base of the pixel-space inpainters: ``inpainter(images, keep) -> composite``.

    Subclasses implement :meth:`generate`, which receives validated pixel-space images and a
    *hole* mask (1 = fill) and returns a full image; the base class composites with the original
    pixels, so kept pixels are returned bit for bit.
    """

    name: str = ""

    def generate(self, images: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """Return ``(N,3,H,W)`` generated images given ``hole`` ``(N,1,H,W)`` in {0,1}."""
        raise NotImplementedError  # abstract: every concrete inpainter overrides it

    def forward(self, images: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Fill the holes of ``images`` where ``keep`` is 0.

        Args:
            images: ``(N,3,H,W)`` float in [0,1].
            keep: ``(N,1,H,W)`` or ``(1,1,H,W)`` keep-mask; values below 0.5 are holes.

        Returns:
            ``(N,3,H,W)``: ``images`` where keep >= 0.5, generated content elsewhere.
        """
        checks.images("images", images)
        if keep.dim() != 4 or keep.shape[1] != 1 or keep.shape[-2:] != images.shape[-2:]:
            raise ValueError(
                f"keep must have shape (N,1,{images.shape[-2]},{images.shape[-1]}), "
                f"got {tuple(keep.shape)}"
            )
        if keep.shape[0] not in (1, images.shape[0]):
            raise ValueError(
                f"keep's batch size must be 1 or {images.shape[0]} (images), got {keep.shape[0]}"
            )
        hole = (keep < 0.5).to(images.dtype).expand(images.shape[0], -1, -1, -1)
        passes.record("inpainter", int(images.shape[0]))
        with torch.inference_mode():
            out = self.generate(images, hole).clamp(0, 1).to(images.dtype)
            return torch.where(hole.bool(), out, images)


def load_state(path: str | Path, what: str, how: str):
    """``torch.load(path, weights_only=True)`` on the CPU, with errors that say what and how.

    Args:
        path: the checkpoint file.
        what: what it is, for the messages (``"world classifier"``).
        how: a sentence saying how to obtain or rebuild the file.

    Returns:
        The loaded object (a state dict, or a dict holding one).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        RuntimeError: the file is corrupt or not a PyTorch file readable with ``weights_only``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} checkpoint not found: expected the file {path}. {how}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt or not a torch file: say so instead of a pickle traceback
        raise RuntimeError(
            f"{what} checkpoint {path} could not be read ({type(err).__name__}: {err}); "
            f"the file is corrupt or not a PyTorch state dict. {how}"
        ) from err
