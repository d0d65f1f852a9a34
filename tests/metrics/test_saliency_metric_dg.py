"""Dabkowski & Gal's saliency metric (methods.md §4.4) on hand-computed cases."""

import math

import pytest
import torch
from torch import nn

from kit.metrics import saliency_metric as smod


class ConstModel(nn.Module):
    """Two classes, equal logits whatever the input: p = 0.5."""

    def forward(self, x):
        return torch.zeros(x.shape[0], 2)


class MeanModel(nn.Module):
    """Logit of class 0 = 10 * mean intensity of the whole image."""

    def forward(self, x):
        m = x.mean((1, 2, 3))
        return torch.stack([10 * m, torch.zeros_like(m)], 1)


def test_full_image_box_scores_the_image_itself():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 16, 16)
    full = torch.tensor([[0, 0, 16, 16]] * 3)
    r = smod.score_boxes(MeanModel(), x, full, 0)
    p = MeanModel()(x).softmax(1)[:, 0]
    assert torch.allclose(r.area, torch.ones(3))
    assert torch.allclose(r.p, p, atol=1e-6)
    assert torch.allclose(r.sm, -p.log(), atol=1e-5)        # log(1) - log p


def test_area_and_floor_by_hand():
    x = torch.rand(2, 3, 16, 16)
    boxes = torch.tensor([[0, 0, 8, 8], [4, 4, 6, 6]])         # areas 1/4 and 4/256 < 0.05
    r = smod.score_boxes(ConstModel(), x, boxes, 0)
    assert torch.allclose(r.area, torch.tensor([0.25, 4 / 256]))
    assert r.sm[0].item() == pytest.approx(math.log(0.25) - math.log(0.5), abs=1e-6)
    assert r.sm[1].item() == pytest.approx(math.log(0.05) - math.log(0.5), abs=1e-6)


def test_crop_is_resized_bicubically_and_empty_box_is_gray():
    x = torch.zeros(2, 3, 8, 8)
    x[:, :, :4, :4] = 0.8                                    # a flat top-left quadrant
    out = smod.crop_resize(x, torch.tensor([[0, 0, 4, 4], [0, 0, 0, 0]]), empty_color=(0.2, 0.3, 0.4))
    assert torch.allclose(out[0], torch.full((3, 8, 8), 0.8), atol=1e-5)
    assert torch.allclose(out[1], torch.tensor([0.2, 0.3, 0.4]).view(3, 1, 1).expand(3, 8, 8))


def test_map_box_is_the_largest_component_above_the_mean():
    x = torch.rand(1, 3, 16, 16)
    sal = torch.zeros(1, 1, 16, 16)
    sal[..., 2:6, 3:11] = 1                                  # 32 px: the largest component
    sal[..., 12:14, 12:14] = 1                               # 4 px elsewhere
    r = smod.saliency_metric(ConstModel(), x, sal, 0)
    assert r.boxes.tolist() == [[3, 2, 11, 6]]
    assert r.area.item() == pytest.approx(32 / 256)


def test_bad_inputs_raise_clearly():
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"boxes must be a \(1,4\) tensor"):
        smod.score_boxes(ConstModel(), x, torch.zeros(4), 0)
    with pytest.raises(ValueError, match=r"sal must have shape \(1,1,h,w\)"):
        smod.saliency_metric(ConstModel(), x, torch.zeros(2, 1, 8, 8), 0)
    with pytest.raises(ValueError, match=r"x must be in \[0,1\]"):
        smod.saliency_metric(ConstModel(), x * 3, torch.zeros(1, 1, 8, 8), 0)
    with pytest.raises(TypeError, match="target must be an int"):
        smod.score_boxes(ConstModel(), x, torch.zeros(1, 4), 0.5)


def test_saliency_table_long_format():
    x = torch.rand(2, 3, 16, 16)
    table, results = smod.saliency_table(ConstModel(), x, {"a": torch.rand(2, 1, 4, 4)}, 0)
    assert list(table.columns) == ["image", "method", "metric", "value"]
    assert torch.allclose(torch.tensor(table["value"].to_numpy(), dtype=torch.float32),
                          results["a"].sm)
