"""Shared fixtures of the explorer's tests (data, model, drawing and view): the world classifier,
world test image #3, and a PNG encoder independent of :mod:`kit.data`."""

from __future__ import annotations

import io

import pytest
import torch

from kit import data
from kit.models import load_classifier


def encode_png(img: torch.Tensor) -> bytes:
    """PNG bytes of a (3,H,W) image in [0,1] (Pillow)."""
    from PIL import Image

    buf = io.BytesIO()
    arr = (img.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="session")
def png():
    """:func:`encode_png`, as a fixture (test modules do not import each other)."""
    return encode_png


@pytest.fixture(scope="module")
def clf():
    return load_classifier("world")


@pytest.fixture(scope="module")
def img(clf):
    return data.load_image(3, model=clf)
