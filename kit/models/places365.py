"""The CSAIL Places365 scene classifier behind the pixel-space contract, from a local file.

Zhou et al., "Places: A 10 million image database for scene recognition", TPAMI 2017. The CSAIL
release ``resnet50_places365.pth.tar`` holds a DataParallel state dict (``module.`` prefixes); it is
read with ``weights_only=True`` into torchvision's ResNet-50 with 365 outputs. Nothing is
downloaded: a missing file raises an error saying where to get it.

Usage::

    from kit.models.places365 import places365_classifier
    clf = places365_classifier("resnet50_places365.pth.tar",
                               categories_path="categories_places365.txt")
    logits = clf(x)                                   # x (N,3,224,224) in [0,1] -> (N,365)

or ``kit.models.load_classifier("places365_resnet50", path=...)`` (:func:`load_resnet50`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from kit.models.base import IMAGENET_MEAN, IMAGENET_STD, Classifier, load_state

__all__ = ["PLACES365_CLASSES", "load_resnet50", "places365_classifier"]

PLACES365_CLASSES = 365


def _places365_classes(categories_path: str | Path | None) -> list[str]:
    """Class names from CSAIL's ``categories_places365.txt`` (``/a/airfield 0`` per line), with
    the ``/a/`` prefix dropped as in CSAIL's demo code; ``place_0 ...`` without a file."""
    if categories_path is None:
        return [f"place_{i}" for i in range(PLACES365_CLASSES)]
    path = Path(categories_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Places365 categories file not found: expected {path}. It is categories_places365.txt "
            "from the CSAIL places365 repository; or omit categories_path for place_0 ... names."
        )
    names: dict[int, str] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise ValueError(f"{path}:{lineno}: expected '/a/airfield 0', got {line!r}")
        label = parts[0]
        # "/a/airfield" -> "airfield", "/b/bakery/shop" -> "bakery/shop"
        names[int(parts[1])] = label[3:] if label.startswith("/") and len(label) > 3 else label
    if sorted(names) != list(range(PLACES365_CLASSES)):
        raise ValueError(
            f"{path} must list the indices 0..{PLACES365_CLASSES - 1} once each, "
            f"got {len(names)} entries"
        )
    return [names[i] for i in range(PLACES365_CLASSES)]


def places365_classifier(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    categories_path: str | Path | None = None,
    arch: str = "resnet50",
) -> Classifier:
    """The CSAIL Places365 ResNet-50 scene classifier from ``resnet50_places365.pth.tar``.

    Args:
        path: the checkpoint: a dict with a ``"state_dict"`` whose keys carry DataParallel's
            ``module.`` prefix (CSAIL's format), or a bare state dict (prefixed or not).
        device: target device.
        categories_path: optional ``categories_places365.txt``; without it classes are
            ``place_0 ... place_364``.
        arch: torchvision architecture built with ``num_classes=365`` (``"resnet50"`` for the CSAIL
            file; tests pass ``"resnet18"`` to keep stand-ins small).

    Returns:
        An eval-mode, frozen :class:`~kit.models.base.Classifier` with ImageNet normalisation (CSAIL
        trained with it) and ``fc_name="fc"``, on ``(N,3,H,W)`` pixel-space images (224x224 as in
        training).

    Raises:
        FileNotFoundError: ``path`` (or ``categories_path``) does not exist.
        RuntimeError: the file is corrupt, or its keys/shapes do not match ``arch``.
    """
    import torchvision

    how = (
        "Download resnet50_places365.pth.tar from the CSAIL places365 release "
        "(http://places2.csail.mit.edu/models_places365/resnet50_places365.pth.tar) on a machine "
        "with internet and pass its path."
    )
    what = "Places365 " + arch
    ckpt = load_state(Path(path), what, how)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise RuntimeError(
            f"{what} checkpoint {path} holds no state dict (expected a dict of tensors, or a dict "
            f"with key 'state_dict'). {how}"
        )
    # CSAIL trained under nn.DataParallel, whose parameter names start with "module."
    state = {k.removeprefix("module."): v for k, v in state.items()}
    net = torchvision.models.get_model(arch, weights=None, num_classes=PLACES365_CLASSES)
    try:
        net.load_state_dict(state)
    except RuntimeError as err:  # missing/unexpected keys or shape mismatches, listed by torch
        raise RuntimeError(
            f"{what} checkpoint {path} does not match torchvision {arch}(num_classes=365): "
            f"{err}. {how}"
        ) from err
    classes = _places365_classes(categories_path)
    return Classifier(
        net, classes, IMAGENET_MEAN, IMAGENET_STD, name=f"places365_{arch}", fc_name="fc"
    ).to(device)


def load_resnet50(
    path: str | Path | None = None, *, device: str | torch.device = "cpu", **options
) -> Classifier:
    """Registry loader for ``"places365_resnet50"``: :func:`places365_classifier`, path required.

    Args:
        path: the CSAIL ``resnet50_places365.pth.tar`` (required).
        device: target device.
        **options: :func:`places365_classifier`'s ``categories_path`` and ``arch``.

    Raises:
        ValueError: ``path`` is missing.
    """
    if path is None:
        raise ValueError(
            "load_classifier('places365_resnet50') needs path= to the CSAIL checkpoint "
            "resnet50_places365.pth.tar"
        )
    return places365_classifier(path, device=device, **options)
