"""Fill-quality measures (kit.metrics.inpainting): their definitions on fills with known answers,
then the issue-13 bounds of the two shipped world inpainters on fresh test images (seed 9137 of the
test split: used in no document)."""

import numpy as np
import pytest
import torch

from kit import world
from kit.metrics import inpainting as I
from kit.models import WORLD_REMOVAL_INPAINTER_PATH, load_classifier, load_inpainter
from kit.removers import Blur, Gray, Inpaint, Precomputed, Telea

FRESH_SEED = 9137


@pytest.fixture(scope="module")
def clf():
    return load_classifier("world")


@pytest.fixture(scope="module")
def batch():
    return world.sample(24, seed=FRESH_SEED, split="test")


def test_hf_energy_counts_only_the_hole_interior():
    x = torch.rand(2, 3, 16, 16)
    hole = torch.zeros(2, 1, 16, 16)
    assert torch.equal(I.hf_energy(x, hole), torch.zeros(2))
    hole[:, :, 4:10, 4:10] = 1
    e = I.hf_energy(x, hole)
    assert (e > 0).all()
    # a seam (a constant fill inside, texture outside) is not texture: only the interior counts
    flat = torch.where(hole.bool(), torch.tensor(0.5), x)
    assert torch.allclose(I.hf_energy(flat, hole), torch.zeros(2))
    # kept pixels two or more px away from the hole do not matter
    y = x.clone()
    y[..., :2, :] = 0
    assert torch.allclose(I.hf_energy(y, hole), e)


def test_object_quality_on_known_fills(clf, batch):
    """Gray: no texture; the true background: ratio 1, FD 0, L1 0; its own image: p stays."""
    q = I.object_quality(clf, batch, {"gray": Gray(color=clf.mean), "oracle": "oracle",
                                      "image": Precomputed(batch.images)}, seed=3)
    assert q.loc["gray", "hf_ratio"] == 0 and q.loc["gray", "hf_ratio_textured"] == 0
    assert q.loc["oracle", "hf_ratio"] == pytest.approx(1)
    assert q.loc["oracle", "l1"] == 0 and q.loc["oracle", "fd_background"] < 1e-6
    assert q.loc["image", "p_removed"] > 0.9 > 0.3 > q.loc["oracle", "p_removed"]
    for m in ("fd_background", "hf_ratio", "l1", "p_removed"):
        assert (q[f"{m}_lo"] <= q[m] + 1e-9).all() and (q[m] <= q[f"{m}_hi"] + 1e-9).all()


def test_patch_quality_on_known_fills(clf, batch):
    """Filling with the image itself completes everything; with the background, nothing."""
    patches = I.object_patches(batch.masks, per_image=3, seed=1)
    assert set(patches) == set(I.PATCH_KINDS)
    im, pos = patches["partial"]
    assert len(im) > 0 and im.bincount().max() <= 3
    again = I.object_patches(batch.masks, per_image=3, seed=1)
    assert all(torch.equal(a, b) for k in patches for a, b in zip(patches[k], again[k], strict=True))
    long = I.patch_quality(clf, batch, {"image": Precomputed(batch.images), "oracle": "oracle"},
                           per_image=3, seed=1)
    assert set(long.columns) == {"image", "kind", "remover", "metric", "value"}
    s = I.summarize_patches(long)
    for kind in I.PATCH_KINDS:
        assert s.loc[(kind, "image"), "completion"] == 1
        assert s.loc[(kind, "oracle"), "completion"] == 0
        assert s.loc[(kind, "image"), "drop"] == pytest.approx(0, abs=1e-6)
        assert s.loc[(kind, "oracle"), "drop"] == pytest.approx(
            s.loc[(kind, "oracle"), "drop_oracle"])
        assert s.loc[(kind, "oracle"), "l1"] == 0
        assert s.loc[(kind, "oracle"), "hf_ratio"] == pytest.approx(1)


def test_bad_input_names_the_argument(clf, batch):
    with pytest.raises(ValueError, match="per_image"):
        I.object_patches(batch.masks, per_image=0)
    with pytest.raises(ValueError, match="batch_size"):
        I.object_quality(clf, batch, {"gray": "gray"}, batch_size=0)


@pytest.fixture(scope="module")
def shipped(clf):
    if not WORLD_REMOVAL_INPAINTER_PATH.exists():
        pytest.fail(f"{WORLD_REMOVAL_INPAINTER_PATH} is missing: train it with "
                    "`python -m kit.train inpainter --target removal`")
    return {"completion": Inpaint(model=load_inpainter("world")),
            "removal": Inpaint(model=load_inpainter("world-removal"))}


@pytest.fixture(scope="module")
def object_table(clf, shipped):
    b = world.sample(96, seed=FRESH_SEED, split="test", start=24)
    refs = {"gray": Gray(color=clf.mean), "blur": Blur(3.0), "telea": Telea()}
    return I.object_quality(clf, b, {**refs, **shipped}, seed=0)


@pytest.mark.parametrize("name", ["completion", "removal"])
def test_shipped_whole_object_bounds(object_table, name):
    """What the shipped inpainters reach on whole-object holes: issue 2's p(removed class) bound,
    a feature FD below gray's and blur's, and far more texture than any smooth fill."""
    q = object_table
    assert q.loc[name, "p_removed"] <= 0.25, q
    for other in ("gray", "blur"):
        assert q.loc[name, "fd_background_hi"] < q.loc[other, "fd_background_lo"], q
        assert q.loc[name, "l1"] < q.loc[other, "l1"], q
    # texture: at least a quarter of the true background's high-frequency energy, and above
    # Telea's with non-overlapping CIs (the audit: the previous inpainter kept 1.8-7%)
    for col in ("hf_ratio", "hf_ratio_textured"):
        assert q.loc[name, col] >= 0.25, q
        assert q.loc[name, f"{col}_lo"] > q.loc["telea", f"{col}_hi"], q


@pytest.mark.parametrize("name", ["completion", "removal"])
def test_shipped_texture_goal(object_table, name):
    """Issue 13's texture goal, reached by the 8,000-iteration checkpoints: at least half the
    true background's high-frequency energy inside whole-object holes, over all images and over
    the more textured half of the backgrounds."""
    q = object_table
    assert q.loc[name, "hf_ratio"] >= 0.5 and q.loc[name, "hf_ratio_textured"] >= 0.5, q


@pytest.mark.parametrize("name", ["completion", "removal"])
def test_shipped_l1_within_telea(object_table, name):
    """Texture need not cost L1 here: the textured fills are no farther from the true background
    than Telea's smooth fill (within 0.005 per channel)."""
    q = object_table
    assert q.loc[name, "l1"] <= q.loc["telea", "l1"] + 0.005, q


@pytest.mark.xfail(strict=True, reason="issue 13 goal not reached by the shipped checkpoints "
                   "(measured in notebook 00): their feature FD to the true backgrounds is above "
                   "Telea's")
@pytest.mark.parametrize("name", ["completion", "removal"])
def test_shipped_fd_goal(object_table, name):
    """Issue 13's goal: feature FD below Telea's with non-overlapping CIs. Strict: the day a
    retrained checkpoint reaches it, this test says so."""
    q = object_table
    assert q.loc[name, "fd_background_hi"] < q.loc["telea", "fd_background_lo"], q


@pytest.fixture(scope="module")
def patch_table(clf, shipped):
    b = world.sample(32, seed=FRESH_SEED, split="test", start=200)
    return I.summarize_patches(I.patch_quality(clf, b, shipped, per_image=4, seed=0))


def test_shipped_patch_bounds(patch_table):
    """Removal hides more of the covered object than completion and takes away more of the class
    evidence; completion restores most of it."""
    s = patch_table
    for kind in I.PATCH_KINDS:
        rem, comp = s.loc[(kind, "removal")], s.loc[(kind, "completion")]
        assert rem["completion_hi"] < comp["completion_lo"], s
        assert comp["completion"] > 0.5, s
        assert rem["drop"] > comp["drop"], s
    assert np.isfinite(s["hf_ratio"]).all()


def test_shipped_removal_bound(patch_table):
    """What the shipped removal inpainter reaches: it fills at most 35% of the hidden object
    pixels closer to the object than to the true background (a gray patch: about 45%; the
    completion inpainter: over 70%)."""
    for kind in I.PATCH_KINDS:
        assert patch_table.loc[(kind, "removal"), "completion"] <= 0.35, patch_table


@pytest.mark.xfail(strict=True, reason="issue 13 goal not reached by the shipped removal "
                   "inpainter (measured in notebook 00): it still fills about a quarter of the "
                   "hidden object pixels closer to the object")
def test_shipped_removal_goal(patch_table):
    """Issue 13's goal: the removal inpainter completes at most 20% of the hidden object."""
    for kind in I.PATCH_KINDS:
        assert patch_table.loc[(kind, "removal"), "completion"] <= 0.2, patch_table
