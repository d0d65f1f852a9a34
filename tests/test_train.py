"""kit.train.train_classifier on tensors: seeded, global RNG untouched, partial batches, bad input.
Tiny sizes only (the world trainers' reproducibility is tested in test_models.py)."""

from __future__ import annotations

import pytest
import torch

from kit import world
from kit.models import Classifier
from kit.train import train_classifier

TINY = dict(epochs=1, batch_size=8, width=4)


@pytest.fixture(scope="module")
def data():
    return world.sample(17, seed=5, split="train")


def _equal(a: Classifier, b: Classifier) -> bool:
    sa, sb = a.net.state_dict(), b.net.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def test_seeded_and_global_rng_untouched(data):
    state = torch.get_rng_state()
    a = train_classifier(data.images, data.labels, seed=0, **TINY)
    assert torch.equal(torch.get_rng_state(), state)
    b = train_classifier(data.images, data.labels, seed=0, **TINY)
    c = train_classifier(data.images, data.labels, seed=1, **TINY)
    assert isinstance(a, Classifier) and a.classes == world.CLASSES
    assert _equal(a, b) and not _equal(a, c)
    assert not any(p.requires_grad for p in a.parameters()) and not a.training


def test_uint8_images_are_pixels_over_255(data):
    q = (data.images * 255).round().to(torch.uint8)
    a = train_classifier(q, data.labels, **TINY)
    b = train_classifier(q.float() / 255, data.labels, **TINY)
    assert _equal(a, b) and a.mean == b.mean


def test_drop_last_trains_full_batches_only(data):
    # 17 images, batch 8: a partial batch of one (skipped) unless dropped; same draws either way,
    # but the one-cycle schedule spans 3 steps instead of 2
    a = train_classifier(data.images, data.labels, drop_last=True, **TINY)
    b = train_classifier(data.images, data.labels, **TINY)
    assert not _equal(a, b)
    with pytest.raises(ValueError, match="batch_size"):
        train_classifier(data.images[:4], data.labels[:4], drop_last=True, **TINY)


@pytest.mark.parametrize("kw, pattern", [
    (dict(labels=torch.zeros(3, dtype=torch.long)), "labels"),
    (dict(labels=torch.zeros(17)), "labels"),
    (dict(epochs=0), "epochs"),
    (dict(batch_size=1.5), "batch_size"),
    (dict(width=True), "width"),
    (dict(seed="a"), "seed"),
    (dict(lr=0), "lr"),
])
def test_bad_input_names_the_argument(data, kw, pattern):
    args = dict(images=data.images, labels=data.labels, **TINY)
    args.update(kw)
    with pytest.raises((ValueError, TypeError), match=pattern):
        train_classifier(args.pop("images"), args.pop("labels"), **args)
    with pytest.raises((ValueError, TypeError), match="images"):
        train_classifier(data.images * 255, data.labels, **TINY)
