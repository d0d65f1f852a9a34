"""Counterfactual sets and the per-remover plausibility table (methods.md §4.1)."""

import numpy as np
import pytest
import torch

from kit import world
from kit.metrics import plausibility as P
from kit.models import load_classifier


def test_mask_bank_areas_determinism_and_independence_of_count():
    bank = P.mask_bank(5, 32, n_masks=6, seed=3)
    assert bank.shape == (5, 6, 1, 32, 32) and set(bank.unique().tolist()) <= {0.0, 1.0}
    removed = (1 - bank).mean((2, 3, 4))
    # rounding of the rectangle sides moves the area a little around [0.1, 0.5]
    assert removed.min() >= 0.07 and removed.max() <= 0.56
    assert torch.equal(P.mask_bank(5, 32, n_masks=6, seed=3), bank)
    assert torch.equal(P.mask_bank(2, 32, n_masks=6, seed=3, start=3), bank[3:])
    assert not torch.equal(P.mask_bank(5, 32, n_masks=6, seed=4), bank)
    with pytest.raises(ValueError, match="area"):
        P.mask_bank(1, 32, area=(0.5, 0.1))


def test_method_masks_families():
    x = world.sample(2, seed=0, split="test").images
    sp = P.stack(P.method_masks("SP-G", x, n_masks=5), 2)
    assert sp.shape == (2, 5, 1, 64, 64)
    assert torch.all((1 - sp).sum((2, 3, 4)) == 64)  # one 8x8 window each
    lime = P.stack(P.method_masks("LIME", x, n_masks=4), 2)
    assert lime.shape == (2, 4, 1, 64, 64) and set(lime.unique().tolist()) <= {0.0, 1.0}
    rise = P.stack(P.method_masks("RISE", x, n_masks=3), 2)
    assert rise.shape == (2, 3, 1, 64, 64)
    shap = P.stack(P.method_masks("KernelSHAP-G", x, n_masks=3), 2)
    assert shap.shape == (2, 3, 1, 64, 64)
    sal = torch.rand(2, 1, 8, 8)
    mp = P.stack(P.method_masks("MP", x, sal=sal), 2)
    assert mp.shape == (2, 1, 1, 64, 64) and float(mp.min()) >= 0 and float(mp.max()) <= 1
    with pytest.raises(ValueError, match="sal"):
        P.method_masks("MP-G", x)
    with pytest.raises(ValueError, match="supported"):
        P.method_masks("FIDO-CA-SDR", x)
    with pytest.raises(ValueError, match="valid names"):
        P.method_masks("nope", x)


def test_method_masks_are_the_methods_own():
    from kit.attributors import MASK_SETS, METHODS, budget

    x = world.sample(2, seed=0, split="test").images
    overrides = budget("cheap", ["SP-G", "LIME", "RISE"])
    # the profile's stride and SP-G's local crops reach the mask set
    sp = P.method_masks("SP-G", x, overrides=overrides, n_masks=6, seed=1)
    assert sp.masks.stride == overrides["SP-G"]["stride"] and sp.masks.local
    assert sp.composites is not None and len(sp) == 6
    # LIME: the method's own draw (its n_samples), never its unperturbed row 0
    lime = P.method_masks("LIME", x, overrides=overrides, n_masks=39, seed=0)
    assert len(lime.masks) == overrides["LIME"]["n_samples"]
    assert len(lime) <= 39 and not (lime.index == 0).any()
    own = MASK_SETS["lime"](x, **{**METHODS["LIME"].params, **overrides["LIME"], "seed": 0})
    assert torch.equal(P.stack(lime, 2), own.build(lime.index.reshape(-1),
                                                   image=torch.arange(2).repeat_interleave(
                                                       len(lime))).reshape(2, len(lime), 1,
                                                                           64, 64))
    # RISE: a subset of the masks RISE itself draws at the profile's n_masks
    rise = P.method_masks("RISE", x, overrides=overrides, n_masks=4, seed=0)
    assert len(rise.masks) == overrides["RISE"]["n_masks"]
    assert torch.equal(P.stack(rise, 2)[1], rise.masks.build(rise.index[1]))
    # the per-image subsample is seeded and depends on the image
    again = P.method_masks("SP-G", x, overrides=overrides, n_masks=6, seed=1)
    assert torch.equal(again.index, sp.index) and not torch.equal(sp.index[0], sp.index[1])


def test_sampled_local_counterfactuals_are_sp_gs():
    """The engine scores a sampled SP-G set exactly as SP-G scored those windows."""
    from kit.engine import score_masks
    from kit.removers import get_remover

    clf = load_classifier("world")
    b = world.sample(2, seed=2, split="test")
    sp = P.method_masks("SP-G", b.images, overrides={"SP-G": {"stride": 8, "local": True}},
                        n_masks=3)
    rem = get_remover("telea", model=clf)
    full = score_masks(clf, b.images, b.labels, sp.masks, rem, batch_size=64)
    mine = score_masks(clf, b.images, b.labels, sp, rem, batch_size=4)
    assert torch.allclose(mine, full.gather(1, sp.index), atol=1e-6)


def test_sample_skips_masks_that_remove_nothing():
    keep = torch.ones(2, 5, 1, 4, 4)
    keep[0, 3, 0, 0, 0] = 0
    keep[1, 1:3, 0, 1, 1] = 0
    s = P.sample(P.KeepMasks(keep), 2, 4, seed=0)
    assert len(s) == 1 and s.index[0].item() == 3 and s.index[1].item() in (1, 2)
    with pytest.raises(ValueError, match="image"):
        P.sample(P.KeepMasks(torch.ones(1, 3, 1, 4, 4)), 1, 2)
    with pytest.raises(ValueError, match="n_masks"):
        P.sample(P.KeepMasks(keep), 2, 0)


def test_counterfactual_table_oracle_is_the_floor():
    clf = load_classifier("world")
    b = world.sample(6, seed=1, split="test")
    keeps = P.mask_bank(6, 64, n_masks=4, seed=0)
    per_image, fd = P.counterfactual_table(
        clf, b, keeps, {"oracle": "oracle", "gray": "gray", "blur": "blur"},
        n_boot=20, reference_images=world.sample(24, seed=1, split="test", start=100).images)
    assert set(per_image.columns) == {"image", "method", "metric", "value"}
    means = per_image.groupby(["method", "metric"]).value.mean()
    assert means["oracle", "l1"] == 0 and np.isnan(means["oracle", "psnr"])
    assert means["oracle", "artifact_rate"] == 0  # its top-1 is the reference by definition
    assert means["gray", "l1"] > 0 and means["blur", "l1"] > 0
    assert set(fd.columns) == {"method", "metric", "mean", "ci_low", "ci_high", "n",
                               "higher_is_better"}
    fd = fd.set_index(["method", "metric"])
    assert fd.loc[("oracle", "fd_background"), "mean"] == pytest.approx(0, abs=1e-6)
    gray = fd.loc[("gray", "fd_background")]
    assert gray["mean"] > fd.loc[("oracle", "fd_background"), "mean"]
    assert gray["ci_low"] <= gray["mean"] <= gray["ci_high"]
    # a hand check of one image's L1 for gray: mean |fill - background| over the hole
    k = keeps[0].reshape(4, 1, 64, 64)
    fill = torch.tensor(clf.mean).view(1, 3, 1, 1)
    w = (1 - k).expand(4, 3, 64, 64)
    l1 = ((w * (fill - b.backgrounds[:1]).abs()).sum((1, 2, 3)) / w.sum((1, 2, 3))).mean()
    got = per_image.query("method == 'gray' and metric == 'l1' and image == 0").value.item()
    assert got == pytest.approx(float(l1), rel=1e-5)


def test_counterfactual_table_takes_mask_sets_and_local_composites():
    from kit.removers import get_remover

    clf = load_classifier("world")
    b = world.sample(3, seed=4, split="test")
    keeps = P.mask_bank(3, 64, n_masks=2, seed=0)
    a, fa = P.counterfactual_table(clf, b, keeps, {"gray": "gray"}, n_boot=0)
    c, fc = P.counterfactual_table(clf, b, P.KeepMasks(keeps), {"gray": "gray"}, n_boot=0)
    assert np.allclose(a.value, c.value, equal_nan=True) and np.allclose(fa["mean"], fc["mean"])
    sp = P.method_masks("SP-G", b.images, overrides={"SP-G": {"stride": 8, "local": True}},
                        n_masks=2)
    per_image, fd = P.counterfactual_table(clf, b, {"telea": sp, "gray": keeps},
                                           {"telea": "telea", "gray": "gray"}, n_boot=0)
    means = per_image.groupby(["method", "metric"]).value.mean()
    assert means["telea", "l1"] > 0 and np.isclose(means["gray", "l1"],
                                                   a.query("metric == 'l1'").value.mean())
    # a local composite changes the image only inside its window (kept pixels are the image's)
    keep = P.stack(sp, 3)
    xt = sp.composites(get_remover("telea", model=clf), b.images,
                       torch.arange(3).repeat_interleave(2), torch.tensor([0, 1] * 3))
    kept = keep.reshape(6, 1, 64, 64).expand(6, 3, 64, 64).bool()
    assert torch.equal(xt[kept], b.images.repeat_interleave(2, 0)[kept])
    with pytest.raises(ValueError, match="keeps"):
        P.counterfactual_table(clf, b, keeps[:2], {"gray": "gray"}, n_boot=0)
    with pytest.raises(ValueError, match="valid names"):
        P.counterfactual_table(clf, b, keeps, {"x": "nope"}, n_boot=0)


def test_counterfactual_table_scores_the_oracle_once_per_mask_content():
    """Rungs of one method share their masks: the true-background counterfactuals of equal mask
    contents are scored once, in other objects too, and masks that differ are scored again."""
    from kit import passes

    clf = load_classifier("world")
    b = world.sample(3, seed=6, split="test")
    keeps = P.mask_bank(3, 64, n_masks=2, seed=0)
    other = P.mask_bank(3, 64, n_masks=2, seed=1)
    with passes.counting() as counts:
        shared, fd_shared = P.counterfactual_table(
            clf, b, {"gray": keeps, "blur": keeps.clone(), "noise": P.KeepMasks(keeps.clone())},
            {"gray": "gray", "blur": "blur", "noise": "noise"}, batch_size=4, n_boot=0)
    # 3 reference images, 6 oracle composites once, 6 per remover
    assert counts["classifier_forward"] == 3 + 6 + 3 * 6
    with passes.counting() as counts:
        P.counterfactual_table(clf, b, {"gray": keeps, "blur": other},
                               {"gray": "gray", "blur": "blur"}, batch_size=4, n_boot=0)
    assert counts["classifier_forward"] == 3 + 2 * 6 + 2 * 6
    # the shared reference gives what each remover gets alone
    for name in ("blur", "noise"):
        alone, fd_alone = P.counterfactual_table(clf, b, keeps, {name: name}, batch_size=4,
                                                 n_boot=0)
        got = shared.query("method == @name").reset_index(drop=True)
        assert np.allclose(got.value, alone.value, equal_nan=True)
        assert np.allclose(fd_shared.query("method == @name")["mean"], fd_alone["mean"])


def test_frechet_distance_matches_the_sqrtm_formula():
    """The eigendecomposition form equals the textbook Tr (S_a S_b)^(1/2) (scipy's sqrtm), on
    features whose covariances differ in shape and rank (fewer samples than dimensions)."""
    from scipy import linalg

    from kit.metrics.plausibility import frechet_distance

    rng = np.random.default_rng(3)
    for n, d in [(200, 8), (40, 16), (12, 20)]:
        a = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
        b = rng.normal(0.3, 1.5, size=(n + 5, d))
        s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        ref = (np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(s_a) + np.trace(s_b)
               - 2 * np.trace(linalg.sqrtm(s_a @ s_b).real))
        assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-6, abs=1e-8)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
