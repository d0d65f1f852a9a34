"""Real-scale models behind the pixel-space contract: torchvision, Places365 and TorchScript files.

Nothing here downloads. Weights come from files the user already has:

* :func:`torchvision_classifier`: any torchvision classification model by name, through
  torchvision's multi-weight API (``torchvision.models.get_model`` / ``get_model_weights``), with
  the weights file taken from torchvision's cache (``torch.hub.get_dir()/checkpoints``, i.e.
  ``$TORCH_HOME/hub/checkpoints``). A missing file raises :class:`FileNotFoundError` saying which
  file, where, and how to provide it.
* :func:`places365_classifier`: the CSAIL Places365 ResNet-50 (Zhou et al., "Places: A 10 million
  image database for scene recognition", TPAMI 2017) from ``resnet50_places365.pth.tar``.
* :class:`TorchScriptInpainter` / :func:`load_torchscript_inpainter`: any TorchScript inpainter
  called as ``module(image, mask) -> image``, e.g. a big-lama export (Suvorov et al., "Resolution-
  robust large mask inpainting with Fourier convolutions", WACV 2022).

All of them return the objects of :mod:`kit.models`: a :class:`~kit.models.Classifier` takes
pixel-space images ``(N,3,H,W)`` in [0,1] (normalisation inside), an
:class:`~kit.models.Inpainter` is called with a keep-mask (1 = keep) and converts it to a hole-mask
in its base class. They are normally reached through ``kit.models.load_classifier`` and
``kit.models.load_inpainter``.

Usage::

    from kit.external import torchvision_classifier, load_torchscript_inpainter
    clf = torchvision_classifier("resnet50")              # weights from $TORCH_HOME, no download
    inp = load_torchscript_inpainter("big-lama.pt", flavor="lama")
    filled = inp(x, keep)                                 # x (N,3,H,W) in [0,1], keep (N,1,H,W)
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn

from kit.models import IMAGENET_MEAN, IMAGENET_STD, Classifier, Inpainter, _load_state

__all__ = [
    "TorchvisionClassifier",
    "torchvision_classifier",
    "torchvision_cache_file",
    "places365_classifier",
    "TorchScriptInpainter",
    "load_torchscript_inpainter",
    "LAMA_DEFAULTS",
]

PLACES365_CLASSES = 365


# --------------------------------------------------------------------------------------------
# Classifiers
# --------------------------------------------------------------------------------------------


class TorchvisionClassifier(Classifier):
    """A :class:`~kit.models.Classifier` whose head may sit deep inside the network.

    ``Classifier.features`` first calls ``net.features`` if the net has one, then looks for the
    final linear layer as a direct attribute. Torchvision's VGG, AlexNet, DenseNet, MobileNet,
    EfficientNet, ConvNeXt, Swin, ... have a ``features`` attribute that is their *convolutional
    trunk* (a feature map, not the penultimate vector), and their last linear layer is nested
    (``classifier.6``, ``heads.head``). This subclass therefore always taps the input of the module
    named by ``fc_name``, a dotted path resolved with ``net.get_submodule``.

    Args:
        net, classes, mean, std, name: as for :class:`~kit.models.Classifier`.
        fc_name: dotted path of the final layer whose input is the penultimate feature vector
            (``"fc"``, ``"classifier.6"``, ``"heads.head"``). If that layer is a convolution
            (SqueezeNet's ``classifier.1``), its input map is averaged over space.
    """

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N,3,H,W)`` pixel-space images -> ``(N,D)`` input of the final layer ``fc_name``."""
        try:
            head = self.net.get_submodule(self.fc_name)
        except AttributeError as err:
            raise AttributeError(
                f"{type(self.net).__name__} has no submodule {self.fc_name!r}; pass fc_name= to "
                "TorchvisionClassifier"
            ) from err
        captured = []
        handle = head.register_forward_hook(lambda m, inp, out: captured.append(inp[0]))
        try:
            self.net(self.normalize(x))
        finally:
            handle.remove()  # never leave hooks behind (style.md §11 contract tests)
        z = captured[-1]
        if z.dim() == 4:  # convolutional head: global average pool, as the head itself does next
            z = z.mean(dim=(2, 3))
        return z.flatten(1)


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
    for names in (exact, linear, conv):
        if names:
            return names[-1]
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
    import torchvision
    from torchvision.models import get_model, get_model_weights

    valid = torchvision.models.list_models(module=torchvision.models)
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
            _load_state(
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
    if len(classes) != n_out:  # pragma: no cover - defensive
        raise RuntimeError(f"{name}: {n_out} outputs but {len(classes)} class names")
    clf = TorchvisionClassifier(
        net, classes, IMAGENET_MEAN, IMAGENET_STD, name=name, fc_name=fc_name
    )
    clf.weights = w
    return clf.to(device)


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
        An eval-mode, frozen :class:`~kit.models.Classifier` with ImageNet normalisation (CSAIL
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
    ckpt = _load_state(Path(path), what, how)
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


# --------------------------------------------------------------------------------------------
# Inpainters
# --------------------------------------------------------------------------------------------


def _pad(t: torch.Tensor, ph: int, pw: int) -> torch.Tensor:
    """Pad bottom/right like LaMa's ``pad_img_to_modulo`` (mirror), falling back to edge
    replication when the image is too small to mirror."""
    if not (ph or pw):
        return t
    mode = "reflect" if ph < t.shape[-2] and pw < t.shape[-1] else "replicate"
    return F.pad(t, (0, pw, 0, ph), mode=mode)


def _resize(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with antialiasing (matters when shrinking); identity at the same size."""
    if tuple(t.shape[-2:]) == tuple(size):
        return t
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=True)


class TorchScriptInpainter(Inpainter):
    """Adapter for an inpainting module called as ``module(image, mask) -> image``.

    The base class validates inputs, turns the keep-mask into a hole-mask (1 = fill) and
    composites, so kept pixels come back bit for bit. :meth:`generate` only adapts to the module's
    conventions, per chunk of ``batch_size`` images:

    1. resize image and hole-mask to ``size`` (if given); a model-resolution pixel is a hole if any
       full-resolution hole pixel contributes to it, so no object pixel leaks in as context;
    2. pad bottom/right to a multiple of ``pad_multiple`` (mirror padding of image *and* mask,
       as LaMa's ``pad_out_to_modulo``, so mirrored hole pixels stay holes);
    3. convert to ``input_range``; set hole pixels to 0 in that range (``zero_holes``, what LaMa
       and DeepFill do internally, so modules that forget it cannot see the removed object);
    4. pass the mask as ``hole_value`` = 1 -> holes are 1 (LaMa and most inpainters), 0 -> the
       module wants a keep-mask;
    5. convert the output back to [0,1], crop the padding, resize to the input size.

    Args:
        module: the inpainting network (a TorchScript module or any ``nn.Module``), taking
            ``image (n,3,h,w)`` and ``mask (n,1,h,w)`` float and returning ``(n,3,h,w)``.
        name: display name.
        hole_value: value marking holes in the mask given to ``module`` (1 or 0).
        size: ``None`` (native resolution), an int (square ``size x size``) or ``(h, w)``; the
            model runs at that size and the output is resized back.
        pad_multiple: pad height and width to a multiple of this (1 = no padding).
        input_range: ``"01"`` (module works on [0,1]) or ``"-11"`` (on [-1,1]), for input and
            output alike.
        batch_size: images per module call; larger batches are fed in chunks.
        zero_holes: zero the hole pixels (in the module's range) before calling it.
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        name: str = "torchscript",
        hole_value: int = 1,
        size: int | tuple[int, int] | None = None,
        pad_multiple: int = 1,
        input_range: str = "01",
        batch_size: int = 8,
        zero_holes: bool = True,
    ) -> None:
        super().__init__()
        if hole_value not in (0, 1):
            raise ValueError(
                f"hole_value must be 1 (mask 1 = hole) or 0 (1 = keep), got {hole_value!r}"
            )
        if input_range not in ("01", "-11"):
            raise ValueError(f"input_range must be '01' or '-11', got {input_range!r}")
        if isinstance(size, int) and not isinstance(size, bool):
            size = (size, size)
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise ValueError(f"size must be None, a positive int or (h, w), got {size!r}")
        for label, value in (("pad_multiple", pad_multiple), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be an integer >= 1, got {value!r}")
        self.module = module.eval()
        self.name = name
        self.hole_value = int(hole_value)
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.pad_multiple = pad_multiple
        self.input_range = input_range
        self.batch_size = batch_size
        self.zero_holes = bool(zero_holes)
        for p in self.module.parameters():
            p.requires_grad_(False)

    def generate(self, images: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """``images`` ``(N,3,H,W)`` in [0,1], ``hole`` ``(N,1,H,W)`` in {0,1} -> ``(N,3,H,W)``."""
        h, w = images.shape[-2:]
        outs = [
            self._run(images[i : i + self.batch_size], hole[i : i + self.batch_size], (h, w))
            for i in range(0, images.shape[0], self.batch_size)
        ]
        return torch.cat(outs)

    def _run(self, x: torch.Tensor, m: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        if self.size is not None:
            x = _resize(x, self.size)
            m = (_resize(m, self.size) > 0).to(x.dtype)  # any hole coverage -> hole (no leaks)
        h, w = x.shape[-2:]
        k = self.pad_multiple
        x, m = _pad(x, (-h) % k, (-w) % k), _pad(m, (-h) % k, (-w) % k)
        if self.input_range == "-11":
            x = x * 2 - 1
        if self.zero_holes:
            x = x * (1 - m)
        mask = m if self.hole_value == 1 else 1 - m
        y = self.module(x, mask)
        if not isinstance(y, torch.Tensor) or y.shape != x.shape:
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise RuntimeError(
                f"inpainter {self.name!r} returned {got}; "
                f"expected a tensor of shape {tuple(x.shape)}"
            )
        if self.input_range == "-11":
            y = (y + 1) / 2
        return _resize(y[..., :h, :w].to(x.dtype), out_size)

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, hole_value={self.hole_value}, size={self.size}, "
            f"pad_multiple={self.pad_multiple}, input_range={self.input_range!r}, "
            f"batch_size={self.batch_size}"
        )


LAMA_DEFAULTS = {"hole_value": 1, "size": None, "pad_multiple": 8, "input_range": "01"}
"""big-lama TorchScript export: image (N,3,H,W) in [0,1], mask (N,1,H,W) with 1 = hole, output in
[0,1]; H and W padded to a multiple of 8 (LaMa's ``pad_out_to_modulo=8``). LaMa is
resolution-robust, so it runs at the native size by default; pass ``size=512`` to run it at
512x512."""

_FLAVORS = {"torchscript": {}, "lama": LAMA_DEFAULTS}


def load_torchscript_inpainter(
    path: str | Path,
    *,
    flavor: str = "torchscript",
    device: str | torch.device = "cpu",
    batch_size: int = 8,
    **options,
) -> TorchScriptInpainter:
    """Load a TorchScript inpainter file as a pixel-space :class:`~kit.models.Inpainter`.

    Args:
        path: a file written by ``torch.jit.save`` whose module is called as
            ``module(image, mask) -> image``.
        flavor: ``"torchscript"`` (the :class:`TorchScriptInpainter` defaults: [0,1], mask 1 = hole,
            native size, no padding) or ``"lama"`` (:data:`LAMA_DEFAULTS`).
        device: where the module runs.
        batch_size: images per module call.
        **options: override any :class:`TorchScriptInpainter` option (``size``, ``pad_multiple``,
            ``input_range``, ``hole_value``, ``zero_holes``, ``name``).

    Returns:
        ``inpainter(images, keep) -> images`` with ``images`` ``(N,3,H,W)`` in [0,1] and ``keep``
        ``(N,1,H,W)`` (1 = keep).

    Raises:
        ValueError: unknown flavor.
        FileNotFoundError: ``path`` does not exist.
        RuntimeError: the file is corrupt or not TorchScript.
    """
    if flavor not in _FLAVORS:
        raise ValueError(f"unknown flavor {flavor!r}; valid: {', '.join(_FLAVORS)}")
    path = Path(path)
    how = (
        "Export big-lama to TorchScript as in the LaMa repository (advimman/lama; "
        "torch.jit.trace/script of its predict model, e.g. the big-lama.pt used by lama-cleaner) "
        "on a machine with internet and copy the file here."
        if flavor == "lama"
        else "Save the model with torch.jit.save (a module called as module(image, mask)) and "
        "pass that file."
    )
    if not path.is_file():
        raise FileNotFoundError(f"{flavor} inpainter not found: expected the file {path}. {how}")
    try:
        with warnings.catch_warnings():
            # torch >= 2.10 flags torch.jit.load as deprecated; TorchScript is the format LaMa
            # exports ship in, so the warning is not actionable here (style.md: quiet by default).
            warnings.filterwarnings("ignore", message=".*torch.jit.load.*", category=FutureWarning)
            module = torch.jit.load(str(path), map_location=device)
    except Exception as err:  # corrupt, truncated, or a torch.save state dict, not TorchScript
        raise RuntimeError(
            f"{flavor} inpainter {path} could not be loaded as TorchScript "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); the file is "
            f"corrupt or not a torch.jit.save file (a state dict is not enough). {how}"
        ) from err
    kwargs = {"name": flavor, **_FLAVORS[flavor], "batch_size": batch_size, **options}
    return TorchScriptInpainter(module, **kwargs).to(device)
