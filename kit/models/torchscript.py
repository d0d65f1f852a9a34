"""TorchScript inpainters behind the pixel-space contract, e.g. a big-lama export, from a file.

:class:`TorchScriptInpainter` adapts any module called as ``module(image, mask) -> image`` (mask
polarity, value range, padding, resizing, chunking); :func:`load_torchscript_inpainter` reads a
``torch.jit.save`` file with one of the :data:`FLAVORS` of defaults. big-lama: Suvorov et al.,
"Resolution-robust large mask inpainting with Fourier convolutions", WACV 2022. Nothing is
downloaded: a missing file raises an error saying how to make one.

Usage::

    from kit.models.torchscript import load_torchscript_inpainter
    inp = load_torchscript_inpainter("big-lama.pt", flavor="lama")
    filled = inp(x, keep)              # x (N,3,H,W) in [0,1], keep (N,1,H,W) with 1 = keep

or ``kit.models.load_inpainter("lama", path=...)`` (:func:`load_lama`, :func:`load_torchscript`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from kit.models.base import Inpainter

__all__ = [
    "FLAVORS",
    "LAMA_DEFAULTS",
    "TorchScriptInpainter",
    "load_lama",
    "load_torchscript",
    "load_torchscript_inpainter",
]


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

FLAVORS = {"torchscript": {}, "lama": LAMA_DEFAULTS}
"""Default :class:`TorchScriptInpainter` options per flavor (``"torchscript"``: the class's own)."""


def load_torchscript_inpainter(
    path: str | Path,
    *,
    flavor: str = "torchscript",
    device: str | torch.device = "cpu",
    batch_size: int = 8,
    **options,
) -> TorchScriptInpainter:
    """Load a TorchScript inpainter file as a pixel-space :class:`~kit.models.base.Inpainter`.

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
    if flavor not in FLAVORS:
        raise ValueError(f"unknown flavor {flavor!r}; valid: {', '.join(FLAVORS)}")
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
    kwargs = {"name": flavor, **FLAVORS[flavor], "batch_size": batch_size, **options}
    return TorchScriptInpainter(module, **kwargs).to(device)


def _registry_load(flavor: str, path, device, options: dict) -> TorchScriptInpainter:
    if path is None:
        raise ValueError(f"load_inpainter({flavor!r}) needs path= to a TorchScript model file")
    return load_torchscript_inpainter(path, flavor=flavor, device=device, **options)


def load_lama(
    path: str | Path | None = None, *, device: str | torch.device = "cpu", **options
) -> TorchScriptInpainter:
    """Registry loader for ``"lama"``: a big-lama TorchScript export at ``path`` (required).

    Args:
        path: the ``torch.jit.save`` file.
        device: where the module runs.
        **options: :func:`load_torchscript_inpainter`'s ``batch_size`` and adapter overrides.
    """
    return _registry_load("lama", path, device, options)


def load_torchscript(
    path: str | Path | None = None, *, device: str | torch.device = "cpu", **options
) -> TorchScriptInpainter:
    """Registry loader for ``"torchscript"``: any ``module(image, mask) -> image`` file (required).

    Args:
        path: the ``torch.jit.save`` file.
        device: where the module runs.
        **options: :func:`load_torchscript_inpainter`'s ``batch_size`` and adapter overrides.
    """
    return _registry_load("torchscript", path, device, options)
