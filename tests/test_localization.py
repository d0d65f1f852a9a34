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


def test_all_zero_map_is_nan_and_counted_never_dropped():
    import numpy as np
    import pandas as pd

    from kit import report
    from kit.metrics import stats
    from kit.metrics.localization import HIGHER_IS_BETTER

    mask = torch.zeros(3, 1, 8, 8, dtype=torch.bool)
    mask[..., 2:6, 2:6] = True
    sal = mask.float().clone()
    sal[1] = 0.0                                         # an all-zero map (MP keeping everything)
    mass, point = mass_inside(sal, mask, upsample_mode="nearest"), pointing_game(
        sal, mask, upsample_mode="nearest")
    assert math.isnan(mass[1].item()) and math.isnan(point[1].item())
    assert torch.equal(mass[[0, 2]], torch.ones(2)) and torch.equal(point[[0, 2]], torch.ones(2))
    per_image = pd.concat([pd.DataFrame({"image": range(3), "method": "MP", "metric": m,
                                         "value": v.double().numpy()})
                           for m, v in (("mass_inside", mass), ("pointing_game", point))])
    counts = stats.nan_counts(per_image)
    assert counts[["n", "n_nan"]].values.tolist() == [[2, 1], [2, 1]]
    summary = stats.with_nan_counts(report.summarize(per_image, HIGHER_IS_BETTER), per_image)
    assert summary["n_nan"].tolist() == [1, 1] and summary["mean"].tolist() == [1.0, 1.0]
    d = stats.describe(mass.numpy())
    assert (d["n"], d["n_nan"], d["mean"]) == (2, 1, 1.0)
    assert np.isnan(stats.describe([np.nan, np.nan])["mean"])
    with pytest.raises(ValueError, match="does not match"):
        stats.with_nan_counts(summary, per_image.assign(value=1.0))
