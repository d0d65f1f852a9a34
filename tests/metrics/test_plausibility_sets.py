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


def test_method_keep_masks_families():
    x = world.sample(2, seed=0, split="test").images
    sp = P.method_keep_masks("SP-G", x, n_masks=5)
    assert sp.shape == (2, 5, 1, 64, 64)
    assert torch.all((1 - sp).sum((2, 3, 4)) == 64)  # one 8x8 window each
    lime = P.method_keep_masks("LIME", x, n_masks=4)
    assert lime.shape == (2, 4, 1, 64, 64) and set(lime.unique().tolist()) <= {0.0, 1.0}
    rise = P.method_keep_masks("RISE", x, n_masks=3)
    assert rise.shape == (2, 3, 1, 64, 64)
    sal = torch.rand(2, 1, 8, 8)
    mp = P.method_keep_masks("MP", x, sal=sal)
    assert mp.shape == (2, 1, 1, 64, 64) and float(mp.min()) >= 0 and float(mp.max()) <= 1
    with pytest.raises(ValueError, match="sal"):
        P.method_keep_masks("MP-G", x)
    with pytest.raises(ValueError, match="supported"):
        P.method_keep_masks("FIDO-CA-SDR", x)
    with pytest.raises(ValueError, match="valid names"):
        P.method_keep_masks("nope", x)


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
