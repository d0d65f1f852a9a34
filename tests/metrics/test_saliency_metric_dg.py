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


# --------------------------------------------------------------------------- validity


class ZoomAverseModel(nn.Module):
    """Logit of class 0 = 10 * (0.5 - mean intensity): confident on the full image of a small
    bright object, not on a zoomed crop of it (a classifier that never saw large objects)."""

    def forward(self, x):
        m = x.mean((1, 2, 3))
        return torch.stack([10 * (0.5 - m), torch.zeros_like(m)], 1)


def _objects(n=6, size=32):
    """Black images with one bright square each (side 8-10 px, varying positions), and its box."""
    x = torch.zeros(n, 3, size, size)
    boxes = []
    for i in range(n):
        s, x0, y0 = 8 + i % 3, 2 + 3 * i, 20 - 2 * i
        x[i, :, y0:y0 + s, x0:x0 + s] = 1.0
        boxes.append([x0, y0, x0 + s, y0 + s])
    return x, torch.tensor(boxes)


def test_sanity_boxes_true_full_and_a_random_box_of_the_objects_size():
    _, boxes = _objects()
    b = smod.sanity_boxes(boxes, 32, seed=0)
    assert tuple(b) == smod.SANITY_BOXES
    assert torch.equal(b["true box"], boxes)
    assert (b["full image"] == torch.tensor([0, 0, 32, 32])).all()
    r = b["random box"]
    assert torch.equal(r[:, 2] - r[:, 0], boxes[:, 2] - boxes[:, 0])      # same width, height
    assert torch.equal(r[:, 3] - r[:, 1], boxes[:, 3] - boxes[:, 1])
    assert (r[:, :2] >= 0).all() and (r[:, 2:] <= 32).all()
    assert torch.equal(smod.sanity_boxes(boxes, 32, seed=0)["random box"], r)
    assert not torch.equal(smod.sanity_boxes(boxes, 32, seed=1)["random box"], r)
    with pytest.raises(ValueError, match=r"boxes must be an \(N,4\) tensor"):
        smod.sanity_boxes(torch.zeros(3), 32)


def test_sanity_check_flags_a_zoom_averse_classifier_invalid():
    x, boxes = _objects()
    bad = smod.sanity_check(ZoomAverseModel(), x, boxes, 0)
    t = bad.table.set_index("box")
    assert list(t.index) == list(smod.SANITY_BOXES)
    assert t.loc["true box", "saliency_metric"] > t.loc["full image", "saliency_metric"]
    assert not bad.valid and bad.diff > 0 and bad.verdict.startswith("INVALID")
    assert "the full image beats the true object box" in bad.verdict   # CI above 0
    assert (t["n"] == 6).all() and (t["n_nan"] == 0).all()
    assert set(bad.per_image["method"]) == set(smod.SANITY_BOXES)
    # a classifier that recognises the zoomed object: the true box beats the full image
    good = smod.sanity_check(MeanModel(), x, boxes, 0)
    assert good.valid and good.diff < 0 and good.diff_ci[1] < 0
    assert good.verdict.startswith("valid")
    with pytest.raises(ValueError, match="at least 2 images"):
        smod.sanity_check(MeanModel(), x[:1], boxes[:1], 0)
