"""kit.metrics.agreement: within-object agreement (Spearman inside the object) and its sanity rows.

Sanity rows on real oracle-rung maps (SP-O, cheap geometry, world test images): X-O against
itself is 1, a random map and the maps of other images are near 0 (bounds of a few standard errors
of a mean of per-image Spearman correlations, on seeds used nowhere else); undefined images are
NaN with a reason and counted.
"""

from __future__ import annotations

import pytest
import torch

from kit import world
from kit.attributors import explain
from kit.maps import Maps, geometry
from kit.metrics import agreement

GEOM = {"window": 16, "stride": 8}  # a 7x7 grid: about 10-25 patches touch an object


def test_touching_follows_each_geometry():
    mask = torch.zeros(1, 1, 64, 64, dtype=torch.bool)
    mask[0, 0, 10, 10] = True
    cov = agreement.touching(mask, (15, 15), geometry("sliding_patch", 64, window=8, stride=4))
    # windows [4r, 4r + 8) hold row 10 for r = 1, 2
    assert cov[0].nonzero().tolist() == [[1, 1], [1, 2], [2, 1], [2, 2]]
    cov = agreement.touching(mask, (7, 7), geometry("sliding_patch", 64, **GEOM))
    assert cov[0].nonzero().tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert agreement.touching(mask, (8, 8))[0].nonzero().tolist() == [[1, 1]]
    assert agreement.touching(mask, (8, 8), {"mode": "nearest"})[0].nonzero().tolist() == [[1, 1]]
    full = agreement.touching(mask, (64, 64))
    assert torch.equal(full, mask[:, 0])  # a full-resolution map: the object's own pixels
    with pytest.raises(ValueError, match="grid"):
        agreement.touching(mask, (8, 8), geometry("sliding_patch", 64, window=8, stride=4))


@pytest.fixture(scope="module")
def oracle_maps():
    from kit.models import load_classifier

    torch.set_num_threads(1)
    clf = load_classifier("world")
    b = world.sample(16, seed=913, split="test")
    sal = explain("SP-O", clf, b.images, b.labels, backgrounds=b.backgrounds, **GEOM)
    return Maps({"SP-O": sal}, {"SP-O": geometry("sliding_patch", 64, **GEOM)}), b


def test_sanity_rows(oracle_maps):
    maps, b = oracle_maps
    ref = maps["SP-O"]
    g = maps.spec("SP-O")
    n = ref.shape[0]
    self_, n_pos, _ = agreement.within_object_agreement(ref, ref, b.masks, geometry=g,
                                                         details=True)
    ok = torch.isfinite(self_)
    assert ok.sum() >= n - 2
    torch.testing.assert_close(self_[ok], torch.ones(int(ok.sum()), dtype=torch.float64))
    # reversed ranking: -1
    neg = agreement.within_object_agreement(-ref, ref, b.masks, geometry=g)
    torch.testing.assert_close(neg[ok], -torch.ones(int(ok.sum()), dtype=torch.float64))
    # Unrelated maps: a Spearman over k positions has SE about 1/sqrt(k - 1) under independence,
    # so their mean over the images stays within 4 standard errors of 0.
    se = float((1 / (n_pos[ok].double() - 1)).mean().sqrt()) / float(ok.sum()) ** 0.5
    for seed in (71, 72):
        noise = torch.rand(ref.shape, generator=torch.Generator().manual_seed(seed))
        r = agreement.within_object_agreement(noise, ref, b.masks, geometry=g)
        assert abs(float(r.nanmean())) < 4 * se, (seed, float(r.nanmean()), se)
    # the maps of other images (shifted by one and by five), read at this image's object
    for shift in (1, 5):
        r = agreement.within_object_agreement(ref.roll(shift, 0), ref, b.masks, geometry=g)
        assert abs(float(r.nanmean())) < 4 * se, (shift, float(r.nanmean()), se)
    # a noisy copy still agrees
    g73 = torch.Generator().manual_seed(73)
    noisy = ref + 0.3 * ref.std() * torch.randn(ref.shape, generator=g73)
    assert float(agreement.within_object_agreement(noisy, ref, b.masks, geometry=g).nanmean()) > 0.5


def test_table_and_summary_count_nan(oracle_maps):
    maps, b = oracle_maps
    ref = maps["SP-O"]
    sal = ref.clone()
    sal[0] = 0.0  # constant map
    masks = b.masks.clone()
    masks[1] = False
    masks[1, 0, 30, 30] = True  # a one-pixel object: 4 patches still touch it
    masks[2] = False  # no object at all
    both = Maps({"SP": sal, "SP-O": ref}, {k: maps.spec("SP-O") for k in ("SP", "SP-O")})
    table = agreement.agreement_table(both, masks)  # default: SP against its O rung
    assert set(table["method"]) == {"SP"} and set(table["reference"]) == {"SP-O"}
    assert list(table.columns) == ["image", "method", "reference", "metric", "value",
                                   "n_positions", "nan_reason"]
    row = table.set_index("image")
    assert row.loc[0, "nan_reason"] == "map constant on the object"
    assert row.loc[1, "n_positions"] == 4
    assert row.loc[2, "n_positions"] == 0 and "fewer than 3" in row.loc[2, "nan_reason"]
    nan = table["value"].isna()
    assert (table.loc[nan, "nan_reason"] != "").all() and (table.loc[~nan, "nan_reason"] == "").all()
    s = agreement.summarize(table)
    assert len(s) == 1 and s.loc[0, "n"] + s.loc[0, "n_nan"] == len(table)
    assert s.loc[0, "n_nan"] == int(nan.sum()) >= 2
    assert s.loc[0, "ci_low"] <= s.loc[0, "mean"] <= s.loc[0, "ci_high"]
    assert abs(s.loc[0, "mean"] - table["value"].mean()) < 1e-12  # mean over defined images


def test_bad_input():
    sal = torch.rand(2, 1, 8, 8)
    masks = torch.ones(2, 1, 64, 64, dtype=torch.bool)
    with pytest.raises(ValueError, match="reference: expected the map's own grid"):
        agreement.within_object_agreement(sal, torch.rand(2, 1, 15, 15), masks)
    with pytest.raises(ValueError, match="reference_geometry"):
        agreement.within_object_agreement(sal, sal, masks, reference_geometry={"mode": "nearest"})
    with pytest.raises(ValueError, match="masks: expected 2 masks"):
        agreement.within_object_agreement(sal, sal, masks[:1])
    with pytest.raises(ValueError, match=r"references: map\(s\) \['SP-O'\] not among maps"):
        agreement.agreement_table({"SP": sal}, masks, {"SP": "SP-O"})
