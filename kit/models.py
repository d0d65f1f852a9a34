"""Classifiers and inpainters behind one pixel-space contract.

* A :class:`Classifier` maps pixel-space images ``(N,3,H,W)`` in [0,1] to logits ``(N,C)``;
  normalisation lives inside it. It is in eval mode with frozen parameters, exposes ``classes``,
  ``mean`` (the "gray" colour: the training data's mean, methods.md §2.1) and ``features(x)``
  (penultimate features, the input of the last linear layer, for Fréchet distances).
* An :class:`Inpainter` is called as ``inpainter(images, keep) -> images``: pixel-space images, a
  keep-mask ``(N,1,H,W)`` (1 = keep, 0 = hole), returning the composite (original pixels where
  keep = 1, generated content in the holes), batched and under ``torch.inference_mode``. The
  keep/hole conversion lives only in the inpainter adapters.

Usage::

    from kit.models import load_classifier, load_inpainter
    clf = load_classifier("world")            # shipped checkpoint, trained by kit.train
    inp = load_inpainter("world")
    filled = inp(x, keep)

Real-scale models load through the same two functions: torchvision classifiers by name (through
torchvision's weights API and its cache), a Places365 ResNet-50 from a checkpoint path, LaMa or any
TorchScript inpainter from a file (see :mod:`kit.external`).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from kit.paths import DATA_DIR

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

WORLD_CLASSIFIER_PATH = DATA_DIR / "world_classifier.pt"
WORLD_INPAINTER_PATH = DATA_DIR / "world_inpainter.pt"


class Classifier(nn.Module):
    """Pixel-space wrapper: ``logits = net((x - mean) / std)``.

    Args:
        net: the network on normalised inputs. If it has a ``features`` method, that gives the
            penultimate features; otherwise ``fc_name`` names the final linear layer, whose input is
            captured.
        classes: class names, index = logit position.
        mean, std: per-channel normalisation; ``mean`` is also the remover's gray colour.
        name: registry name, for display.
        fc_name: dotted name of the final linear layer (torchvision ResNets: ``"fc"``; VGG:
            ``"classifier.6"``).
    """

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
        """Pixel space [0,1] -> the network's input space."""
        return (x - self._mean) / self._std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N,3,H,W)`` pixel-space images -> ``(N,C)`` logits."""
        return self.net(self.normalize(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N,3,H,W)`` pixel-space images -> ``(N,D)`` penultimate features."""
        z = self.normalize(x)
        # A *method* named features (kit's nets) gives the pooled vector; torchvision's
        # `features` submodules (VGG, DenseNet, ...) are conv trunks, so those use the fc hook.
        if inspect.ismethod(getattr(self.net, "features", None)):
            return self.net.features(z)
        try:
            fc = self.net.get_submodule(self.fc_name)
        except AttributeError:
            fc = None
        if not isinstance(fc, nn.Linear):
            raise AttributeError(
                f"cannot find the final linear layer {self.fc_name!r} of "
                f"{type(self.net).__name__}; "
                "pass fc_name= to Classifier"
            )
        captured = []
        handle = fc.register_forward_hook(lambda m, inp, out: captured.append(inp[0]))
        try:
            self.net(z)
        finally:
            handle.remove()
        return captured[0].flatten(1)

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
        _check_images("images", images)
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
        with torch.inference_mode():
            out = self.generate(images, hole).clamp(0, 1).to(images.dtype)
            return torch.where(hole.bool(), out, images)


def _check_images(name: str, x: torch.Tensor) -> None:
    """Raise a clear error unless ``x`` is a float ``(N,3,H,W)`` tensor in [0,1] without NaNs."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N,3,H,W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a float tensor in [0,1], got dtype {x.dtype}")
    if torch.isnan(x).any():
        raise ValueError(f"{name} contains NaN values")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        raise ValueError(
            f"{name} must be in [0,1] (pixel space), got values in [{lo:.3g}, {hi:.3g}]"
        )


def _load_state(path: Path, what: str, how: str) -> dict:
    """``torch.load(weights_only=True)`` with errors that say what is missing and how to get it."""
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


class WorldInpainter(Inpainter):
    """The embedded world's learned inpainter (:class:`~kit.nets.GatedInpainter`).

    Args:
        net: a trained ``GatedInpainter`` (works on [-1,1] images).
        batch_size: images per forward pass; larger batches are chunked.
    """

    name = "world"

    def __init__(self, net: nn.Module, batch_size: int = 256) -> None:
        super().__init__()
        self.net = net.eval()
        self.batch_size = int(batch_size)
        for p in self.net.parameters():
            p.requires_grad_(False)

    def generate(self, images: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """Run the network in chunks; pads H, W to multiples of 4 (two stride-2 stages)."""
        h, w = images.shape[-2:]
        ph, pw = (-h) % 4, (-w) % 4
        outs = []
        for i in range(0, images.shape[0], self.batch_size):
            x = images[i : i + self.batch_size] * 2 - 1
            m = hole[i : i + self.batch_size]
            if ph or pw:  # reflect-pad the image, mark the padding as known context
                x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="reflect")
                m = torch.nn.functional.pad(m, (0, pw, 0, ph))
            outs.append((self.net(x, m)[..., :h, :w] + 1) / 2)
        return torch.cat(outs)


def _world_classifier(path=None, device="cpu") -> Classifier:
    from kit.nets import WorldCNN

    ckpt = _load_state(
        path or WORLD_CLASSIFIER_PATH,
        "world classifier",
        "It ships with kit under data/; retrain it with `python -m kit.train classifier`.",
    )
    try:
        net = WorldCNN(len(ckpt["classes"]), ckpt["config"]["width"])
        net.load_state_dict(ckpt["state_dict"])
    except (KeyError, RuntimeError) as err:
        raise RuntimeError(
            f"world classifier checkpoint {path or WORLD_CLASSIFIER_PATH} does not match "
            f"kit.nets.WorldCNN ({err}); retrain it with `python -m kit.train classifier`"
        ) from err
    return Classifier(net, ckpt["classes"], ckpt["mean"], ckpt["std"], name="world").to(device)


def _world_inpainter(path=None, device="cpu", batch_size: int = 256) -> WorldInpainter:
    from kit.nets import GatedInpainter

    ckpt = _load_state(
        path or WORLD_INPAINTER_PATH,
        "world inpainter",
        "It ships with kit under data/; retrain it with `python -m kit.train inpainter`.",
    )
    try:
        net = GatedInpainter(ckpt["config"]["width"])
        net.load_state_dict(ckpt["state_dict"])
    except (KeyError, RuntimeError) as err:
        raise RuntimeError(
            f"world inpainter checkpoint {path or WORLD_INPAINTER_PATH} does not match "
            f"kit.nets.GatedInpainter ({err}); retrain it with `python -m kit.train inpainter`"
        ) from err
    return WorldInpainter(net, batch_size).to(device)


def available_classifiers() -> list[str]:
    """Names accepted by :func:`load_classifier` (torchvision's classification models included)."""
    import torchvision

    return ["world", "places365_resnet50", *torchvision.models.list_models(torchvision.models)]


INPAINTERS = ("world", "lama", "torchscript")
"""Names accepted by :func:`load_inpainter`."""


def load_classifier(
    name: str = "world", *, path: str | Path | None = None, device: str | torch.device = "cpu",
    **kwargs,
) -> Classifier:
    """Load a pixel-space classifier by name.

    Args:
        name: ``"world"`` (the shipped checkpoint), ``"places365_resnet50"`` (needs ``path`` to the
            CSAIL ``resnet50_places365.pth.tar``), or any torchvision classification model name
            (e.g. ``"resnet50"``), whose weights come from torchvision's cache (never downloaded
            here: a missing file raises an error saying where to put it).
        path: checkpoint path (world: overrides the shipped file; places365: required).
        device: target device.
        **kwargs: passed to the torchvision / Places365 loaders in :mod:`kit.external`
            (e.g. ``weights=None`` for random initialisation).

    Returns:
        An eval-mode, frozen :class:`Classifier`.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name == "world":
        return _world_classifier(path, device)
    if name == "places365_resnet50":
        if path is None:
            raise ValueError(
                "load_classifier('places365_resnet50') needs path= to the CSAIL checkpoint "
                "resnet50_places365.pth.tar"
            )
        from kit import external

        return external.places365_classifier(path, device=device, **kwargs)
    valid = available_classifiers()
    if name not in valid:
        raise ValueError(f"unknown classifier {name!r}; valid names: {', '.join(valid)}")
    from kit import external

    return external.torchvision_classifier(name, device=device, **kwargs)


def load_inpainter(
    name: str = "world", *, path: str | Path | None = None, device: str | torch.device = "cpu",
    **kwargs,
) -> Inpainter:
    """Load a pixel-space inpainter ``inpainter(images, keep) -> images`` by name.

    Args:
        name: ``"world"`` (shipped checkpoint), ``"lama"`` (a TorchScript big-lama export at
            ``path``) or ``"torchscript"`` (any TorchScript ``(image, hole_mask) -> image`` file).
        path: model file (world: overrides the shipped file; lama and torchscript: required).
        device: target device.
        **kwargs: adapter options (``batch_size``; for TorchScript files see
            :func:`kit.external.load_torchscript_inpainter`).
    """
    if name == "world":
        return _world_inpainter(path, device, **kwargs)
    if name in ("lama", "torchscript"):
        if path is None:
            raise ValueError(f"load_inpainter({name!r}) needs path= to a TorchScript model file")
        from kit import external

        return external.load_torchscript_inpainter(path, flavor=name, device=device, **kwargs)
    raise ValueError(f"unknown inpainter {name!r}; valid names: {', '.join(INPAINTERS)}")
