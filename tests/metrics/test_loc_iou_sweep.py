"""SAM IoU sweep, largest-component boxes and threshold tuning (methods.md §4.2) on hand cases."""

import pytest
import torch

from kit.metrics import localization as loc


def _box_map(n=1, size=16, box=(3, 4, 9, 12), value=1.0):
    """Maps equal to the indicator of ``box`` = (x0, y0, x1, y1), exclusive."""
    m = torch.zeros(n, 1, size, size)
    x0, y0, x1, y1 = box
    m[..., y0:y1, x0:x1] = value
    return m


@pytest.mark.parametrize("rule", loc.BOX_RULES)
def test_map_equal_to_the_ground_truth_localizes_perfectly(rule):
    gt = torch.tensor([[3, 4, 9, 12]])
    iou = loc.iou_sweep(_box_map(), gt, 16, rule=rule)
    assert iou.shape == (1, len(loc.THRESHOLDS))
    assert torch.equal(iou, torch.ones_like(iou))
    assert torch.equal(loc.localization_error(iou), torch.zeros_like(iou))
    assert torch.equal(loc.largest_component_box(_box_map(), 16), gt)


def test_thresholds_are_sams_grid():
    assert loc.THRESHOLDS == (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)


def test_threshold_decides_which_pixels_survive():
    m = _box_map(box=(0, 0, 4, 4))                 # value 1 at the top-left 4x4
    m[..., 12:16, 12:16] = 0.32                    # a weaker blob bottom-right
    boxes = loc.threshold_boxes(m, 16)[0]          # (9, 4)
    for theta, b in zip(loc.THRESHOLDS, boxes.tolist(), strict=True):
        assert b == ([0, 0, 16, 16] if theta <= 0.32 else [0, 0, 4, 4]), theta
    # largest component: the two 4x4 blobs tie on size, the first in raster order wins
    assert loc.threshold_boxes(m, 16, rule="largest")[0, 0].tolist() == [0, 0, 4, 4]
    m[..., 10:16, 10:16] = 0.32                    # now the weak blob is larger
    assert loc.threshold_boxes(m, 16, rule="largest")[0, 0].tolist() == [10, 10, 16, 16]
    assert loc.threshold_boxes(m, 16, rule="all")[0, 0].tolist() == [0, 0, 16, 16]


def test_partial_overlap_iou_by_hand():
    # predicted 8x8 box, ground truth 8x8 shifted down by 4: overlap 32, union 96 -> IoU 1/3
    iou = loc.iou_sweep(_box_map(box=(0, 0, 8, 8)), torch.tensor([[0, 4, 8, 12]]), 16)
    assert torch.allclose(iou, torch.full_like(iou, 1 / 3))
    assert loc.localization_error(iou).eq(1).all()
    # ground truth = the top half of the predicted box: IoU exactly 0.5, which counts as a hit
    iou = loc.iou_sweep(_box_map(box=(0, 0, 8, 8)), torch.tensor([[0, 0, 8, 4]]), 16)
    assert torch.equal(iou, torch.full_like(iou, 0.5))
    assert loc.localization_error(iou).eq(0).all()
    assert loc.localization_error(iou, iou_threshold=0.6).eq(1).all()
    assert loc.box_iou(torch.tensor([0, 0, 2, 2]), torch.tensor([2, 2, 4, 4])).item() == 0


def test_negative_or_zero_maps_localize_nothing():
    iou = loc.iou_sweep(-_box_map(), torch.tensor([[3, 4, 9, 12]]), 16)
    assert torch.equal(iou, torch.zeros_like(iou))
    assert torch.equal(loc.threshold_boxes(torch.zeros(1, 1, 4, 4), 16)[0, 0], torch.zeros(4).long())
    assert loc.largest_component_box(torch.ones(1, 1, 4, 4), 16).tolist() == [[0, 0, 0, 0]]


def test_native_grid_is_upsampled():
    coarse = torch.zeros(1, 1, 2, 2)
    coarse[..., 0, 0] = 1                           # top-left quadrant at a 2x2 grid
    b = loc.threshold_boxes(coarse, 16, upsample_mode="nearest")[0, 0]
    assert b.tolist() == [0, 0, 8, 8]


def test_tune_threshold_minimises_the_held_out_error():
    iou = torch.tensor([[0.2, 0.6, 0.7], [0.4, 0.55, 0.3], [0.1, 0.2, 0.9]])
    assert loc.tune_threshold(iou, (0.1, 0.2, 0.3)) == 0.3       # errors 1, 1/3, 1/3; IoU tie-break
    assert loc.tune_threshold(torch.ones(2, 3), (0.1, 0.2, 0.3)) == 0.1   # full tie: smallest


def test_bad_inputs_raise_clearly():
    gt = torch.tensor([[0, 0, 4, 4]])
    with pytest.raises(ValueError, match="rule must be one of all, largest"):
        loc.threshold_boxes(_box_map(), 16, rule="biggest")
    with pytest.raises(ValueError, match=r"thresholds must be values in \(0, 1\]"):
        loc.threshold_boxes(_box_map(), 16, thresholds=(0.0, 0.5))
    with pytest.raises(ValueError, match=r"boxes must be a \(1,4\) tensor"):
        loc.iou_sweep(_box_map(), torch.zeros(2, 4), 16)
    with pytest.raises(ValueError, match=r"sal must have shape \(N,1,h,w\)"):
        loc.iou_sweep(torch.zeros(1, 16, 16), gt, 16)
    with pytest.raises(ValueError, match="sal contains NaN"):
        loc.iou_sweep(torch.full((1, 1, 4, 4), float("nan")), gt, 16)
    with pytest.raises(ValueError, match="size must be a positive int"):
        loc.iou_sweep(_box_map(), gt, 0)
    with pytest.raises(ValueError, match=r"iou must have shape \(N>=1, 9\)"):
        loc.tune_threshold(torch.zeros(3, 4))


def test_tables_tune_on_held_out_maps_and_score_test_maps():
    gt = torch.tensor([[3, 4, 9, 12], [3, 4, 9, 12]])
    masks = _box_map(2).bool()
    good = _box_map(2)
    good[..., 0, 0] = 0.2                           # a weak stray pixel: only low thresholds see it
    maps = {"good": good, "flat": torch.ones(2, 1, 4, 4)}
    sweep = loc.sweep_table(maps, gt, 16)
    assert len(sweep) == 2 * 2 * 2 * len(loc.THRESHOLDS)
    tuned = loc.tune_thresholds(sweep)
    th = tuned.set_index(["method", "rule"])["threshold"]
    assert th["good", "all"] == 0.25                 # the first threshold above the stray pixel
    assert th["good", "largest"] == 0.1              # the component rule ignores it
    table = loc.localization_table(maps, gt, masks, tuned)
    v = table.set_index(["method", "metric", "image"])["value"].sort_index()
    assert (v["good", "loc_error"] == 0).all() and (v["good", "iou"] == 1).all()
    assert (v["flat", "loc_error"] == 1).all() and (v["flat", "loc_error_casme"] == 1).all()
    assert set(table["metric"]) <= set(loc.HIGHER_IS_BETTER)
    with pytest.raises(ValueError, match="tuned: no threshold for method 'other'"):
        loc.localization_table({"other": good}, gt, masks, tuned)
