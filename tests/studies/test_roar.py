"""ROAR / KAR (kit.studies.roar): exact fractions, complements, seeded random baseline, gray fill,
deterministic retraining, the tables, the cache and bad inputs. Tiny sizes only."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from kit import world
from kit.masks import top_count
from kit.studies import roar
from kit.train import train_classifier


def top_mask(sal: torch.Tensor, fraction: float) -> torch.Tensor:
    """The pixels ROAR removes (= the ones KAR keeps)."""
    return roar.keep_mask(sal, fraction, "kar")


@pytest.fixture(scope="module")
def clf():
    from kit.models import load_classifier

    return load_classifier("world")


@pytest.fixture(scope="module")
def data():
    return world.sample(12, seed=3, split="train")


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0])
def test_top_mask_has_exact_fraction_even_with_ties(fraction):
    g = torch.Generator().manual_seed(0)
    smooth = torch.rand(2, 1, 16, 16, generator=g)
    blocky = torch.rand(2, 1, 4, 4, generator=g).repeat_interleave(4, 2).repeat_interleave(4, 3)
    const = torch.ones(2, 1, 16, 16)
    k = top_count(fraction, 256)  # floor(f * 256 + 1/2), kit's one rounding rule
    for sal in (smooth, blocky, const):
        top = top_mask(sal, fraction)
        assert top.shape == sal.shape
        assert set(top.unique().tolist()) <= {0.0, 1.0}
        assert top.flatten(1).sum(1).tolist() == [k, k]


def test_ties_are_taken_in_raster_order():
    sal = torch.ones(1, 1, 8, 8)  # all tied: the first 16 pixels in raster order = top 2 rows
    top = top_mask(sal, 0.25)
    assert top[0, 0, :2].eq(1).all() and top[0, 0, 2:].eq(0).all()


def test_ranking_is_by_magnitude_rescaled_plus_eps():
    sal = torch.tensor([[-3.0, 1.0], [0.0, 2.0]]).view(1, 1, 2, 2)
    s = roar.ranking_scores(sal)
    expected = torch.tensor([[9.0, 1.0], [0.0, 4.0]]) / 9 + roar.EPS
    torch.testing.assert_close(s[0, 0], expected)
    # the most negative value ranks first: magnitude, not sign
    assert top_mask(sal, 0.25)[0, 0, 0, 0] == 1
    assert torch.allclose(roar.ranking_scores(torch.zeros(1, 1, 2, 2)), torch.full((1, 1, 2, 2),
                                                                                  roar.EPS))


def test_roar_and_kar_are_complements():
    sal = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    for f in roar.FRACTIONS:
        r, k = roar.keep_mask(sal, f, "roar"), roar.keep_mask(sal, f, "kar")
        torch.testing.assert_close(r + k, torch.ones_like(r))
        # ROAR removes the highest-magnitude pixels: the kept ones never outrank a removed one
        s = roar.ranking_scores(sal)
        for i in range(3):
            assert s[i][r[i] == 1].max() <= s[i][r[i] == 0].min()


def test_random_baseline_is_seeded(clf, data):
    x = data.images[:4]
    a = roar.estimator_maps(["random"], clf, x, seed=0, cache=False)["random"]
    b = roar.estimator_maps(["random"], clf, x, seed=0, cache=False)["random"]
    c = roar.estimator_maps(["random"], clf, x, seed=1, cache=False)["random"]
    assert a.shape == (4, 1, 64, 64)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(top_mask(a, 0.5), top_mask(c, 0.5))


def test_maps_are_pixel_level(clf, data):
    maps = roar.estimator_maps(["sobel", "Saliency", "SP"], clf, data.images[:2], cache=False,
                               overrides={"SP": {"stride": 8}})
    for m in maps.values():
        assert m.shape == (2, 1, 64, 64) and torch.isfinite(m).all()


def test_gray_fill_is_the_per_channel_mean(clf, data):
    x = data.images[:3]
    sal = torch.rand(3, 1, 64, 64, generator=torch.Generator().manual_seed(2))
    keep = roar.keep_mask(sal, 0.5, "roar")
    out = roar.modify(x, keep, "gray", model=clf)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    mean = torch.tensor(clf.mean).mul(255).round().to(torch.uint8)
    removed = (keep == 0).expand_as(x)
    filled = out.permute(0, 2, 3, 1)[removed.permute(0, 2, 3, 1)[..., 0]]
    assert (filled == mean).all()
    kept = (x * 255).round().to(torch.uint8)
    assert torch.equal(out[~removed], kept[~removed])


def test_retraining_is_deterministic_and_leaves_global_rng(data):
    x, y = data.images, data.labels
    state = torch.get_rng_state()
    a = train_classifier(x, y, seed=5, epochs=1, width=4, batch_size=4)
    assert torch.equal(torch.get_rng_state(), state)
    b = train_classifier(x, y, seed=5, epochs=1, width=4, batch_size=4)
    c = train_classifier(x, y, seed=6, epochs=1, width=4, batch_size=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    acc = roar.accuracy(a, x, y)
    assert 0.0 <= acc <= 1.0 and acc == roar.accuracy(b, x, y)


def test_run_roar_tables_and_cache(clf, data, tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_CACHE", str(tmp_path))
    tr, te = data[:8], data[8:]
    kw = dict(estimators=["random", "sobel"], fractions=[0.5], fills=["gray"], seeds=[0, 1],
              train_options=dict(epochs=1, width=4, batch_size=4))
    table = roar.run_roar(clf, tr.images, tr.labels, te.images, te.labels, **kw)
    assert list(table.columns) == ["estimator", "mode", "fill", "fraction", "seed", "accuracy",
                                   "seconds"]
    assert len(table) == 2 * (1 + 2 * 2 * 1 * 1)
    assert table["accuracy"].between(0, 1).all()
    assert any((tmp_path / "roar" / "runs").glob("*.pt"))
    again = roar.run_roar(clf, tr.images, tr.labels, te.images, te.labels, **kw)
    pd.testing.assert_frame_equal(table, again)  # served from the cache, same numbers
    summary = roar.summarize(table)
    assert set(summary["n"]) == {2}
    assert (summary["ci_low"] <= summary["mean"]).all() and (summary["mean"] <= summary["ci_high"]).all()
    ranks = roar.ranking(table)
    assert len(ranks) == 4 and set(ranks["rank"]) <= {1, 2}


def _fake_table(acc: dict) -> pd.DataFrame:
    rows = []
    for (est, mode, fill), values in acc.items():
        for seed, a in enumerate(values):
            for f in (0.1, 0.5):
                rows.append(dict(estimator=est, mode=mode, fill=fill, fraction=f, seed=seed,
                                 accuracy=a))
    return pd.DataFrame(rows)


def test_ranking_directions_and_agreement():
    table = _fake_table({
        ("random", "roar", "gray"): [0.80, 0.82, 0.81],
        ("good", "roar", "gray"): [0.40, 0.42, 0.41],     # far lower under ROAR: better
        ("bad", "roar", "gray"): [0.90, 0.91, 0.92],
        ("random", "roar", "inpaint"): [0.80, 0.82, 0.81],
        ("good", "roar", "inpaint"): [0.95, 0.96, 0.97],   # the fill flips the order
        ("bad", "roar", "inpaint"): [0.50, 0.52, 0.51],
        ("random", "kar", "gray"): [0.30, 0.31, 0.32],
        ("good", "kar", "gray"): [0.70, 0.71, 0.72],      # far higher under KAR: better
        ("bad", "kar", "gray"): [0.30, 0.33, 0.29],
    })
    ranks = roar.ranking(table).set_index(["mode", "fill", "estimator"])
    assert ranks.loc[("roar", "gray", "good"), "rank"] == 1
    assert ranks.loc[("roar", "gray", "good"), "beats_random"]
    assert not ranks.loc[("roar", "gray", "bad"), "beats_random"]
    assert ranks.loc[("kar", "gray", "good"), "rank"] == 1
    assert ranks.loc[("kar", "gray", "good"), "beats_random"]
    assert not ranks.loc[("kar", "gray", "bad"), "beats_random"]
    agree = roar.rank_agreement(roar.ranking(table)).set_index("mode")
    assert agree.loc["roar", "spearman"] == pytest.approx(-1.0)  # order reversed
    assert not agree.loc["roar", "same_best"]
    assert agree.loc["roar", "best_a"] == "good" and agree.loc["roar", "best_b"] == "bad"
    assert "kar" not in agree.index  # KAR has no inpaint rows here


def test_plot_curves_draws_every_panel():
    import matplotlib.pyplot as plt

    from kit.viz.roar import plot_curves

    table = _fake_table({("random", m, f): [0.5, 0.6] for m in roar.MODES
                         for f in ("gray", "inpaint")})
    table = pd.concat([table, pd.DataFrame([dict(estimator="none", mode="none", fill="none",
                                                 fraction=0.0, seed=0, accuracy=0.9)])])
    fig = plot_curves(roar.summarize(table))
    assert len(fig.axes) == 4
    plt.close(fig)


@pytest.mark.parametrize(("call", "match"), [
    (lambda: top_mask(torch.ones(1, 1, 4, 4), 1.5), r"fraction must be a number in \[0, 1\]"),
    (lambda: top_mask(torch.ones(1, 4, 4), 0.5), r"sal must have shape \(N,1,h,w\)"),
    (lambda: top_mask(torch.full((1, 1, 2, 2), float("nan")), 0.5), "NaN"),
    (lambda: roar.keep_mask(torch.ones(1, 1, 4, 4), 0.5, "remove"),
     "mode: 'remove'; valid names: roar, kar"),
    (lambda: train_classifier(torch.rand(4, 3, 8, 8), torch.zeros(3, dtype=torch.long)),
     r"labels must be an integer tensor of shape \(4,\)"),
    (lambda: train_classifier(torch.rand(4, 3, 8, 8), torch.zeros(4, dtype=torch.long), epochs=0),
     "epochs must be an integer >= 1"),
    (lambda: roar.summarize(pd.DataFrame({"a": [1]})), "run_roar DataFrame"),
])
def test_bad_inputs(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_bad_names_list_valid_choices(clf, data):
    x, y = data.images[:4], data.labels[:4]
    with pytest.raises(ValueError, match="valid names: SP, .*, sobel"):
        roar.estimator_maps(["nope"], clf, x)
    with pytest.raises(ValueError, match=r"train_options: unknown key\(s\) \['lr2'\]"):
        roar.run_roar(clf, x, y, x, y, estimators=["random"], train_options={"lr2": 1})
    with pytest.raises(ValueError, match="profile: unknown profile 'nope'; valid names"):
        roar.estimator_maps(["random"], clf, x, profile="nope")
    with pytest.raises(ValueError, match="valid names"):
        roar.run_roar(clf, x, y, x, y, estimators=["random"], fills=["paint"])
    with pytest.raises(ValueError, match="seeds must be"):
        roar.run_roar(clf, x, y, x, y, estimators=["random"], seeds=[])
    with pytest.raises(ValueError, match="keep must have shape"):
        roar.modify(x, torch.ones(4, 1, 8, 8), "gray")


# ----------------------------------------------------------------------------------------------
# the retraining recipe (TRAIN_DEFAULTS: 32x32 area-downsampled inputs, width 8)
# ----------------------------------------------------------------------------------------------


def test_area_resize_wraps_a_low_resolution_network():
    from kit.nets import AreaResize, WorldCNN

    torch.manual_seed(0)
    net = WorldCNN(8, 4).eval()
    z = torch.randn(3, 3, 64, 64)
    wrapped = AreaResize(net, 32)
    small = torch.nn.functional.avg_pool2d(z, 2)  # area resizing by 2 = 2x2 averages
    torch.testing.assert_close(wrapped(z), net(small))
    torch.testing.assert_close(wrapped.features(z), net.features(small))
    torch.testing.assert_close(wrapped(small), net(small))  # already at its size: unchanged


def test_retrain_takes_native_images_and_is_deterministic(data):
    a = roar.retrain(data.images, data.labels, seed=2, epochs=1, width=4, batch_size=4)
    b = roar.retrain((data.images * 255).round().byte(), data.labels, seed=2, epochs=1, width=4,
                     batch_size=4)
    assert a(data.images).shape == (12, 8)  # 64x64 in, downsampled inside
    assert a.net.size == roar.TRAIN_DEFAULTS["resolution"]
    sa, sb = a.state_dict(), b.state_dict()
    # float and 8-bit input differ by at most the quantisation: same recipe, near-equal weights
    assert sa.keys() == sb.keys()
    native = roar.retrain(data.images, data.labels, seed=2, epochs=1, width=4, batch_size=4,
                          resolution=None)
    assert not hasattr(native.net, "size")  # resolution None: trained at 64x64, no wrapper


def test_recipe_learns_on_a_small_fresh_sample():
    # fresh images (seeds used in no document): 2,000 training images, 10 epochs (about 10 s),
    # the recipe's network and resolution. Chance is 1/8 (0.37 measured on these seeds); the full
    # recipe (10,000 images x 15 epochs, benchmarks/roar_recipe.py) reaches about 0.9.
    tr = world.sample(2000, seed=911, split="train")
    te = world.sample(400, seed=912, split="test")
    net = roar.retrain(tr.images, tr.labels, seed=0, epochs=10)
    assert roar.accuracy(net, te.images, te.labels) >= 0.25


def test_reference_model_is_cached(data, tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_CACHE", str(tmp_path))
    kw = dict(seed=1, epochs=1, width=4, batch_size=4)
    a = roar.reference_model(data.images, data.labels, **kw)
    assert len(list((tmp_path / "roar" / "models").glob("*.pt"))) == 1
    b = roar.reference_model(data.images, data.labels, **kw)  # read back from the cache
    torch.testing.assert_close(a(data.images), b(data.images), rtol=0, atol=0)
    # the reference row of run_roar trains the same network (same data, seed and recipe)
    fresh = roar.retrain((data.images * 255).round().byte(), data.labels, **kw)
    torch.testing.assert_close(a(data.images), fresh(data.images), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"train_options: unknown key\(s\) \['depth'\]"):
        roar.reference_model(data.images, data.labels, depth=3)


def test_an_interrupted_run_resumes_retraining_by_retraining(clf, data, tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_CACHE", str(tmp_path))
    tr, te = data[:8], data[8:]
    kw = dict(estimators=["random", "sobel"], fractions=[0.5], modes=["roar"], fills=["gray"],
              seeds=[0], train_options=dict(epochs=1, width=4, batch_size=4))
    calls = []
    real = roar.retrain

    def dies_on_the_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the run is stopped half-way
        return real(*args, **kwargs)

    monkeypatch.setattr(roar, "retrain", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        roar.run_roar(clf, tr.images, tr.labels, te.images, te.labels, **kw)
    assert len(calls) == 3  # reference, random done and cached; sobel interrupted
    calls.clear()
    monkeypatch.setattr(roar, "retrain", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    table = roar.run_roar(clf, tr.images, tr.labels, te.images, te.labels, **kw)
    assert len(calls) == 1 and len(table) == 3  # only the interrupted retraining runs again
