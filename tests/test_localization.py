"""Localisation metrics against hand-computed cases."""

import math

import pytest
import torch

from kit.metrics.localization import mass_inside, pointing_game


def test_map_equal_to_the_mask_localizes_perfectly():
    mask = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    mask[0, :, 2:5, 2:5] = True
    mask[1, :, 5:, :3] = True
    sal = mask.float()
    assert torch.equal(mass_inside(sal, mask, upsample_mode="nearest"), torch.ones(2))
    assert torch.equal(pointing_game(sal, mask, upsample_mode="nearest"), torch.ones(2))
    assert torch.equal(mass_inside(1 - sal, mask, upsample_mode="nearest"), torch.zeros(2))
    assert torch.equal(pointing_game(-sal, mask, upsample_mode="nearest")[0:1], torch.zeros(1))


def test_uniform_map_gives_the_mask_area_and_native_grids_upsample():
    mask = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    mask[..., :4, :] = True  # half the image
    assert mass_inside(torch.ones(1, 1, 2, 2), mask).item() == pytest.approx(0.5)
    coarse = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])  # top half at a 2x2 grid
    assert mass_inside(coarse, mask, upsample_mode="nearest").item() == pytest.approx(1.0)
    assert math.isnan(mass_inside(-torch.ones(1, 1, 2, 2), mask).item())


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"sal must have shape \(N,1,h,w\)"):
        mass_inside(torch.ones(1, 8, 8), torch.ones(1, 1, 8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask must have shape \(1,1,H,W\)"):
        mass_inside(torch.ones(1, 1, 8, 8), torch.ones(2, 1, 8, 8, dtype=torch.bool))
