"""Metrics take each map's geometry from kit.maps.Maps: SP grids reach pixels by coverage."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kit.maps import Maps, geometry
from kit.metrics import localization
from kit.metrics.deletion import curve_table


@pytest.fixture
def toy_classifier():
    from kit.models import Classifier

    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(4, 3))
    torch.nn.init.normal_(net[0].weight, generator=torch.Generator().manual_seed(0))
    return Classifier(net, ("a", "b", "c"), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), name="toy")


def _grid_maps():
    g = torch.Generator().manual_seed(3)
    sp = torch.rand(2, 1, 7, 7, generator=g)  # a 16x16 image, window 4, stride 2
    spec = geometry("sliding_patch", 16, window=4, stride=2)
    return Maps({"SP": sp}, {"SP": spec}), spec


def test_localization_uses_coverage_for_patch_grids():
    maps, spec = _grid_maps()
    masks = torch.zeros(2, 1, 16, 16, dtype=torch.bool)
    masks[:, :, 2:9, 3:11] = True
    boxes = torch.tensor([[3, 2, 11, 9]] * 2)
    tuned = localization.tune_thresholds(localization.sweep_table(maps, boxes, 16))
    table = localization.localization_table(maps, boxes, masks, tuned)
    got = table[table.metric == "mass_inside"].value.to_numpy()
    want = localization.mass_inside(maps["SP"], masks, upsample_mode="coverage", window=4,
                                    stride=2).numpy()
    bilinear = localization.mass_inside(maps["SP"], masks).numpy()
    assert spec == {"mode": "coverage", "window": 4, "stride": 2}
    assert (abs(got - want) < 1e-6).all() and (abs(got - bilinear) > 1e-4).any()


def test_curve_table_uses_coverage_for_patch_grids(toy_classifier):
    maps, _ = _grid_maps()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0, 1])
    per_image, _ = curve_table(toy_classifier, x, maps, t, ["gray"], steps=8)
    forced, _ = curve_table(toy_classifier, x, dict(maps), t, ["gray"], steps=8,
                            upsample_mode="bilinear")
    from kit.metrics.deletion import deletion_curve

    cov = deletion_curve(toy_classifier, x, maps["SP"], t, steps=8, upsample_mode="coverage",
                         window=4, stride=2)
    assert torch.allclose(torch.tensor(per_image.value.to_numpy()).float(), cov.auc, atol=1e-6)
    assert len(forced) == len(per_image)


def test_mp_maps_reach_pixels_by_the_methods_own_rule():
    """MP composites its grid upsampled nearest, MP2 bilinearly: their maps carry that rule."""
    from kit.maps import method_geometry

    assert method_geometry("MP", 64) == {"mode": "nearest"}
    assert method_geometry("MP-G", 64) == {"mode": "nearest"}
    assert method_geometry("MP2", 64) == {"mode": "bilinear"}
    assert method_geometry("FIDO-CA-SDR", 64) == {"mode": "bilinear"}
