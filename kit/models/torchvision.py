"""Any torchvision classification model behind the pixel-space contract; nothing is downloaded.

:func:`torchvision_classifier` builds a model by name through torchvision's multi-weight API
(``torchvision.models.get_model`` / ``get_model_weights``), with the weights file taken from
torchvision's cache (``torch.hub.get_dir()/checkpoints``, i.e. ``$TORCH_HOME/hub/checkpoints``).
A missing file raises :class:`FileNotFoundError` saying which file, where, and how to provide it.
:func:`load` is its registry form, reached through ``kit.models.load_classifier(name)`` for every
name in :func:`names`.

torchvision itself is imported inside the functions: importing :mod:`kit.models` stays cheap.

Usage::

    from kit.models.torchvision import torchvision_classifier
    clf = torchvision_classifier("resnet50")          # weights from $TORCH_HOME, no download
    logits, feats = clf(x), clf.features(x)           # x (N,3,224,224) in [0,1]
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from kit.models.base import IMAGENET_MEAN, IMAGENET_STD, Classifier, load_state

__all__ = [
    "TorchvisionClassifier",
    "load",
    "names",
    "torchvision_cache_file",
    "torchvision_classifier",
]


def names() -> list[str]:
    """torchvision's classification model names (``list_models(module=torchvision.models)``)."""
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


class TorchvisionClassifier(Classifier):
    """A :class:`~kit.models.base.Classifier` whose head may sit deep inside the network.

    Torchvision's VGG, AlexNet, DenseNet, MobileNet, EfficientNet, ConvNeXt, Swin, ... have a
    ``features`` attribute that is their *convolutional trunk* (a feature map, not the penultimate
    vector), and their last layer is nested (``classifier.6``, ``heads.head``) or a convolution
    (SqueezeNet's ``classifier.1``). This subclass therefore always taps the input of the module
    named by ``fc_name`` (:meth:`~kit.models.base.Classifier.head_input`), and accepts a
    convolutional head, whose input map is averaged over space.

    Args:
        net, classes, mean, std, name: as for :class:`~kit.models.base.Classifier`.
        fc_name: dotted path of the final layer whose input is the penultimate feature vector
            (``"fc"``, ``"classifier.6"``, ``"heads.head"``, ``"classifier.1"``).
    """

    head_types = (nn.Linear, nn.Conv2d)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N,3,H,W)`` pixel-space images -> ``(N,D)`` input of the final layer ``fc_name``."""
        return self.head_input(self.normalize(x))


def _final_layer_name(net: nn.Module, num_classes: int) -> str:
    """Dotted name of the layer producing the logits: the last ``nn.Linear`` with ``num_classes``
    outputs, else (SqueezeNet) the last ``nn.Conv2d`` with ``num_classes`` output channels."""
    linear = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    exact = [
        n
        for n, m in net.named_modules()
        if isinstance(m, nn.Linear) and m.out_features == num_classes
    ]
    conv = [
        n
        for n, m in net.named_modules()
        if isinstance(m, nn.Conv2d) and m.out_channels == num_classes
    ]
    # Registration order puts auxiliary heads (GoogLeNet aux1/aux2, Inception AuxLogits) before
    # the main head, so "last" is the main classifier.
    for found in (exact, linear, conv):
        if found:
            return found[-1]
    raise ValueError(f"cannot find the final layer of {type(net).__name__}")


def torchvision_cache_file(weights) -> Path:
    """Where torchvision looks for ``weights``: ``torch.hub.get_dir()/checkpoints/<url filename>``.

    Args:
        weights: a torchvision ``WeightsEnum`` member (e.g. ``ResNet50_Weights.IMAGENET1K_V2``).

    Returns:
        The path of the cache file (it may not exist).
    """
    filename = os.path.basename(urlparse(weights.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def _resolve_weights(name: str, weights):
    """Turn ``"DEFAULT"``, ``"IMAGENET1K_V2"``, ``"ResNet50_Weights.IMAGENET1K_V2"`` or an enum
    member into a member of ``name``'s weights enum, with an error listing the valid ones."""
    from torchvision.models import get_model_weights

    enum = get_model_weights(name)
    if isinstance(weights, enum):
        return weights
    if isinstance(weights, str):
        key = weights.removeprefix(enum.__name__ + ".")
        if key == "DEFAULT":
            return enum.DEFAULT
        if key in enum.__members__:
            return enum[key]
    valid = ", ".join(["DEFAULT", *enum.__members__])
    raise ValueError(f"unknown weights {weights!r} for {name!r}; valid: {valid}, or None")


def torchvision_classifier(
    name: str,
    *,
    weights: str | None = "DEFAULT",
    device: str | torch.device = "cpu",
    **kwargs,
) -> TorchvisionClassifier:
    """Any torchvision classification model, wrapped as a pixel-space classifier; never downloads.

    The weights file must already be in torchvision's cache,
    ``torch.hub.get_dir()/checkpoints/<file name of weights.url>`` (``$TORCH_HOME/hub/checkpoints``,
    by default ``~/.cache/torch/hub/checkpoints``): it is checked before anything is built, so
    torchvision's download path is never reached.

    Args:
        name: a torchvision classification model (``torchvision.models.list_models(
            module=torchvision.models)``), e.g. ``"resnet50"``, ``"vit_b_16"``.
        weights: ``"DEFAULT"``, a weights name (``"IMAGENET1K_V2"``, ``"ResNet50_Weights.
            IMAGENET1K_V2"``), a weights enum member, or ``None`` for random initialisation
            (benchmarks, tests; classes are ImageNet's when the head has 1000 outputs).
        device: target device.
        **kwargs: passed to the torchvision builder (with ``weights=None``, e.g. ``num_classes``;
            the classes are then ``class_0 ...`` unless they match the weights' categories).

    Returns:
        An eval-mode, frozen :class:`TorchvisionClassifier` with ImageNet normalisation inside,
        ``classes`` from ``weights.meta["categories"]`` and ``fc_name`` set to the final layer's
        dotted path (``"fc"`` for ResNets). ``clf.weights`` is the enum member (``None`` if
        random), whose ``.transforms()`` gives the matching preprocessing.

    Raises:
        ValueError: unknown model or weights name.
        FileNotFoundError: the weights file is not in the cache (the message says where to put it).
        RuntimeError: the cache file is corrupt or does not match the architecture.
    """
    from torchvision.models import get_model, get_model_weights

    valid = names()
    if name not in valid:
        raise ValueError(
            f"unknown torchvision classifier {name!r}; valid names: {', '.join(sorted(valid))}"
        )
    if weights is None:
        # Random weights still get ImageNet names when the head matches them (never a download:
        # the categories are metadata bundled with torchvision).
        try:
            categories = list(get_model_weights(name).DEFAULT.meta["categories"])
        except (KeyError, ValueError, AttributeError):
            categories = []
        net = get_model(name, weights=None, **kwargs)
        w = None
    else:
        w = _resolve_weights(name, weights)
        cache = torchvision_cache_file(w)
        if not cache.is_file():
            raise FileNotFoundError(
                f"weights for torchvision {name!r} ({w!r}) not found: expected the file "
                f"{cache.name} in the folder {cache.parent}. kit never downloads; to provide it, "
                f'download {w.url} on a machine with internet (e.g. run `python -c "import '
                f"torchvision; torchvision.models.get_model('{name}', weights='{w._name_}')\"` "
                f"there) and copy {cache.name} into {cache.parent}, or set TORCH_HOME to a folder "
                "whose hub/checkpoints/ holds it."
            )
        # torchvision loads the cache file with weights_only=False; refuse anything that is not a
        # plain state dict first (mmap: cheap even for multi-GB files), with a readable error.
        try:
            torch.load(cache, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # legacy (non-zip) files cannot be mmapped: retry plainly
            load_state(
                cache,
                f"torchvision {name!r} weights",
                f"Delete it and copy a fresh {cache.name} from {w.url} into {cache.parent}.",
            )
        try:
            net = get_model(name, weights=w, progress=False, **kwargs)
        except (RuntimeError, KeyError) as err:
            raise RuntimeError(
                f"torchvision weights file {cache} does not match {name!r} ({err}); delete it and "
                f"copy a fresh {cache.name} from {w.url} into {cache.parent}"
            ) from err
        categories = list(w.meta["categories"])
    fc_name = _final_layer_name(net, kwargs.get("num_classes", len(categories) or 1000))
    head = net.get_submodule(fc_name)
    n_out = head.out_features if isinstance(head, nn.Linear) else head.out_channels
    classes = categories if len(categories) == n_out else [f"class_{i}" for i in range(n_out)]
    clf = TorchvisionClassifier(
        net, classes, IMAGENET_MEAN, IMAGENET_STD, name=name, fc_name=fc_name
    )
    clf.weights = w
    return clf.to(device)


def load(
    name: str, path: str | Path | None = None, *, device: str | torch.device = "cpu", **options
) -> TorchvisionClassifier:
    """Registry loader for torchvision names: :func:`torchvision_classifier` with ``path`` refused.

    Args:
        name: a name from :func:`names`.
        path: must be ``None``: the weights come from torchvision's cache, chosen by ``weights=``.
        device: target device.
        **options: :func:`torchvision_classifier`'s ``weights`` and builder keywords.
    """
    if path is not None:
        raise ValueError(
            f"load_classifier({name!r}) takes no path=: torchvision weights are read from "
            f"{Path(torch.hub.get_dir()) / 'checkpoints'} (choose them with weights=), got "
            f"path={str(path)!r}"
        )
    return torchvision_classifier(name, device=device, **options)
