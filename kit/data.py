"""Image inputs: a world test image or a user image file as one ``(1,3,S,S)`` batch (style.md §2).

* :func:`load_image` -- a world test index, an image path or encoded bytes as an
  :class:`ImageInput` (image, explained target, true background and mask where known);
* :func:`decode_image` -- encoded bytes (PNG, JPEG, ...) as a ``(1,3,S,S)`` tensor, with the
  "torchvision" preprocessing (shorter side resized, centre crop).

Usage::

    from kit import data
    img = data.load_image(3)                              # world test image #3 at 64 px
    img = data.load_image("cat.jpg", model=clf)           # target = the model's top-1
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import torch

__all__ = ["ImageInput", "decode_image", "load_image"]


@dataclass(frozen=True)
class ImageInput:
    """An image to explain.

    Attributes:
        x: ``(1,3,S,S)`` float32 in [0,1].
        target: explained class (world: the ground-truth label; files: the model's top-1).
        name: short description (``"world test #3"`` or the file name).
        key: stable identity for caching.
        background: ``(1,3,S,S)`` true background (world images, for the ``oracle`` remover),
            else None.
        mask: ``(1,1,S,S)`` bool object mask (world images), else None.
    """

    x: torch.Tensor = field(repr=False)
    target: int
    name: str
    key: tuple
    background: torch.Tensor | None = field(default=None, repr=False)
    mask: torch.Tensor | None = field(default=None, repr=False)


def load_image(source, *, model=None, size: int = 64, seed: int = 0) -> ImageInput:
    """A world test image (by index) or a user image (path or encoded bytes) at ``size``.

    Files are decoded by :func:`decode_image` (Pillow: PNG, JPEG, ...).

    Args:
        source: ``int`` world test index (>= 0), a path (``str``/``Path``) or ``bytes``.
        model: classifier giving the target of a user image (its top-1); needed for files.
        size: output side in pixels (the world classifier's input is 64).
        seed: seed of the world's test stream.

    Returns:
        An :class:`ImageInput`.

    Raises:
        TypeError: ``source`` of another type.
        ValueError: negative index, missing file, undecodable bytes, or a file without a model.
    """
    from kit import world

    if isinstance(source, bool) or not isinstance(source, (int, str, Path, bytes, bytearray)):
        raise TypeError(
            f"source must be a world test index (int), an image path or encoded bytes, "
            f"got {type(source).__name__}"
        )
    if isinstance(source, int):
        if source < 0:
            raise ValueError(f"source (world test index) must be >= 0, got {source}")
        b = world.sample(1, seed=seed, split="test", start=source, size=size)
        return ImageInput(b.images, int(b.labels[0]), f"world test #{source}",
                          ("world", seed, source, size), b.backgrounds, b.masks)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"source: no image file at {str(path)!r}")
        data, name = path.read_bytes(), path.name
    else:
        data, name = bytes(source), "uploaded image"
    if model is None:
        raise ValueError("model is needed for a user image: its target is the model's top-1")
    x = decode_image(data, size)
    with torch.inference_mode():
        target = int(model(x.to(next(model.parameters()).device)).argmax(1)[0])
    key = ("file", hashlib.sha256(data).hexdigest(), size)
    return ImageInput(x, target, name, key)


def decode_image(data: bytes, size: int) -> torch.Tensor:
    """Encoded image bytes as a ``(1,3,size,size)`` float32 tensor in [0,1].

    The shorter side is resized to ``size`` (antialiased) and the centre cropped to a square: the
    "torchvision" preprocessing, which keeps the aspect ratio. Any mode Pillow reads (grey,
    palette, RGBA) is converted to RGB.

    Args:
        data: the file's bytes (any format Pillow decodes).
        size: output side in pixels.

    Raises:
        ValueError: bytes Pillow cannot decode.
    """
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2.functional import center_crop, pil_to_tensor, resize

    try:
        with Image.open(io.BytesIO(data)) as im:
            img = pil_to_tensor(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"source: could not decode the image ({err})") from err
    img = center_crop(resize(img, [size], antialias=True), [size, size])
    return (img.float() / 255).unsqueeze(0)
