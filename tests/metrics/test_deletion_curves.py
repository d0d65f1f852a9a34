"""Deletion / insertion curves and AUC (methods.md §4.3) on toy models with hand-computed values."""

import math

import pytest
import torch
from torch import nn

from kit.metrics import deletion as dl
from kit.removers import Gray, TrueBackground

BLACK = Gray(color=(0.0, 0.0, 0.0))


class PatchModel(nn.Module):
    """Two classes; logit of class 0 = 10 * mean intensity of the square rows/cols 2:6."""

    def forward(self, x):
        m = x[:, :, 2:6, 2:6].mean((1, 2, 3))
        return torch.stack([10 * m, torch.zeros_like(m)], 1)


def _square():
    s = torch.zeros(1, 1, 8, 8)
    s[..., 2:6, 2:6] = 1
    return s


def sig(v):
    return 1 / (1 + math.exp(-v))


def test_auc_of_constant_and_linear_curves():
    c = torch.full((2, 29), 0.7)
    assert torch.allclose(dl.auc(c), torch.full((2,), 0.7))
    assert torch.allclose(dl.auc(c, convention="sam"), torch.ones(2))
    lin = torch.linspace(0, 1, 29)[None]
    assert dl.auc(lin).item() == pytest.approx(0.5)
    s = torch.tensor([[1.0, 0.0, 0.0]])                      # RISE: (sum - s0/2 - sn/2) / n
    assert dl.auc(s).item() == pytest.approx((1 - 0.5) / 2)
    assert math.isnan(dl.auc(torch.zeros(1, 3), convention="sam").item())


def test_deletion_scores_by_hand():
    x = torch.ones(1, 3, 8, 8)
    c = dl.deletion_curve(PatchModel(), x, _square(), 0, remover=BLACK, steps=4)
    assert torch.allclose(c.fractions, torch.tensor([0, 0.25, 0.5, 0.75, 1]))
    # step 1 deletes exactly the 16 square pixels: logit 10 -> 0
    expected = torch.tensor([[sig(10), 0.5, 0.5, 0.5, 0.5]])
    assert torch.allclose(c.scores, expected, atol=1e-6)
    assert c.auc.item() == pytest.approx((sig(10) / 2 + 1.5 + 0.25) / 4, abs=1e-6)
    assert c.mode == "deletion" and c.metric == "deletion_auc"
    ins = dl.deletion_curve(PatchModel(), x, _square(), 0, remover=BLACK, steps=4,
                            mode="insertion")
    assert torch.allclose(ins.scores, torch.tensor([[0.5] + [sig(10)] * 4]), atol=1e-6)


def test_object_first_beats_its_reverse():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 8, 8) * 0.5 + 0.5
    good, bad = _square().expand(3, -1, -1, -1), -_square().expand(3, -1, -1, -1)
    m = PatchModel()
    d_good = dl.deletion_curve(m, x, good, 0, remover=BLACK, steps=8)
    d_bad = dl.deletion_curve(m, x, bad, 0, remover=BLACK, steps=8)
    assert (d_good.auc < d_bad.auc).all()
    i_good = dl.insertion_curve(m, x, good, 0, remover=BLACK, steps=8)
    i_bad = dl.insertion_curve(m, x, bad, 0, remover=BLACK, steps=8)
    assert (i_good.auc > i_bad.auc).all()
    assert d_good.auc_of_mean == pytest.approx(dl.auc(d_good.scores.mean(0, keepdim=True)).item())


def test_stable_order_and_batch_invariance():
    rank = dl.pixel_order(torch.zeros(2, 1, 4, 4), (4, 4))
    assert torch.equal(rank, torch.arange(16).expand(2, 16))   # ties: row-major order
    torch.manual_seed(1)
    x, sal = torch.rand(3, 3, 8, 8), torch.rand(3, 1, 4, 4)
    a = dl.deletion_curve(PatchModel(), x, sal, 0, remover=BLACK, steps=5, batch_size=1)
    b = dl.deletion_curve(PatchModel(), x, sal, 0, remover=BLACK, steps=5, batch_size=256)
    one = dl.deletion_curve(PatchModel(), x[1:2], sal[1:2], 0, remover=BLACK, steps=5)
    assert torch.allclose(a.scores, b.scores) and torch.allclose(a.scores[1], one.scores[0])


def test_per_image_fills_follow_their_images():
    x = torch.ones(2, 3, 8, 8)
    bg = torch.stack([torch.zeros(3, 8, 8), torch.full((3, 8, 8), 0.5)])
    c = dl.deletion_curve(PatchModel(), x, _square().expand(2, -1, -1, -1), 0,
                          remover=TrueBackground(bg), steps=4, batch_size=3)
    assert c.scores[0, -1].item() == pytest.approx(sig(0.0))
    assert c.scores[1, -1].item() == pytest.approx(sig(5.0))


def test_insertion_substrate_is_rises_blur():
    r = dl.resolve_remover(dl.INSERTION_BLUR)
    assert isinstance(r, dl.InsertionBlur) and (r.sigma, r.klen) == (5.0, 11)
    x = torch.zeros(1, 3, 16, 16)
    x[..., 8, 8] = 1
    filled = r(x, torch.zeros(1, 1, 16, 16))
    assert filled[0, 0, 8, 2] == 0 and filled[0, 0, 8, 3] > 0   # kernel radius 5, no wider


def test_bad_inputs_raise_clearly():
    x, sal = torch.ones(1, 3, 8, 8), _square()
    m = PatchModel()
    with pytest.raises(ValueError, match="mode must be one of deletion, insertion"):
        dl.deletion_curve(m, x, sal, 0, mode="both")
    with pytest.raises(ValueError, match="unknown remover 'grey'.*valid names"):
        dl.deletion_curve(m, x, sal, 0, remover="grey")
    with pytest.raises(ValueError, match=r"sal must have shape \(1,1,h,w\)"):
        dl.deletion_curve(m, x, torch.ones(2, 1, 8, 8), 0)
    with pytest.raises(ValueError, match="sal contains NaN"):
        dl.deletion_curve(m, x, torch.full((1, 1, 8, 8), float("nan")), 0)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        dl.deletion_curve(m, x, sal, 0, steps=0)
    with pytest.raises(ValueError, match="convention must be one of rise, sam"):
        dl.auc(torch.ones(1, 3), convention="trapz")
    with pytest.raises(TypeError, match="remover must be a remover name"):
        dl.deletion_curve(m, x, sal, 0, remover=3)


def test_curve_table_long_format_and_oracle_by_name():
    x = torch.ones(2, 3, 8, 8)
    bg = torch.zeros(2, 3, 8, 8)
    maps = {"square": _square().expand(2, -1, -1, -1), "reverse": -_square().expand(2, -1, -1, -1)}
    table, curves = dl.curve_table(PatchModel(), x, maps, 0, ["oracle"], steps=4, backgrounds=bg)
    assert list(table.columns) == ["image", "method", "remover", "metric", "value"]
    assert set(table["metric"]) == {"deletion_auc"} and len(table) == 4
    assert set(curves) == {("square", "oracle"), ("reverse", "oracle")}
    auc = table.set_index(["method", "image"])["value"]
    assert (auc["square"] < auc["reverse"]).all()
    with pytest.raises(ValueError, match="remover 'oracle' needs backgrounds="):
        dl.curve_table(PatchModel(), x, maps, 0, ["oracle"], steps=4)
