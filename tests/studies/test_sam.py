"""SAM's study (methods.md §4.5): sweeps, variant tables, the other-images floor, NaN counting,
figures, bad inputs."""

import inspect
import math

import numpy as np
import pandas as pd
import pytest
import torch

from kit.maps import to_pixels
from kit.masks import upsample
from kit.metrics import sensitivity as sens
from kit.studies import sam
from kit.viz import sam as sam_viz


def _smooth(n=2, size=32):
    """Non-constant smooth maps: a different tilted ramp per image."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    return torch.stack([(xx * (i + 1) + yy * 2) ** 2 for i in range(n)]).unsqueeze(1)


def _variants():
    d = _smooth(n=3, size=16)
    return [sam.Variant(None, None, d, {"mode": "bilinear"}),
            sam.Variant("seed", 1, d, {"mode": "bilinear"}),          # identical to default
            sam.Variant("seed", 2, -d, {"mode": "bilinear"}),         # reversed ranks
            sam.Variant("spread", 0.2, d * 2, {"mode": "bilinear"})]


# --------------------------------------------------------------------------- the floor


def _coarse(n, seed, grid=4):
    """Smooth unrelated maps: i.i.d. ``grid x grid`` values (upsampled bilinearly later)."""
    return torch.rand((n, 1, grid, grid), generator=torch.Generator().manual_seed(seed))


def test_floor_compares_each_image_with_another_images_map():
    vs = _variants()
    t = sam.variant_table(vs, "X", 16, rescale=True, data_range=2, cell=4, other_images=True)
    pix = [v.pixels(16, rescale=True) for v in vs]
    got = t[(t.variant == "spread=0.2") & (t.metric == "spearman")]["value"].to_numpy()
    # image n's default map against image n-1's variant map (cyclically)
    want = sens.spearman(pix[0], pix[3][[2, 0, 1]])
    np.testing.assert_allclose(got, want)
    assert not np.allclose(got, 1.0)                    # not the image's own (identical) map
    with pytest.raises(ValueError, match="at least 2 images"):
        sam.variant_table([sam.Variant(None, None, v.sal[:1]) for v in vs[:2]], "X", 16,
                          rescale=True, data_range=2, cell=4, other_images=True)


def test_unrelated_variants_score_at_the_floor_and_identical_ones_at_one():
    from kit import report

    n, geo = 60, {"mode": "bilinear"}
    d = _coarse(n, 0)
    unrelated = [sam.Variant(None, None, d, geo), sam.Variant("seed", 1, _coarse(n, 1), geo),
                 sam.Variant("seed", 2, _coarse(n, 2), geo)]
    same = [sam.Variant(None, None, d, geo), sam.Variant("seed", 1, d.clone(), geo),
            sam.Variant("seed", 2, d * 10, geo)]       # a x10 copy: amplitude-free, scores 1
    t = sam.compare({"RISE": unrelated, "MP": same}, 16, floor=True, cell=4)
    assert list(dict.fromkeys(t["method"])) == ["RISE", "MP", "other images (RISE)",
                                                "other images (MP)"]
    s = report.summarize(sam.per_image(t), sens.HIGHER_IS_BETTER, seed=0)
    side = sam.beside_floor(s)
    assert list(side["metric"][:3]) == list(sens.METRICS)   # Spearman (the headline) first
    r = side[side.method == "RISE"].set_index("metric")
    # maps of different images ARE unrelated maps: the method sits at its floor
    assert (r["mean"] - r["floor_mean"]).abs().max() < 0.1
    assert not r["above_floor"].any()
    m = side[side.method == "MP"].set_index("metric")
    np.testing.assert_allclose(m["mean"], 1.0, atol=1e-5)  # float32 rounding of ties
    assert m["above_floor"].all() and (m["floor_mean"] < 0.9).all()
    assert sam.above_floor(s).loc["MP"].all()


# --------------------------------------------------------------------------- geometry and sweeps


def test_variant_pixels_use_kit_maps_geometry():
    g = torch.rand((2, 1, 29, 29), generator=torch.Generator().manual_seed(0))
    geo = {"mode": "coverage", "window": 8, "stride": 2}
    v = sam.Variant(None, None, g, geo)
    assert torch.equal(v.pixels(64, rescale=False), to_pixels(g, 64, geo))
    assert torch.equal(to_pixels(g, 64, geo), upsample(g, 64, mode="coverage", window=8, stride=2))
    m = torch.rand((2, 1, 8, 8), generator=torch.Generator().manual_seed(1))
    assert torch.equal(sam.Variant(None, None, m, {"mode": "bilinear"}).pixels(64, rescale=False),
                       upsample(m, 64))
    p = torch.rand((2, 1, 64, 64), generator=torch.Generator().manual_seed(2))
    assert torch.equal(sam.Variant(None, None, p, {"mode": "bilinear"}).pixels(64, rescale=False),
                       p)


def test_sweeps_table_covers_the_pairs_with_defaults_among_values():
    need = {"SP", "SP-G", "LIME", "LIME-G", "MP", "MP-G", "MP2", "MP2-G", "FIDO-CA-SDR",
            "FIDO-CA-SSR", "RISE", "SmoothGrad"}
    assert need <= set(sam.SWEEPS)
    for name, params in sam.SWEEPS.items():
        assert sam.SWEEPS[name] is params
        for sweep in params.values():
            assert sweep.default in sweep.values and sweep.reference
    assert sam.SWEEPS["SP"]["window"].values == (5, 8, 11)
    assert sam.SWEEPS["LIME-G"]["n_samples"].values == (500, 1000)
    assert sam.SWEEPS["SmoothGrad"]["spread"].values == (0.1, 0.15, 0.2)
    assert sam.SWEEPS["MP-G"]["seed"].values == (0, 1, 2, 3, 4)


def test_every_rung_of_a_ladder_shares_its_methods_sweep():
    from kit.attributors.methods import ladder

    for base, rungs in ladder().items():
        swept = [n for n in rungs.values() if n in sam.SWEEPS]
        if swept:  # a method with a sweep: all its rungs (X-R and X-O too), the same one
            assert swept == list(rungs.values()), (base, rungs)
            assert all(sam.SWEEPS[n] == sam.SWEEPS[swept[0]] for n in swept), base
    assert {"SP-R", "SP-O", "MP2-O", "FIDO-R-SSR", "RISE-G"} <= set(sam.SWEEPS)


def test_an_oracle_rung_sweeps_with_the_batchs_backgrounds(tmp_path, monkeypatch):
    from kit import models, world

    monkeypatch.setenv("KIT_CACHE", str(tmp_path))
    b = world.sample(2, seed=0, split="test")
    clf = models.load_classifier("world")
    with pytest.raises(ValueError, match="backgrounds"):
        sam.sweep_maps("SP-O", clf, b.images, b.labels, sweep={"window": [12]},
                       base={"stride": 8})
    vs = sam.sweep_maps("SP-O", clf, b.images, b.labels, sweep={"window": [12]},
                        base={"stride": 8}, backgrounds=b.backgrounds)
    assert [v.label for v in vs] == ["default", "window=12"]
    # the true background equals the image off the object: patches there change nothing
    from kit.metrics.agreement import touching

    for v in vs:
        near = touching(b.masks, v.sal.shape[-2:], v.upsample)
        sal = v.sal[:, 0]
        assert sal[~near].abs().max() < 1e-6 and sal[near].abs().max() > 0


def test_declared_sweep_defaults_are_the_attributors_own():
    # SWEEPS states each hyperparameter's default as data (sweep_maps skips the default value
    # without reading signatures); this keeps that data honest against the attributors.
    from kit.attributors import METHODS, get_attributor
    from kit.defaults import resolve

    for name, params in sam.SWEEPS.items():
        accepted = inspect.signature(get_attributor(METHODS[name].attributor)).parameters
        for param, sweep in params.items():
            if param == "seed":
                continue
            assert param in accepted, (name, param)
            own = accepted[param].default
            if sweep.resolved is None:
                assert own == sweep.default, (name, param)
            else:
                assert own is None and resolve(sweep.resolved, 64) == sweep.default, (name, param)


@pytest.fixture(scope="module")
def world2():
    from kit import models, world

    b = world.sample(2, seed=0, split="test")
    return models.load_classifier("world"), b.images, b.labels


def test_sweep_maps_sp_windows_use_their_own_coverage_geometry(world2, tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_CACHE", str(tmp_path))
    clf, x, y = world2
    vs = sam.sweep_maps("SP", clf, x, y, sweep={"window": [8, 12]}, base={"stride": 8})
    assert [v.label for v in vs] == ["default", "window=12"]   # 8 is the default: skipped
    assert vs[0].upsample == {"mode": "coverage", "window": 8, "stride": 8}
    assert vs[1].upsample == {"mode": "coverage", "window": 12, "stride": 8}
    assert tuple(vs[0].sal.shape) == (2, 1, 8, 8) and tuple(vs[1].sal.shape) == (2, 1, 7, 7)
    t = sam.variant_table(vs, "SP", 64, rescale=False, data_range=2)
    assert np.isfinite(t["value"]).all()


def test_run_sweep_is_deterministic_and_has_floor_rows(world2, tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_CACHE", str(tmp_path))
    clf, x, y = world2
    kw = {"sweep": {"seed": [0, 1], "spread": [0.15, 0.3]}, "base": {"n_samples": 2},
          "floor": True}
    a = sam.run_sweep("SmoothGrad", clf, x, y, cache=False, **kw)
    b = sam.run_sweep("SmoothGrad", clf, x, y, cache=True, **kw)
    c = sam.run_sweep("SmoothGrad", clf, x, y, cache=True, **kw)  # served from the cache
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(b, c)
    assert list(a.columns) == ["image", "method", "param", "metric", "value"]
    assert set(a["method"]) == {"SmoothGrad", "other images (SmoothGrad)"}
    assert set(a["param"]) == {"seed", "spread"} and set(a["metric"]) == set(sens.METRICS)
    assert len(a) == 2 * 2 * 2 * 3                      # images x methods x params x metrics
    assert a["value"].between(-1, 1).all()
    # more noise samples average the noise out: maps from two seeds agree more (the metric
    # responds to what it should)
    more = sam.run_sweep("SmoothGrad", clf, x, y, cache=False, sweep={"seed": [1]},
                         base={"n_samples": 32})
    few = a[(a.method == "SmoothGrad") & (a.param == "seed")]
    for m in sens.METRICS:
        assert more[more.metric == m]["value"].mean() > few[few.metric == m]["value"].mean()


# --------------------------------------------------------------------------- tables


def test_variant_and_per_image_tables_by_hand():
    t = sam.variant_table(_variants(), "X", 16, rescale=True, data_range=2, cell=4)
    assert list(t.columns) == ["image", "method", "param", "variant", "metric", "value"]
    assert set(t["variant"]) == {"seed=1", "seed=2", "spread=0.2"}
    sp = t[(t.metric == "spearman")].set_index(["image", "variant"])["value"]
    assert sp[0, "seed=1"] == pytest.approx(1) and sp[0, "seed=2"] == pytest.approx(-1)
    assert sp[2, "spread=0.2"] == pytest.approx(1)     # rescaling removes the factor 2
    pi = sam.per_image(t)
    assert list(pi.columns) == ["image", "method", "param", "metric", "value"]
    v = pi.set_index(["image", "param", "metric"])["value"]
    assert v[1, "seed", "spearman"] == pytest.approx(0.0)       # mean of +1 and -1
    assert v[1, "spread", "ssim"] == pytest.approx(1.0)
    agg = sam.sam_aggregate(t).set_index(["param", "metric"])
    assert agg.loc[("seed", "spearman"), "mean"] == pytest.approx(0.0)
    assert agg.loc[("seed", "spearman"), "std"] == pytest.approx(1.0)  # sqrt(var{+1, -1})
    assert agg.loc[("seed", "spearman"), "n"] == 3


def test_all_pairs_mode_compares_every_pair_within_a_parameter():
    t = sam.variant_table(_variants(), "X", 16, rescale=True, data_range=2, cell=4,
                          against="all", images=[10, 11, 12])
    assert set(t[t.param == "seed"]["variant"]) == {
        "default|seed=1", "default|seed=2", "seed=1|seed=2"}
    assert set(t[t.param == "spread"]["variant"]) == {"default|spread=0.2"}
    assert set(t["image"]) == {10, 11, 12}


def test_nan_pair_makes_the_image_nan_and_it_is_counted():
    from kit import report
    from kit.metrics.stats import with_nan_counts

    vs = _variants()
    const = vs[0].sal.clone()
    const[0] = 0.0                                     # image 0's default map is all zero
    vs[0] = sam.Variant(None, None, const, {"mode": "bilinear"})
    pi = sam.per_image(sam.variant_table(vs, "X", 16, rescale=True, data_range=2, cell=4))
    sp = pi[(pi.metric == "spearman") & (pi.param == "seed")].set_index("image")["value"]
    assert math.isnan(sp[0]) and np.isfinite(sp[1])
    s = with_nan_counts(report.summarize(pi, sens.HIGHER_IS_BETTER, by=("method", "param")),
                        pi, by=("method", "param"))
    row = s[(s.param == "seed") & (s.metric == "spearman")].iloc[0]
    assert row["n"] == 2 and row["n_nan"] == 1 and bool(row["higher_is_better"])
    assert s[s.metric == "ssim"]["n_nan"].eq(0).all()   # SSIM is defined on constant maps
    agg = sam.sam_aggregate(sam.variant_table(vs, "X", 16, rescale=True, data_range=2, cell=4))
    row = agg[(agg.param == "seed") & (agg.metric == "spearman")].iloc[0]
    assert (row["n"], row["n_nan"]) == (2, 1)


def test_compare_applies_each_methods_scaling_and_pool_params_averages():
    vs = _variants()
    t = sam.compare({"SP": vs, "LIME": vs}, 16, floor=True, cell=4)
    assert list(dict.fromkeys(t["method"])) == ["SP", "LIME", "other images (SP)",
                                                "other images (LIME)"]
    # every map is rescaled by its max|H|, SP's too: the doubled map (spread=0.2) is identical
    ss = t[(t.metric == "ssim") & (t.variant == "spread=0.2")].groupby("method")["value"].mean()
    assert ss["LIME"] == pytest.approx(1.0) and ss["SP"] == pytest.approx(1.0)
    pi = sam.per_image(t)
    pooled = sam.pool_params(pi)
    assert set(pooled["param"]) == {"all"}
    one = pi[(pi.method == "LIME") & (pi.image == 0) & (pi.metric == "spearman")]["value"].mean()
    got = pooled[(pooled.method == "LIME") & (pooled.image == 0) & (pooled.metric == "spearman")]
    assert got["value"].item() == pytest.approx(one)


def test_applicable_picks_each_methods_hyperparameters():
    sweep = {"seed": [0, 1], "window": [5, 8], "spread": [0.1, 0.15]}
    assert sam.applicable("SP", sweep) == {"window": [5, 8]}
    assert sam.applicable("SmoothGrad", sweep) == {"seed": [0, 1], "spread": [0.1, 0.15]}
    assert sam.applicable("MP-G") == {"seed": [0, 1, 2, 3, 4]}
    with pytest.raises(ValueError, match="valid names"):
        sam.applicable("nope", sweep)
    with pytest.raises(ValueError, match="none of 'LIME'"):
        sam.applicable("LIME", {"window": [5]})


def _summary_with_floor():
    rows = []
    for method, lo, hi in (("A", 0.6, 0.8), ("other images (A)", 0.1, 0.2),
                           ("B", 0.1, 0.3), ("other images (B)", 0.2, 0.4)):
        for metric in sens.METRICS:
            rows.append({"method": method, "param": "all", "metric": metric,
                         "mean": (lo + hi) / 2, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def test_above_floor_compares_disjoint_cis():
    s = _summary_with_floor()
    out = sam.above_floor(s)
    assert list(out.index) == ["A", "B"] and out.index.name == "above floor"
    assert list(out.columns) == list(sens.METRICS)
    assert out.loc["A"].all() and not out.loc["B"].any()
    assert list(sam.above_floor(s, ["B"]).index) == ["B"]
    with pytest.raises(ValueError, match="their floor"):
        sam.above_floor(s, ["C"])
    side = sam.beside_floor(s, ["A"])
    assert list(side.columns) == ["method", "metric", "mean", "ci_low", "ci_high", "floor_mean",
                                  "floor_ci_low", "floor_ci_high", "above_floor"]
    assert side["floor_mean"].tolist() == pytest.approx([0.15] * len(sens.METRICS))
    with pytest.raises(ValueError, match="one row per"):
        sam.above_floor(pd.concat([s, s.assign(param="seed")]))


# --------------------------------------------------------------------------- bad inputs


def test_bad_inputs_raise_clear_errors(world2):
    clf, x, y = world2
    with pytest.raises(ValueError, match="valid names"):
        sam.sweep_maps("SP-X", clf, x, y)
    with pytest.raises(ValueError, match="no hyperparameter 'radius'.*valid: .*window"):
        sam.sweep_maps("SP", clf, x, y, sweep={"radius": [1]})
    with pytest.raises(ValueError, match="no hyperparameter 'seed'"):
        sam.sweep_maps("SP", clf, x, y, sweep={"seed": [0, 1]})
    with pytest.raises(ValueError, match="non-empty list"):
        sam.sweep_maps("MP", clf, x, y, sweep={"seed": []})
    with pytest.raises(ValueError, match="methods with one"):
        sam.sweep_maps("GradCAM", clf, x, y)
    with pytest.raises(ValueError, match="against"):
        sam.variant_table(_variants(), "X", 16, rescale=True, data_range=2, against="pairs")
    with pytest.raises(ValueError, match="default Variant"):
        sam.variant_table(_variants()[1:], "X", 16, rescale=True, data_range=2)


# --------------------------------------------------------------------------- figures


def test_figures_draw():
    import matplotlib.pyplot as plt

    from kit import report

    pi = sam.per_image(sam.variant_table(_variants(), "X", 16, rescale=True, data_range=2,
                                         cell=4))
    floor = sam.per_image(sam.variant_table(_variants(), sam.floor_label("X"), 16, rescale=True,
                                            data_range=2, cell=4, other_images=True))
    s = report.summarize(pd.concat([pi, floor]), sens.HIGHER_IS_BETTER)
    fig = sam_viz.plot_bars(s, ["X"])
    assert len(fig.axes) == 3
    fig2 = sam_viz.plot_sweep({"X": _variants()}, 0, 16)
    assert fig2.axes[0].get_title() == "default"
    plt.close(fig)
    plt.close(fig2)


def test_bar_colours_come_from_the_method_registry():
    from matplotlib.colors import to_rgba

    assert [sam_viz.generative(m) for m in ("SP", "SP-G", "FIDO-CA-SDR", "SmoothGrad", "X")] \
        == [False, True, True, False, False]
    rows = [{"method": m, "metric": k, "mean": 0.5, "ci_low": 0.4, "ci_high": 0.6}
            for m in ("LIME", "LIME-G") for k in sens.METRICS]
    fig = sam_viz.plot_bars(pd.DataFrame(rows), ["LIME", "LIME-G"])
    bars = fig.axes[0].patches[:2]
    assert [b.get_facecolor() for b in bars] == [to_rgba(sam_viz.X_COLOR), to_rgba(sam_viz.XG_COLOR)]
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_sweep_on_a_dask_client_equals_the_serial_sweep(world2):
    distributed = pytest.importorskip("distributed")
    clf, x, y = world2
    kw = {"sweep": {"seed": [0, 1], "spread": [0.3]}, "base": {"n_samples": 2}, "cache": False}
    serial = sam.sweep_maps("SmoothGrad", clf, x, y, **kw)
    # threads in this process: the same map_tasks path as a cluster, without worker start-up
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1,
                            dashboard_address=":0") as client:
        dask = sam.sweep_maps("SmoothGrad", clf, x, y, client=client, **kw)
    assert [v.label for v in dask] == [v.label for v in serial] == ["default", "seed=1",
                                                                    "spread=0.3"]
    for a, b in zip(serial, dask, strict=True):
        assert torch.equal(a.sal, b.sal) and a.upsample == b.upsample and a.config == b.config
