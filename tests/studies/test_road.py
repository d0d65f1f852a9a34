"""ROAD (kit.studies.road): MoRF/LeRF masks, their semantics on a toy model that reads one pixel,
the tables (summary, ranking with beats_random, agreement with ROAR), the cache and bad input.
Tiny images and a parameter-free model only."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from kit.masks import top_count
from kit.studies import road, roar

H = W = 8
PIXEL = (3, 5)  # the one pixel the toy model reads


class PixelModel(nn.Module):
    """Class 0 when the mean colour of PIXEL is above 0.5, else class 1 (logits +-20 (v - 0.5))."""

    mean = (0.5, 0.5, 0.5)  # the gray fill's colour: exactly undecided

    def forward(self, x):
        z = 20 * (x[:, :, PIXEL[0], PIXEL[1]].mean(1) - 0.5)
        return torch.stack([z, -z], 1)


@pytest.fixture(scope="module")
def toy():
    n = 40
    g = torch.Generator().manual_seed(0)
    x = 0.5 + 0.02 * torch.randn(n, 3, H, W, generator=g)
    y = torch.arange(n) % 2
    x[:, :, PIXEL[0], PIXEL[1]] = torch.where(y == 0, 0.9, 0.1).view(n, 1)
    x = x.clamp(0, 1)
    onehot = torch.zeros(n, 1, H, W)
    onehot[:, :, PIXEL[0], PIXEL[1]] = 1.0  # ranks the read pixel first
    anti = torch.ones(n, 1, H, W)
    anti[:, :, PIXEL[0], PIXEL[1]] = 0.0  # ranks it last
    maps = {"Saliency": onehot, "sobel": anti, "random": torch.rand(n, 1, H, W, generator=g)}
    return PixelModel(), x, y, maps


def run(toy, **kw):
    model, x, y, maps = toy
    kw = {"estimators": list(maps), "maps": maps, "fractions": (0.1, 0.5), "cache": False, **kw}
    return road.run_road(model, x, y, **kw)


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5, 0.7, 0.9])
def test_masks_remove_exactly_k_pixels_from_either_end(fraction):
    sal = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    k = top_count(fraction, 64)
    morf, lerf = road.keep_mask(sal, fraction, "morf"), road.keep_mask(sal, fraction, "lerf")
    assert morf.shape == sal.shape and set(morf.unique().tolist()) <= {0.0, 1.0}
    assert (morf == 0).flatten(1).sum(1).tolist() == [k] * 3
    assert (lerf == 0).flatten(1).sum(1).tolist() == [k] * 3
    assert torch.equal(morf, roar.keep_mask(sal, fraction, "roar"))  # MoRF = ROAR's mask
    s = roar.ranking_scores(sal)
    for i in range(3):  # MoRF removes the highest scores, LeRF the lowest
        assert s[i][morf[i] == 0].min() >= s[i][morf[i] == 1].max()
        assert s[i][lerf[i] == 0].max() <= s[i][lerf[i] == 1].min()


def test_lerf_breaks_ties_from_the_end_of_raster_order():
    keep = road.keep_mask(torch.ones(1, 1, 4, 4), 0.25, "lerf")
    assert keep[0, 0, :3].eq(1).all() and keep[0, 0, 3].eq(0).all()


def test_morf_and_lerf_semantics_on_a_one_pixel_model(toy):
    table = run(toy, fills=("noisy_linear", "gray"))
    assert list(table.columns) == ["estimator", "order", "fill", "fraction", "image", "label",
                                   "correct", "prob"]
    s = road.summarize(table).set_index(["estimator", "order", "fill", "fraction"])
    assert s.loc[("none", "none", "none", 0.0), "accuracy"] == 1.0  # unmodified reference
    for fill in ("noisy_linear", "gray"):
        for f in (0.1, 0.5):
            acc = {e: s.loc[(e, o, fill, f), "accuracy"] for e in ("Saliency", "sobel", "random")
                   for o in ("morf",)}
            # removing the read pixel first gives the biggest MoRF drop; ranking it last none
            assert acc["Saliency"] < acc["random"] <= acc["sobel"] == 1.0
            assert s.loc[("Saliency", "lerf", fill, f), "accuracy"] == 1.0
            assert s.loc[("sobel", "lerf", fill, f), "accuracy"] < 0.8
        # gray = the model's undecided colour: class 0 (argmax of a tie) for every image
        assert s.loc[("Saliency", "morf", "gray", 0.1), "accuracy"] == 0.5
    ranks = road.ranking(table)
    best = ranks[ranks["rank"] == 1].set_index(["order", "fill"])["estimator"]
    assert (best == "Saliency").all()
    sal = ranks.set_index(["order", "fill", "estimator"]).loc[("morf", "noisy_linear",
                                                               "Saliency")]
    assert sal["beats_random"] and sal["diff_ci_high"] < 0 and sal["n"] == 40
    anti = ranks.set_index(["order", "fill", "estimator"]).loc[("lerf", "gray", "sobel")]
    assert not anti["beats_random"]
    assert ranks.loc[ranks["estimator"] == "random", "diff_vs_random"].isna().all()
    prob = road.ranking(table, metric="prob")
    assert prob["score"].between(0, 1).all()


def test_agreement_with_roar():
    road_ranks = pd.DataFrame({
        "order": ["morf"] * 3 + ["lerf"] * 3, "fill": ["noisy_linear"] * 6,
        "estimator": ["a", "b", "c"] * 2, "score": [0.1, 0.5, 0.9, 0.9, 0.5, 0.6]})
    roar_ranks = pd.DataFrame({
        "mode": ["roar"] * 4 + ["kar"] * 4, "fill": ["gray"] * 8,
        "estimator": ["a", "b", "c", "d"] * 2, "score": [0.2, 0.3, 0.4, 0.0, 0.3, 0.2, 0.1, 1]})
    ag = road.agreement_with_roar(road_ranks, roar_ranks).set_index("order")
    assert ag.loc["morf", "mode"] == "roar" and ag.loc["lerf", "mode"] == "kar"
    assert ag.loc["morf", "n_estimators"] == 3  # d only in ROAR
    assert ag.loc["morf", "spearman"] == pytest.approx(1.0) and ag.loc["morf", "same_best"]
    assert ag.loc["lerf", "spearman"] == pytest.approx(0.5)
    assert ag.loc["lerf", "best_road"] == "a" and ag.loc["lerf", "best_roar"] == "a"
    with pytest.raises(ValueError, match="roar_ranks must be a ranking table"):
        road.agreement_with_roar(road_ranks, road_ranks)


def test_cells_are_cached_and_read_back(toy, tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_CACHE", str(tmp_path))
    first = run(toy, cache=True, fractions=(0.3,))
    files = list((tmp_path / "road" / "cells").glob("noisy_linear-*.pt"))
    assert len(files) == 6  # 3 estimators x 2 orders x 1 fraction

    def boom(self, x, keep):
        raise AssertionError("the fill ran although the cell was cached")

    monkeypatch.setattr("kit.removers.NoisyLinear.fill", boom)
    again = run(toy, cache=True, fractions=(0.3,))
    pd.testing.assert_frame_equal(first, again)
    with pytest.raises(AssertionError, match="the fill ran"):  # another seed: another cell
        run(toy, cache=True, fractions=(0.3,), seed=1)


def test_seeded_and_quiet(toy, capsys):
    a = run(toy, fractions=(0.5,), estimators=["random"])
    b = run(toy, fractions=(0.5,), estimators=["random"])
    pd.testing.assert_frame_equal(a, b)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"estimators": ["Sailency"]}, "estimators: unknown estimator 'Sailency'; valid names: SP"),
    ({"fractions": (0.0,)}, r"fractions must be a number in \(0, 1\), got 0.0"),
    ({"fractions": (1.0,)}, r"fractions must be a number in \(0, 1\)"),
    ({"fractions": (1.5,)}, r"fractions must be a number in \(0, 1\)"),
    ({"fills": ("grey",)}, "fills: unknown fill 'grey'; valid names: gray, blur"),
    ({"fills": ("precomputed",)}, "fills: unknown fill 'precomputed'"),
    ({"orders": ("morf", "middle")}, "orders: unknown order 'middle'; valid names: morf, lerf"),
    ({"fills": ("oracle",)}, "needs backgrounds="),
])
def test_bad_input(toy, kwargs, match):
    with pytest.raises(ValueError, match=match):
        run(toy, **kwargs)


def test_bad_maps_and_labels(toy):
    model, x, y, maps = toy
    with pytest.raises(ValueError, match="must be at the images' resolution"):
        road.run_road(model, x, y, estimators=["random"], maps={"random": torch.rand(40, 1, 4, 4)})
    with pytest.raises(ValueError, match=r"must hold 40 maps"):
        road.run_road(model, x, y, estimators=["random"], maps={"random": torch.rand(3, 1, H, W)})
    with pytest.raises(ValueError, match=r"labels must be an integer tensor of shape \(40,\)"):
        road.run_road(model, x, y.float(), estimators=["random"], maps=maps)
    with pytest.raises(ValueError, match="table must be a run_road DataFrame"):
        road.ranking(pd.DataFrame({"a": [1]}))
    with pytest.raises(ValueError, match="order"):
        road.keep_mask(maps["random"], 0.5, "both")
