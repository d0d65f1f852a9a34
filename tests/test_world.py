"""The embedded world: shapes, determinism, ground truth, splits, bad input."""

import numpy as np
import pytest
import torch

from kit import world


@pytest.fixture(scope="module")
def batch():
    return world.sample(64, seed=3, split="test")


def test_shapes_and_dtypes(batch):
    n, s = 64, 64
    assert batch.images.shape == (n, 3, s, s) and batch.images.dtype == torch.float32
    assert batch.backgrounds.shape == (n, 3, s, s) and batch.backgrounds.dtype == torch.float32
    assert batch.masks.shape == (n, 1, s, s) and batch.masks.dtype == torch.bool
    assert batch.labels.shape == (n,) and batch.labels.dtype == torch.int64
    assert batch.boxes.shape == (n, 4) and batch.boxes.dtype == torch.int64
    assert batch.images.min() >= 0 and batch.images.max() <= 1
    assert batch.backgrounds.min() >= 0 and batch.backgrounds.max() <= 1
    assert set(batch.labels.tolist()) <= set(range(len(world.CLASSES)))
    assert len(world.CLASSES) >= 8 and len(set(world.CLASSES)) == len(world.CLASSES)


def test_image_equals_background_outside_mask(batch):
    outside = ~batch.masks.expand_as(batch.images)
    assert torch.equal(batch.images[outside], batch.backgrounds[outside])
    # and the object is visible: inside the mask the image differs from the background
    assert all((batch.images[i] != batch.backgrounds[i]).any() for i in range(len(batch)))


def test_boxes_are_tight(batch):
    for m, (x0, y0, x1, y1) in zip(batch.masks[:, 0], batch.boxes.tolist(), strict=True):
        ys, xs = torch.nonzero(m, as_tuple=True)
        assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_deterministic_and_chunk_independent():
    a = world.sample(12, seed=5, split="val")
    b = world.sample(12, seed=5, split="val")
    for f in ("images", "labels", "masks", "boxes", "backgrounds"):
        assert torch.equal(getattr(a, f), getattr(b, f))
    c = world.sample(4, seed=5, split="val", start=8)
    assert torch.equal(c.images, a.images[8:])
    assert not torch.equal(world.sample(12, seed=6, split="val").images, a.images)


def test_splits_disjoint():
    sets = {s: world.sample(200, seed=0, split=s) for s in world.SPLITS}
    keys = {s: {b.images[i].numpy().tobytes() for i in range(len(b))} for s, b in sets.items()}
    assert not keys["train"] & keys["val"]
    assert not keys["train"] & keys["test"]
    assert not keys["val"] & keys["test"]


def test_classes_balanced_and_size_parameter():
    b = world.sample(800, seed=1)
    counts = np.bincount(b.labels.numpy(), minlength=len(world.CLASSES))
    assert counts.min() > 60  # ~100 each
    small = world.sample(3, seed=1, size=32)
    assert small.images.shape == (3, 3, 32, 32)


def test_indexing(batch):
    one = batch[2]
    assert len(one) == 1 and torch.equal(one.images[0], batch.images[2])
    assert len(batch[1:5]) == 4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "n must be an integer >= 1, got 0"),
        ({"n": 2.5}, "n must be an integer"),
        ({"n": 2, "seed": -1}, "seed must be an integer >= 0"),
        ({"n": 2, "split": "holdout"}, r"split must be one of \['test', 'train', 'val'\], got 'holdout'"),
        ({"n": 2, "size": 8}, "size must be an integer >= 16"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        world.sample(**kwargs)
