"""kit.extras.voc on a tiny ImageNet-validation-like folder: pixels match torchvision's pipeline,
boxes move with the pixels, labels, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from kit.extras.voc import ImageFolderBatch, eval_geometry, load_voc_folder

SIZE = 32  # shorter side resized to round(32*256/224) = 37, centre crop 32


def _xml(width, height, objects):
    objs = "".join(
        f"<object><name>{name}</name><pose>Unspecified</pose><bndbox><xmin>{x0}</xmin>"
        f"<ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for name, (x0, y0, x1, y1) in objects
    )
    return (
        f"<annotation><folder>val</folder><filename>x</filename><size><width>{width}</width>"
        f"<height>{height}</height><depth>3</depth></size>{objs}</annotation>"
    )


def _write(folder, stem, width, height, objects, suffix=".png", xml_dir=None, image_size=None):
    """A black image with the boxes of the first object's class painted white, other boxes gray
    (VOC 1-based inclusive coordinates)."""
    arr = np.zeros((height, width, 3), np.uint8)
    for name, (x0, y0, x1, y1) in objects:
        arr[y0 - 1 : y1, x0 - 1 : x1] = 255 if name == objects[0][0] else 100
    im = Image.fromarray(arr)
    if image_size is not None:  # a pre-resized copy of the dataset
        im = im.resize(image_size, Image.BILINEAR)
    im.save(folder / f"{stem}{suffix}")
    (xml_dir or folder).joinpath(f"{stem}.xml").write_text(_xml(width, height, objects))


@pytest.fixture
def folder(tmp_path):
    # landscape, portrait (box partly cropped away), square with two boxes of the same class
    # and one of another class.
    _write(tmp_path, "img_a", 64, 48, [("n01", (17, 13, 48, 36))])
    _write(tmp_path, "img_b", 40, 80, [("n02", (5, 1, 30, 30))], suffix=".JPEG")
    _write(
        tmp_path,
        "img_c",
        50,
        50,
        [("n01", (5, 5, 20, 20)), ("n03", (30, 5, 45, 20)), ("n01", (25, 30, 45, 45))],
    )
    return tmp_path


def test_images_match_torchvision_eval_pipeline(folder):
    batch = load_voc_folder(folder, size=SIZE)
    assert isinstance(batch, ImageFolderBatch) and len(batch) == 3
    assert batch.names == ("img_a", "img_b", "img_c")
    assert batch.images.shape == (3, 3, SIZE, SIZE) and batch.images.dtype == torch.float32
    pipeline = T.Compose([T.Resize(37), T.CenterCrop(SIZE), T.PILToTensor()])
    for i, name in enumerate(["img_a.png", "img_b.JPEG", "img_c.png"]):
        with Image.open(folder / name) as im:
            expected = pipeline(im.convert("RGB")).float() / 255
        assert torch.equal(batch.images[i], expected)
    assert batch.backgrounds is None


def test_boxes_follow_resize_and_crop(folder):
    batch = load_voc_folder(folder, size=SIZE)
    assert batch.boxes.dtype == torch.int64 and batch.masks.dtype == torch.bool
    assert batch.masks.shape == (3, 1, SIZE, SIZE)
    # img_a 64x48 -> 49x37, crop offsets (8, 2); box edges [16,48]x[12,36] scaled by
    # (49/64, 37/48) and shifted: x 4.25..28.75, y 7.25..25.75 -> (4, 7, 29, 26).
    assert eval_geometry(64, 48, SIZE) == (49, 37, 8, 2)
    assert batch.boxes[0].tolist() == [4, 7, 29, 26]
    # The painted boxes and the box masks agree (exactly on these images; allow a few border
    # pixels, which depend on the resampling filter, not on the box arithmetic).
    for i in range(3):
        white = batch.images[i].mean(0) > 0.5
        mask = batch.masks[i, 0]
        assert (white != mask).sum() <= 4
        inside = torch.zeros_like(mask)
        x0, y0, x1, y1 = batch.boxes[i].tolist()
        inside[y0 + 1 : y1 - 1, x0 + 1 : x1 - 1] = True
        assert white[inside].all()


def test_box_cropped_away_and_label_union(folder):
    batch = load_voc_folder(folder, size=SIZE)
    # img_b 40x80 -> 37x74, top offset 21: the box ends at y = 30*0.925 - 21 = 6.75 -> 7.
    assert eval_geometry(40, 80, SIZE) == (37, 74, 2, 21)
    x0, y0, x1, y1 = batch.boxes[1].tolist()
    assert (y0, y1) == (0, 7) and 0 <= x0 < x1 <= SIZE
    # img_c: the mask is the union of both n01 boxes, not the n03 one.
    assert batch.all_boxes[2].shape == (2, 4)
    assert batch.boxes[2].tolist() == batch.all_boxes[2][0].tolist()
    union = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    for bx0, by0, bx1, by1 in batch.all_boxes[2].tolist():
        union[by0:by1, bx0:bx1] = True
    assert torch.equal(batch.masks[2, 0], union)


def test_labels_default_and_given_classes(folder):
    batch = load_voc_folder(folder, size=SIZE)
    assert batch.classes == ("n01", "n02")
    assert batch.labels.tolist() == [0, 1, 0] and batch.labels.dtype == torch.int64
    batch = load_voc_folder(folder, size=SIZE, classes=["n00", "n02"])
    assert batch.labels.tolist() == [-1, 1, -1]


def test_limit_slicing_and_separate_annotation_folder(tmp_path):
    images, xml = tmp_path / "images", tmp_path / "xml"
    images.mkdir()
    xml.mkdir()
    for i in range(3):
        _write(images, f"v{i}", 40, 30, [("n05", (3, 3, 20, 20))], xml_dir=xml)
    batch = load_voc_folder(images, xml, size=SIZE, limit=2)
    assert batch.names == ("v0", "v1")
    one = batch[1]
    assert len(one) == 1 and one.names == ("v1",) and one.images.shape == (1, 3, SIZE, SIZE)
    assert torch.equal(one.masks[0], batch.masks[1]) and one.classes == batch.classes
    assert batch.to("cpu").boxes.tolist() == batch.boxes.tolist()


def test_pre_resized_images_use_the_xml_frame(tmp_path):
    _write(tmp_path, "full", 64, 48, [("n01", (17, 13, 48, 36))])
    small = tmp_path / "small"
    small.mkdir()
    _write(small, "half", 64, 48, [("n01", (17, 13, 48, 36))], image_size=(32, 24))
    full = load_voc_folder(tmp_path, size=SIZE)
    half = load_voc_folder(small, size=SIZE)
    assert half.boxes.tolist() == full.boxes.tolist() == [[4, 7, 29, 26]]


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="images folder not found"):
        load_voc_folder(tmp_path / "nope")
    with pytest.raises(ValueError, match="no images"):
        load_voc_folder(tmp_path)
    _write(tmp_path, "a", 20, 20, [("n01", (1, 1, 10, 10))])
    with pytest.raises(FileNotFoundError, match="annotations folder not found"):
        load_voc_folder(tmp_path, tmp_path / "xml")

    Image.new("RGB", (20, 20)).save(tmp_path / "b.png")
    with pytest.raises(ValueError, match=r"no annotation for image .*b\.png.*b\.xml"):
        load_voc_folder(tmp_path)

    (tmp_path / "b.xml").write_text("<annotation><size>")
    with pytest.raises(ValueError, match=r"malformed annotation .*b\.xml.*not valid XML"):
        load_voc_folder(tmp_path)
    (tmp_path / "b.xml").write_text(_xml(20, 20, []))
    with pytest.raises(ValueError, match="no <object>"):
        load_voc_folder(tmp_path)
    (tmp_path / "b.xml").write_text(_xml(20, 20, [("n01", (1, 1, "ten", 10))]))
    with pytest.raises(ValueError, match="<xmax> is 'ten'"):
        load_voc_folder(tmp_path)
    (tmp_path / "b.xml").write_text(_xml(20, 20, [("n01", (1, 1, 10, 10))]))
    (tmp_path / "b.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cannot read image .*b\.png"):
        load_voc_folder(tmp_path)
    with pytest.raises(ValueError, match="size"):
        load_voc_folder(tmp_path, size=0)
    with pytest.raises(ValueError, match="limit"):
        load_voc_folder(tmp_path, limit=0)
