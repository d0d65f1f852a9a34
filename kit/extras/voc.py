"""Images with Pascal-VOC box annotations (the ImageNet validation layout) as a world-like batch.

The ImageNet (ILSVRC2012) validation set ships as ``ILSVRC2012_val_00000001.JPEG`` files plus
Pascal-VOC XML files with the same stem::

    <annotation>
      <size><width>500</width><height>375</height>...</size>
      <object><name>n01751748</name><bndbox><xmin>111</xmin><ymin>108</ymin>
              <xmax>441</xmax><ymax>375</ymax></bndbox></object>
      ...
    </annotation>

:func:`load_voc_folder` reads such a folder through torchvision's evaluation pipeline (shorter side
to ``round(size*256/224)``, centre crop ``size``) and moves the boxes with the pixels, returning an
:class:`ImageFolderBatch` whose fields mirror :class:`kit.world.WorldBatch` (without the true
backgrounds, which real photographs do not have).

Box convention: VOC coordinates are 1-based and inclusive (ImageNet's ``ymax`` equals the image
height for boxes touching the bottom edge), i.e. the box covers the continuous pixel-edge interval
``[xmin-1, xmax] x [ymin-1, ymax]``. That interval is scaled and shifted like the pixels, clipped to
the crop and rounded to the nearest integer, giving ``(x0, y0, x1, y1)`` with ``x1, y1`` exclusive
as in ``WorldBatch``.

Usage::

    from kit.extras.voc import load_voc_folder
    batch = load_voc_folder("val/images", "val/xml", classes=wnids, limit=64)
    logits = clf(batch.images)
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch

__all__ = ["IMAGE_SUFFIXES", "ImageFolderBatch", "load_voc_folder", "eval_geometry"]

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
"""Image file suffixes read (case-insensitive)."""


@dataclass
class ImageFolderBatch:
    """A batch of annotated photographs; every tensor is on the CPU unless moved with :meth:`to`.

    Attributes:
        images: ``(n,3,size,size)`` float32 in [0,1].
        labels: ``(n,)`` int64, index of the first object's name in ``classes`` (-1 if absent).
        masks: ``(n,1,size,size)`` bool, the union of the *boxes* of every object whose name is
            the first object's (box masks, not segmentations: they include background pixels).
        boxes: ``(n,4)`` int64 ``(x0, y0, x1, y1)``, the first object's box in the cropped image;
            x1, y1 exclusive. A box cropped away entirely has zero area (x0 == x1 or y0 == y1).
        backgrounds: always ``None`` (real photographs have no object-free counterfactual).
        names: file stems, e.g. ``"ILSVRC2012_val_00000001"``.
        classes: the class names ``labels`` index into.
        all_boxes: per image, ``(k,4)`` int64 boxes of every object with the label's name (the
            ones ``masks`` is made of; ImageNet localisation counts a hit on any of them).
    """

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    boxes: torch.Tensor
    backgrounds: None
    names: tuple[str, ...]
    classes: tuple[str, ...]
    all_boxes: tuple[torch.Tensor, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, idx) -> ImageFolderBatch:
        """Index or slice the per-image fields alike (an int keeps the batch dimension)."""
        if isinstance(idx, int):
            idx = slice(idx, idx + 1) if idx != -1 else slice(-1, None)
        if not isinstance(idx, slice):
            raise TypeError(f"index with an int or a slice, got {type(idx).__name__}")
        return replace(
            self,
            images=self.images[idx],
            labels=self.labels[idx],
            masks=self.masks[idx],
            boxes=self.boxes[idx],
            names=self.names[idx],
            all_boxes=self.all_boxes[idx],
        )

    def to(self, device) -> ImageFolderBatch:
        """Return a copy with every tensor on ``device``."""
        moved = {
            f.name: getattr(self, f.name).to(device)
            for f in fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        }
        return replace(self, **moved, all_boxes=tuple(b.to(device) for b in self.all_boxes))


def eval_geometry(width: int, height: int, size: int = 224) -> tuple[int, int, int, int]:
    """Geometry of torchvision's evaluation pipeline ``Resize(r)`` + ``CenterCrop(size)``.

    ``r = round(size * 256 / 224)`` (256 for 224). As in ``torchvision.transforms.functional.
    resize``, the shorter side becomes ``r`` and the longer ``int(r * long / short)``; as in
    ``center_crop``, the crop offsets are ``int(round((resized - size) / 2))``.

    Args:
        width, height: original image size in pixels.
        size: crop size.

    Returns:
        ``(resized_w, resized_h, left, top)``.
    """
    r = int(round(size * 256 / 224))
    if width <= height:
        new_w, new_h = r, int(r * height / width)
    else:
        new_w, new_h = int(r * width / height), r
    return new_w, new_h, int(round((new_w - size) / 2.0)), int(round((new_h - size) / 2.0))


def _text(node: ET.Element, tag: str, xml_path: Path) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise ValueError(f"malformed annotation {xml_path}: missing <{tag}>")
    return child.text.strip()


def _number(node: ET.Element, tag: str, xml_path: Path) -> float:
    value = _text(node, tag, xml_path)
    try:
        return float(value)
    except ValueError:
        raise ValueError(
            f"malformed annotation {xml_path}: <{tag}> is {value!r}, not a number"
        ) from None


def _parse_xml(xml_path: Path) -> tuple[tuple[float, float] | None, list[tuple[str, list[float]]]]:
    """``((width, height) or None, [(name, [xmin, ymin, xmax, ymax]), ...])`` from a VOC file."""
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"malformed annotation {xml_path}: not valid XML ({err})") from err
    if root.tag != "annotation":
        raise ValueError(f"malformed annotation {xml_path}: root is <{root.tag}>, not <annotation>")
    size = root.find("size")
    wh = None
    if size is not None:
        wh = (_number(size, "width", xml_path), _number(size, "height", xml_path))
        if min(wh) <= 0:
            wh = None  # some VOC files store 0x0; fall back to the image's own size
    objects = []
    for obj in root.findall("object"):
        box = obj.find("bndbox")
        if box is None:
            raise ValueError(f"malformed annotation {xml_path}: an <object> has no <bndbox>")
        coords = [_number(box, t, xml_path) for t in ("xmin", "ymin", "xmax", "ymax")]
        objects.append((_text(obj, "name", xml_path), coords))
    if not objects:
        raise ValueError(f"malformed annotation {xml_path}: no <object>")
    return wh, objects


def _transform_box(
    coords: Sequence[float], scale: tuple[float, float], offset: tuple[int, int], size: int
) -> list[int]:
    """VOC ``[xmin, ymin, xmax, ymax]`` (1-based, inclusive) -> clipped ``[x0, y0, x1, y1)`` in
    the crop (see the module docstring)."""
    xmin, ymin, xmax, ymax = coords
    edges = [(xmin - 1, 0), (ymin - 1, 1), (xmax, 0), (ymax, 1)]
    out = []
    for value, axis in edges:
        v = value * scale[axis] - offset[axis]
        out.append(int(np.clip(np.floor(v + 0.5), 0, size)))
    return out


def load_voc_folder(
    images_dir: str | Path,
    annotations_dir: str | Path | None = None,
    *,
    size: int = 224,
    classes: Sequence[str] | None = None,
    limit: int | None = None,
) -> ImageFolderBatch:
    """Load JPEG/PNG images with same-stem Pascal-VOC XML box files (ImageNet validation layout).

    Images are taken in sorted file-name order (the first ``limit`` of them), converted to RGB
    (ImageNet has grayscale and CMYK JPEGs), resized so the shorter side is
    ``round(size*256/224)`` (bilinear, antialiased: torchvision's PIL path) and centre-cropped to
    ``size`` (:func:`eval_geometry`). Boxes follow the same mapping (module docstring). If the XML's
    ``<size>`` differs from the image's (a pre-resized copy of the dataset), boxes are first scaled
    from the XML's frame to the image's.

    Memory: each image is ``3*size*size`` float32 (0.6 MB at 224): use ``limit`` for big folders.

    Args:
        images_dir: folder of ``.JPEG``/``.jpg``/``.png`` images (not searched recursively).
        annotations_dir: folder of ``<stem>.xml`` files; default ``images_dir``.
        size: output side length.
        classes: class names (ImageNet: the 1000 wnids in index order); labels index into it.
            Default: the sorted unique names of the loaded images' first objects.
        limit: load at most this many images.

    Returns:
        An :class:`ImageFolderBatch` (``backgrounds`` is ``None``).

    Raises:
        FileNotFoundError: a folder does not exist.
        ValueError: no images; an image without its XML file (raised, never skipped silently, so
            the batch always covers every image; the message names both files); malformed XML;
            an unreadable image; bad ``size`` / ``limit``.
    """
    from PIL import Image
    from torchvision.transforms import functional as TF

    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be None or a positive integer, got {limit!r}")
    images_dir = Path(images_dir)
    annotations_dir = images_dir if annotations_dir is None else Path(annotations_dir)
    for label, folder in (("images", images_dir), ("annotations", annotations_dir)):
        if not folder.is_dir():
            raise FileNotFoundError(f"{label} folder not found: {folder}")
    paths = sorted(
        p for p in images_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not paths:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {images_dir}")
    paths = paths[:limit]

    images, boxes, masks, names, first_names, label_boxes = [], [], [], [], [], []
    for path in paths:
        xml_path = annotations_dir / f"{path.stem}.xml"
        if not xml_path.is_file():
            raise ValueError(f"no annotation for image {path}: expected the file {xml_path}")
        xml_size, objects = _parse_xml(xml_path)
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
        except Exception as err:  # truncated or not an image: name the file
            raise ValueError(f"cannot read image {path} ({type(err).__name__}: {err})") from err
        width, height = im.size
        new_w, new_h, left, top = eval_geometry(width, height, size)
        im = TF.resize(im, [new_h, new_w], interpolation=TF.InterpolationMode.BILINEAR)
        im = TF.center_crop(im, [size, size])
        images.append(TF.pil_to_tensor(im))
        # Box frame (XML <size>, normally the image's own) -> resized image -> crop.
        ref_w, ref_h = xml_size if xml_size is not None else (width, height)
        scale = (new_w / ref_w, new_h / ref_h)
        name = objects[0][0]
        same = [_transform_box(c, scale, (left, top), size) for n, c in objects if n == name]
        mask = torch.zeros(1, size, size, dtype=torch.bool)
        for x0, y0, x1, y1 in same:
            mask[:, y0:y1, x0:x1] = True
        boxes.append(same[0])
        label_boxes.append(torch.tensor(same, dtype=torch.int64).view(-1, 4))
        masks.append(mask)
        names.append(path.stem)
        first_names.append(name)

    classes = tuple(sorted(set(first_names)) if classes is None else classes)
    index = {c: i for i, c in enumerate(classes)}
    return ImageFolderBatch(
        images=torch.stack(images).float().div_(255),
        labels=torch.tensor([index.get(n, -1) for n in first_names], dtype=torch.int64),
        masks=torch.stack(masks),
        boxes=torch.tensor(boxes, dtype=torch.int64).view(-1, 4),
        backgrounds=None,
        names=tuple(names),
        classes=classes,
        all_boxes=tuple(label_boxes),
    )
