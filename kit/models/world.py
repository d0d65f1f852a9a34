"""The embedded world's shipped models: the :class:`~kit.nets.WorldCNN` classifier and two
inpainters from one recipe (:func:`kit.train.train_inpainter`), all stored under ``data/``:

* ``world`` (:func:`world_inpainter`) — *completion*: trained to restore the original image inside
  a hole, so a hole over part of an object is completed (the paper's generic inpainter "G");
* ``world-removal`` (:func:`world_removal_inpainter`) — *removal*: trained to put the true
  background inside every hole, whatever part of the object it covers.

Both have the same input contract and network (:class:`~kit.nets.LiteInpainter`; checkpoints of
the older :class:`~kit.nets.GatedInpainter` still load, by their ``config["arch"]``).

Both loaders share one routine, :func:`load_net`: read the checkpoint (``{"state_dict", "config",
...}``), build the network from it, load the weights, and explain a mismatch with the command that
retrains it.

Usage::

    from kit.models.world import world_classifier, world_inpainter
    clf = world_classifier()                 # or kit.models.load_classifier("world")
    inp = world_inpainter(batch_size=64)
    filled = inp(x, keep)                    # x (N,3,64,64) in [0,1], keep (N,1,64,64)
    rem = world_removal_inpainter()          # or kit.models.load_inpainter("world-removal")
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from kit.engine import BATCH_SIZE
from kit.models.base import Classifier, Inpainter, load_state
from kit.nets import INPAINTER_ARCHS, WorldCNN
from kit.paths import DATA_DIR

__all__ = [
    "WORLD_CLASSIFIER_PATH",
    "WORLD_INPAINTER_PATH",
    "WORLD_REMOVAL_INPAINTER_PATH",
    "WorldInpainter",
    "load_net",
    "world_classifier",
    "world_inpainter",
    "world_removal_inpainter",
]

WORLD_CLASSIFIER_PATH = DATA_DIR / "world_classifier.pt"
WORLD_INPAINTER_PATH = DATA_DIR / "world_inpainter.pt"
WORLD_REMOVAL_INPAINTER_PATH = DATA_DIR / "world_inpainter_removal.pt"


class WorldInpainter(Inpainter):
    """One of the embedded world's learned inpainters (a :data:`~kit.nets.INPAINTER_ARCHS` net).

    Args:
        net: a trained inpainting network on [-1,1] images (``net(x, hole)``).
        batch_size: images per forward pass; larger batches are chunked.
        name: the registry name (``"world"`` or ``"world-removal"``).
    """

    name = "world"

    def __init__(self, net: nn.Module, batch_size: int = BATCH_SIZE, name: str = "world") -> None:
        super().__init__()
        self.name = name
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


def load_net(
    path: str | Path,
    what: str,
    arch: type[nn.Module],
    arguments: Callable[[dict], tuple],
    retrain: str,
) -> tuple[dict, nn.Module]:
    """Read a kit checkpoint, build ``arch(*arguments(checkpoint))`` and load the weights into it.

    Args:
        path: the checkpoint, a dict with ``"state_dict"`` and whatever ``arguments`` reads
            (``"config"``, ``"classes"``).
        what: what it is, for the messages (``"world classifier"``).
        arch: the network class (in :mod:`kit.nets`).
        arguments: the constructor arguments of ``arch``, read from the checkpoint dict.
        retrain: the :mod:`kit.train` subcommand that rebuilds the file (``"classifier"``).

    Returns:
        ``(checkpoint, net)`` with the weights loaded into ``net``.

    Raises:
        FileNotFoundError, RuntimeError: missing or corrupt file (:func:`load_state`); a
            checkpoint whose keys or shapes do not match ``arch``.
    """
    how = f"retrain it with `python -m kit.train {retrain}`"
    ckpt = load_state(path, what, f"It ships with kit under data/; {how}.")
    try:
        net = arch(*arguments(ckpt))
        net.load_state_dict(ckpt["state_dict"])
    except (KeyError, RuntimeError) as err:
        raise RuntimeError(
            f"{what} checkpoint {path} does not match kit.nets.{arch.__name__} ({err}); {how}"
        ) from err
    return ckpt, net


def world_classifier(
    path: str | Path | None = None, *, device: str | torch.device = "cpu"
) -> Classifier:
    """The shipped world classifier (registry name ``"world"``).

    Args:
        path: checkpoint written by ``python -m kit.train classifier``; ``None`` (or ``""``) means
            the shipped :data:`WORLD_CLASSIFIER_PATH`.
        device: target device.

    Returns:
        An eval-mode, frozen :class:`~kit.models.base.Classifier` on ``(N,3,64,64)`` pixel-space
        images, with the world's classes and the training data's mean/std inside.
    """
    path = path or WORLD_CLASSIFIER_PATH
    ckpt, net = load_net(
        path, "world classifier", WorldCNN,
        lambda c: (len(c["classes"]), c["config"]["width"]), "classifier",
    )
    return Classifier(net, ckpt["classes"], ckpt["mean"], ckpt["std"], name="world").to(device)


def _load_inpainter(path: str | Path, what: str, retrain: str) -> nn.Module:
    """The checkpoint's network (``config["arch"]``; ``"gated"`` if absent), weights loaded."""

    def arch_of(ckpt: dict) -> type[nn.Module]:
        return INPAINTER_ARCHS[ckpt.get("config", {}).get("arch", "gated")]

    how = f"retrain it with `python -m kit.train {retrain}`"
    ckpt = load_state(path, what, f"It ships with kit under data/; {how}.")
    try:
        arch = arch_of(ckpt)
    except KeyError as err:
        raise RuntimeError(f"{what} checkpoint {path} names an unknown network {err}; valid: "
                           f"{', '.join(INPAINTER_ARCHS)}; {how}") from err
    _, net = load_net(path, what, arch, lambda c: (c["config"]["width"],), retrain)
    return net


def world_inpainter(
    path: str | Path | None = None, *, device: str | torch.device = "cpu",
    batch_size: int = BATCH_SIZE,
) -> WorldInpainter:
    """The shipped completion inpainter (registry name ``"world"``, the paper's "G").

    Args:
        path: checkpoint written by ``python -m kit.train inpainter``; ``None`` (or ``""``) means
            the shipped :data:`WORLD_INPAINTER_PATH`.
        device: target device.
        batch_size: images per forward pass.

    Returns:
        A :class:`WorldInpainter`, called as ``inpainter(images, keep) -> images``.
    """
    net = _load_inpainter(path or WORLD_INPAINTER_PATH, "world inpainter", "inpainter")
    return WorldInpainter(net, batch_size, "world").to(device)


def world_removal_inpainter(
    path: str | Path | None = None, *, device: str | torch.device = "cpu",
    batch_size: int = BATCH_SIZE,
) -> WorldInpainter:
    """The shipped removal inpainter (registry name ``"world-removal"``): same recipe and contract
    as :func:`world_inpainter`, trained to fill every hole with the true background.

    Args:
        path: checkpoint written by ``python -m kit.train inpainter --target removal``; ``None``
            (or ``""``) means the shipped :data:`WORLD_REMOVAL_INPAINTER_PATH`.
        device: target device.
        batch_size: images per forward pass.

    Returns:
        A :class:`WorldInpainter`, called as ``inpainter(images, keep) -> images``.
    """
    net = _load_inpainter(path or WORLD_REMOVAL_INPAINTER_PATH, "world removal inpainter",
                          "inpainter --target removal")
    return WorldInpainter(net, batch_size, "world-removal").to(device)
