"""The mask leak (kit.studies.leak): mask images, the table, ROAR's cache shared, a silhouette
that leaks the class against a random pattern that does not, and bad input."""

from __future__ import annotations

import pytest
import torch

from kit import world
from kit.studies import leak, roar


@pytest.fixture(scope="module")
def clf():
    from kit.models import load_classifier

    return load_classifier("world")


def test_mask_image_is_black_and_white():
    keep = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(1, 1, 2, 2)
    img = leak.mask_image(keep)
    assert img.dtype == torch.uint8 and img.shape == (1, 3, 2, 2)
    assert img[0, :, 0, 0].tolist() == [255] * 3 and img[0, :, 0, 1].tolist() == [0] * 3


def test_table_and_cache_shared_with_roar(clf, tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_CACHE", str(tmp_path))
    data = world.sample(12, seed=41, split="train")
    tr, te = data[:8], data[8:]
    maps = roar.estimator_maps(["random", "sobel"], clf, data.images, cache=False)
    split = {m: (v[:8], v[8:]) for m, v in maps.items()}
    opts = dict(epochs=1, width=4, batch_size=4)
    table = leak.mask_leak(clf, tr.images, tr.labels, te.images, te.labels, maps=split,
                           fills=["gray"], seeds=[0, 1], train_options=opts)
    assert list(table.columns) == ["estimator", "input", "mode", "fraction", "seed", "accuracy",
                                   "seconds"]
    assert len(table) == 2 * 2 * 2 and set(table["input"]) == {"mask", "gray"}
    # the gray rows are ROAR's cells: run_roar reads them back from the same cache entries
    ref = roar.run_roar(clf, tr.images, tr.labels, te.images, te.labels, estimators=["sobel"],
                        fractions=[0.5], modes=["roar"], fills=["gray"], seeds=[0, 1],
                        train_options=opts, maps={"sobel": split["sobel"]})
    got = table.query("estimator == 'sobel' and input == 'gray'")["accuracy"].tolist()
    assert got == ref.query("estimator == 'sobel'")["accuracy"].tolist()
    s = leak.summarize(table)
    assert len(s) == 4 and set(s["n"]) == {2}


def test_a_silhouette_leaks_the_class_and_a_random_pattern_does_not(clf):
    # fresh seeds (in no document); the world's exact object masks as the "estimator": under
    # KAR at 20% (more than any object) the kept pixels hold the silhouette, which a network classifies
    # from the mask alone; a random pattern carries no class (chance 1/8)
    tr = world.sample(1500, seed=921, split="train")
    te = world.sample(300, seed=922, split="test")
    g = torch.Generator().manual_seed(0)
    maps = {"object": (tr.masks.float(), te.masks.float()),
            "random": (torch.rand(tr.masks.shape, generator=g),
                       torch.rand(te.masks.shape, generator=g))}
    table = leak.mask_leak(clf, tr.images, tr.labels, te.images, te.labels, maps=maps,
                           fraction=0.2, mode="kar", fills=[], seeds=[0],
                           train_options=dict(epochs=6), cache=False)
    acc = table.set_index("estimator")["accuracy"]
    assert acc["object"] >= 0.5
    assert acc["random"] <= 0.3


@pytest.mark.parametrize("kw, match", [
    (dict(fraction=1.5), "fraction"),
    (dict(mode="drop"), "mode"),
    (dict(fills=["smudge"]), "smudge"),
    (dict(maps={}), "maps must be a non-empty"),
    (dict(seeds=[]), "seeds"),
])
def test_bad_input(clf, kw, match):
    x = world.sample(4, seed=0, split="train")
    args = dict(maps={"random": (torch.rand(4, 1, 64, 64), torch.rand(4, 1, 64, 64))})
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        leak.mask_leak(clf, x.images, x.labels, x.images, x.labels, **args)
