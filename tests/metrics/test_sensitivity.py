"""SAM sensitivity (methods.md §4.5): hand-computed similarities, sweeps, random floor, bad inputs."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from kit.masks import upsample
from kit.metrics import sensitivity as sens


def _maps(n=2, size=32, seed=0):
    return torch.rand((n, 1, size, size), generator=torch.Generator().manual_seed(seed))


def _smooth(n=2, size=32):
    """Non-constant smooth maps: a different tilted ramp per image."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    return torch.stack([(xx * (i + 1) + yy * 2) ** 2 for i in range(n)]).unsqueeze(1)


# --------------------------------------------------------------------------- the three metrics


def test_identical_maps_score_one_on_every_metric():
    a = _maps()
    assert np.allclose(sens.ssim(a, a, data_range=1), 1.0)
    assert np.allclose(sens.spearman(a, a), 1.0)
    assert np.allclose(sens.hog_pearson(a, a, cell=8), 1.0)


def test_negation_reverses_ranks_but_not_unsigned_hog():
    a = _maps()
    assert np.allclose(sens.spearman(a, -a), -1.0)
    # skimage's HOG bins unsigned orientations (0-180 degrees): -h has the same features as h
    assert np.allclose(sens.hog_pearson(a, -a, cell=8), 1.0)
    # SSIM = luminance x (contrast-structure): both terms flip sign for -h where the local mean
    # is not 0, so SSIM cannot see a global sign flip; it only drops below 1
    assert (sens.ssim(a, -a, data_range=2) < 0.99).all()


def test_ssim_of_two_constant_maps_is_the_luminance_term():
    # sigma terms are (0 + C2) / (0 + C2) = 1, so SSIM = (2 mu1 mu2 + C1) / (mu1^2 + mu2^2 + C1)
    a, b = torch.full((1, 1, 16, 16), 0.2), torch.full((1, 1, 16, 16), 0.6)
    for L in (1.0, 2.0):
        c1 = (0.01 * L) ** 2
        expected = (2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1)
        assert sens.ssim(a, b, data_range=L)[0] == pytest.approx(expected, rel=1e-6)  # float32 input
    assert sens.ssim(a, a, data_range=1)[0] == pytest.approx(1.0)


def test_spearman_of_one_adjacent_swap():
    a = torch.arange(25, dtype=torch.float32).reshape(1, 1, 5, 5)
    b = a.clone().flatten()
    b[[3, 4]] = b[[4, 3]]
    b = b.reshape(1, 1, 5, 5)
    n = 25
    assert sens.spearman(a, b)[0] == pytest.approx(1 - 6 * 2 / (n * (n * n - 1)))
    assert sens.spearman(a, a**3)[0] == pytest.approx(1.0)  # any monotone map: rank identity


def test_constant_map_gives_nan_correlations_without_warnings():
    a, c = _smooth(size=24), torch.full((2, 1, 24, 24), 0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's ConstantInputWarning would fail here
        assert np.isnan(sens.spearman(a, c)).all()
        assert np.isnan(sens.spearman(c, c)).all()
        assert np.isnan(sens.hog_pearson(c, a, cell=8)).all()
        assert np.isfinite(sens.ssim(a, c, data_range=1)).all()


def test_hog_cell_defaults_to_kit_defaults():
    a, b = _maps(size=64), _maps(size=64, seed=1)
    assert np.allclose(sens.hog_pearson(a, b), sens.hog_pearson(a, b, cell=8))
    assert not np.allclose(sens.hog_pearson(a, b), sens.hog_pearson(a, b, cell=16))


def test_random_floor_is_near_zero_on_large_maps():
    base = sens.Variant(None, None, torch.zeros(2, 1, 128, 128), {"mode": "bilinear"})
    other = sens.Variant("seed", 1, torch.zeros(2, 1, 128, 128), {"mode": "bilinear"})
    rand = sens.random_variants([base, other], seed=3)
    a, b = rand[0].sal, rand[1].sal
    assert a.min() >= 0 and a.max() < 1
    assert np.abs(sens.spearman(a, b)).max() < 0.05    # 1/sqrt(16384) = 0.008
    assert np.abs(sens.ssim(a, b, data_range=1)).max() < 0.05


def test_random_variants_are_deterministic_and_keep_grids():
    vs = [sens.Variant(None, None, torch.zeros(2, 1, 8, 8)),
          sens.Variant("window", 5, torch.zeros(2, 1, 15, 15), {"mode": "coverage"})]
    r1, r2 = sens.random_variants(vs, seed=0), sens.random_variants(vs, seed=0)
    r3 = sens.random_variants(vs, seed=1)
    assert all(torch.equal(x.sal, y.sal) for x, y in zip(r1, r2, strict=True))
    assert not torch.equal(r1[0].sal, r3[0].sal)
    assert [tuple(v.sal.shape) for v in r1] == [(2, 1, 8, 8), (2, 1, 15, 15)]
    assert r1[1].upsample == {"mode": "coverage"} and r1[1].label == "window=5"


# --------------------------------------------------------------------------- pre-processing


def test_prenormalise_divides_by_max_abs_and_keeps_zero_maps():
    a = torch.zeros(2, 1, 4, 4)
    a[0, 0, 0, 0], a[0, 0, 1, 1] = -4.0, 2.0
    out = sens.prenormalise(a, rescale=True)
    assert out[0, 0, 0, 0] == -1 and out[0, 0, 1, 1] == 0.5
    assert torch.equal(out[1], a[1])                    # all-zero map untouched, no NaN
    assert torch.equal(sens.prenormalise(a, rescale=False), a)


def test_to_pixels_uses_kit_upsample():
    g = _maps(size=29)
    cov = sens.to_pixels(g, 64, mode="coverage", window=8, stride=2)
    assert torch.equal(cov, upsample(g, 64, mode="coverage", window=8, stride=2))
    m = _maps(size=8)
    assert torch.equal(sens.to_pixels(m, 64), upsample(m, 64))
    p = _maps(size=64)
    assert torch.equal(sens.to_pixels(p, 64), p)


def test_scaling_follows_sam_rules():
    assert sens.scaling("SP") == (False, 2.0) and sens.scaling("SP-G") == (False, 2.0)
    assert sens.scaling("MP-G") == (False, 1.0) and sens.scaling("MP2") == (False, 1.0)
    assert sens.scaling("LIME") == (True, 2.0) and sens.scaling("FIDO-CA-SDR") == (True, 2.0)
    assert sens.scaling("SmoothGrad") == (True, 1.0) and sens.scaling("RISE") == (True, 1.0)
    with pytest.raises(ValueError, match="valid names"):
        sens.scaling("SP-X")


def test_sweeps_table_covers_the_pairs_with_defaults_among_values():
    need = {"SP", "SP-G", "LIME", "LIME-G", "MP", "MP-G", "MP2", "MP2-G", "FIDO-CA-SDR",
            "FIDO-CA-SSR", "RISE", "SmoothGrad"}
    assert need <= set(sens.SWEEPS)
    for name, params in sens.SWEEPS.items():
        assert sens.SWEEPS[name] is params
        for sweep in params.values():
            assert sweep.default in sweep.values and sweep.reference
    assert sens.SWEEPS["SP"]["window"].values == (5, 8, 11)
    assert sens.SWEEPS["LIME-G"]["n_samples"].values == (500, 1000)
    assert sens.SWEEPS["SmoothGrad"]["spread"].values == (0.1, 0.15, 0.2)
    assert sens.SWEEPS["MP-G"]["seed"].values == (0, 1, 2, 3, 4)
    assert sens.HIGHER_IS_BETTER == {"ssim": True, "hog_pearson": True, "spearman": True}


# --------------------------------------------------------------------------- tables


def _variants():
    d = _smooth(n=3, size=16)
    return [sens.Variant(None, None, d, {"mode": "bilinear"}),
            sens.Variant("seed", 1, d, {"mode": "bilinear"}),          # identical to default
            sens.Variant("seed", 2, -d, {"mode": "bilinear"}),         # reversed ranks
            sens.Variant("spread", 0.2, d * 2, {"mode": "bilinear"})]


def test_variant_and_per_image_tables_by_hand():
    t = sens.variant_table(_variants(), "X", 16, rescale=True, data_range=2, cell=4)
    assert list(t.columns) == ["image", "method", "param", "variant", "metric", "value"]
    assert set(t["variant"]) == {"seed=1", "seed=2", "spread=0.2"}
    sp = t[(t.metric == "spearman")].set_index(["image", "variant"])["value"]
    assert sp[0, "seed=1"] == pytest.approx(1) and sp[0, "seed=2"] == pytest.approx(-1)
    assert sp[2, "spread=0.2"] == pytest.approx(1)     # rescaling removes the factor 2
    pi = sens.per_image(t)
    assert list(pi.columns) == ["image", "method", "param", "metric", "value"]
    v = pi.set_index(["image", "param", "metric"])["value"]
    assert v[1, "seed", "spearman"] == pytest.approx(0.0)       # mean of +1 and -1
    assert v[1, "spread", "ssim"] == pytest.approx(1.0)
    agg = sens.sam_aggregate(t).set_index(["param", "metric"])
    assert agg.loc[("seed", "spearman"), "mean"] == pytest.approx(0.0)
    assert agg.loc[("seed", "spearman"), "std"] == pytest.approx(1.0)  # sqrt(var{+1, -1})
    assert agg.loc[("seed", "spearman"), "n"] == 3


def test_all_pairs_mode_compares_every_pair_within_a_parameter():
    t = sens.variant_table(_variants(), "X", 16, rescale=True, data_range=2, cell=4,
                           against="all", images=[10, 11, 12])
    assert set(t[t.param == "seed"]["variant"]) == {
        "default|seed=1", "default|seed=2", "seed=1|seed=2"}
    assert set(t[t.param == "spread"]["variant"]) == {"default|spread=0.2"}
    assert set(t["image"]) == {10, 11, 12}


def test_nan_pair_makes_the_image_nan_and_summarize_drops_it():
    from kit import report

    vs = _variants()
    const = vs[0].sal.clone()
    const[0] = 0.5                                     # image 0's default map is constant
    vs[0] = sens.Variant(None, None, const, {"mode": "bilinear"})
    pi = sens.per_image(sens.variant_table(vs, "X", 16, rescale=True, data_range=2, cell=4))
    sp = pi[(pi.metric == "spearman") & (pi.param == "seed")].set_index("image")["value"]
    assert math.isnan(sp[0]) and np.isfinite(sp[1])
    s = report.summarize(pi, sens.HIGHER_IS_BETTER, by=("method", "param"))
    row = s[(s.param == "seed") & (s.metric == "spearman")].iloc[0]
    assert row["n"] == 2 and bool(row["higher_is_better"])


# --------------------------------------------------------------------------- sweeps on the world


@pytest.fixture(scope="module")
def world2():
    from kit import models, world

    b = world.sample(2, seed=0, split="test")
    return models.load_classifier("world"), b.images, b.labels


def test_sweep_maps_sp_windows_use_their_own_coverage_geometry(world2, tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_CACHE", str(tmp_path))
    clf, x, y = world2
    vs = sens.sweep_maps("SP", clf, x, y, sweep={"window": [8, 12]}, base={"stride": 8})
    assert [v.label for v in vs] == ["default", "window=12"]   # 8 is the default: skipped
    assert vs[0].upsample == {"mode": "coverage", "window": 8, "stride": 8}
    assert vs[1].upsample == {"mode": "coverage", "window": 12, "stride": 8}
    assert tuple(vs[0].sal.shape) == (2, 1, 8, 8) and tuple(vs[1].sal.shape) == (2, 1, 7, 7)
    t = sens.variant_table(vs, "SP", 64, rescale=False, data_range=2)
    assert np.isfinite(t["value"]).all()


def test_run_sweep_is_deterministic_and_has_floor_rows(world2, tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_CACHE", str(tmp_path))
    clf, x, y = world2
    kw = {"sweep": {"seed": [0, 1], "spread": [0.15, 0.3]}, "base": {"n_samples": 2},
          "floor": True}
    a = sens.run_sweep("SmoothGrad", clf, x, y, cache=False, **kw)
    b = sens.run_sweep("SmoothGrad", clf, x, y, cache=True, **kw)
    c = sens.run_sweep("SmoothGrad", clf, x, y, cache=True, **kw)  # served from the cache
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(b, c)
    assert list(a.columns) == ["image", "method", "param", "metric", "value"]
    assert set(a["method"]) == {"SmoothGrad", "random (SmoothGrad)"}
    assert set(a["param"]) == {"seed", "spread"} and set(a["metric"]) == set(sens.METRICS)
    assert len(a) == 2 * 2 * 2 * 3                      # images x methods x params x metrics
    assert a["value"].between(-1, 1).all()
    # more noise samples average the noise out: maps from two seeds agree more (the metric
    # responds to what it should)
    more = sens.run_sweep("SmoothGrad", clf, x, y, cache=False, sweep={"seed": [1]},
                          base={"n_samples": 32})
    few = a[(a.method == "SmoothGrad") & (a.param == "seed")]
    for m in sens.METRICS:
        assert more[more.metric == m]["value"].mean() > few[few.metric == m]["value"].mean()


# --------------------------------------------------------------------------- bad inputs


def test_bad_inputs_raise_clear_errors(world2):
    clf, x, y = world2
    a = _maps()
    with pytest.raises(ValueError, match="same shape"):
        sens.ssim(a, _maps(size=16), data_range=1)
    with pytest.raises(TypeError, match="torch.Tensor"):
        sens.spearman(a.numpy(), a)
    with pytest.raises(ValueError, match=r"\(N,1,H,W\)"):
        sens.spearman(a[:, 0], a[:, 0])
    with pytest.raises(TypeError, match="float"):
        sens.spearman(a.long(), a.long())
    with pytest.raises(ValueError, match="data_range"):
        sens.ssim(a, a, data_range=0)
    with pytest.raises(ValueError, match="finite"):
        sens.spearman(a * float("nan"), a)
    with pytest.raises(ValueError, match="cell"):
        sens.hog_pearson(a, a, cell=16)                 # 32 px < 3 cells of 16
    with pytest.raises(ValueError, match="valid names"):
        sens.sweep_maps("SP-X", clf, x, y)
    with pytest.raises(ValueError, match="no hyperparameter 'radius'.*valid: .*window"):
        sens.sweep_maps("SP", clf, x, y, sweep={"radius": [1]})
    with pytest.raises(ValueError, match="no hyperparameter 'seed'"):
        sens.sweep_maps("SP", clf, x, y, sweep={"seed": [0, 1]})
    with pytest.raises(ValueError, match="non-empty list"):
        sens.sweep_maps("MP", clf, x, y, sweep={"seed": []})
    with pytest.raises(ValueError, match="against"):
        sens.variant_table(_variants(), "X", 16, rescale=True, data_range=2, against="pairs")
    with pytest.raises(ValueError, match="default Variant"):
        sens.variant_table(_variants()[1:], "X", 16, rescale=True, data_range=2)
    with pytest.raises(TypeError, match="rescale"):
        sens.prenormalise(a, rescale=1)


def test_figures_draw(world2):
    import matplotlib.pyplot as plt

    from kit import report

    pi = sens.per_image(sens.variant_table(_variants(), "X", 16, rescale=True, data_range=2,
                                           cell=4))
    floor = sens.per_image(sens.variant_table(sens.random_variants(_variants()), "random (X)",
                                              16, rescale=True, data_range=2, cell=4))
    s = report.summarize(pd.concat([pi, floor]), sens.HIGHER_IS_BETTER)
    fig = sens.plot_bars(s, ["X"])
    assert len(fig.axes) == 3
    fig2 = sens.plot_sweep({"X": _variants()}, 0, 16)
    assert fig2.axes[0].get_title() == "default"
    plt.close(fig)
    plt.close(fig2)


def test_compare_applies_each_methods_scaling_and_pool_params_averages():
    vs = _variants()
    t = sens.compare({"SP": vs, "LIME": vs}, 16, floor=True, seed=0, cell=4)
    assert list(dict.fromkeys(t["method"])) == ["SP", "LIME", "random (SP)", "random (LIME)"]
    # SP maps are not rescaled, so the doubled map (spread=0.2) is no longer identical under SSIM
    ss = t[(t.metric == "ssim") & (t.variant == "spread=0.2")].groupby("method")["value"].mean()
    assert ss["LIME"] == pytest.approx(1.0) and ss["SP"] < 0.999
    pi = sens.per_image(t)
    pooled = sens.pool_params(pi)
    assert set(pooled["param"]) == {"all"}
    one = pi[(pi.method == "LIME") & (pi.image == 0) & (pi.metric == "spearman")]["value"].mean()
    got = pooled[(pooled.method == "LIME") & (pooled.image == 0) & (pooled.metric == "spearman")]
    assert got["value"].item() == pytest.approx(one)


def test_applicable_picks_each_methods_hyperparameters():
    sweep = {"seed": [0, 1], "window": [5, 8], "spread": [0.1, 0.15]}
    assert sens.applicable("SP", sweep) == {"window": [5, 8]}
    assert sens.applicable("SmoothGrad", sweep) == {"seed": [0, 1], "spread": [0.1, 0.15]}
    assert sens.applicable("MP-G") == {"seed": [0, 1, 2, 3, 4]}
    with pytest.raises(ValueError, match="valid names"):
        sens.applicable("nope", sweep)
    with pytest.raises(ValueError, match="none of 'LIME'"):
        sens.applicable("LIME", {"window": [5]})
