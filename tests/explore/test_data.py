"""kit.data: world test images and user image files as one (1,3,S,S) batch and target."""

from __future__ import annotations

import pytest
import torch

from kit import data, world


def test_load_image_world_and_files(clf, img, tmp_path, png):
    b = world.sample(1, seed=0, split="test", start=3)
    assert torch.equal(img.x, b.images) and img.target == int(b.labels[0])
    assert torch.equal(img.background, b.backgrounds)
    encoded = png(b.images[0])
    path = tmp_path / "mine.png"
    path.write_bytes(encoded)
    from_file = data.load_image(str(path), model=clf)
    assert from_file.x.shape == (1, 3, 64, 64) and from_file.background is None
    torch.testing.assert_close(from_file.x, b.images, atol=1 / 255 + 1e-6, rtol=0)
    assert from_file.target == int(clf(from_file.x).argmax(1)[0])
    from_bytes = data.load_image(encoded, model=clf)
    assert torch.equal(from_bytes.x, from_file.x) and from_bytes.key == from_file.key
    # a larger, non-square file: shorter side resized, centre crop
    big = torch.nn.functional.interpolate(b.images, size=(96, 128), mode="bilinear")
    wide = data.load_image(png(big[0]), model=clf)
    assert wide.x.shape == (1, 3, 64, 64)
    assert torch.equal(data.decode_image(png(big[0]), 64), wide.x)


@pytest.mark.parametrize(("source", "err", "match"), [
    (-1, ValueError, "index.*>= 0, got -1"),
    ("/no/such/file.png", ValueError, "no image file"),
    (b"not an image", ValueError, "could not decode"),
    (2.5, TypeError, "got float"),
])
def test_load_image_errors(clf, source, err, match):
    with pytest.raises(err, match=match):
        data.load_image(source, model=clf)


def test_load_image_file_needs_model(img):
    with pytest.raises(ValueError, match="model is needed"):
        data.load_image(b"\x89PNG", model=None)
