"""SAM's similarity metric (methods.md §4.5): hand-computed similarities, scaling, bad inputs.

The sweeps, tables and the other-images floor of SAM's study are tested in
tests/studies/test_sam.py.
"""

import warnings

import numpy as np
import pytest
import torch

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


def test_similarity_gives_the_three_metrics_in_order():
    a, b = _smooth(size=24), _smooth(size=24).flip(-1)
    out = sens.similarity(a, b, data_range=1, cell=8)
    assert tuple(out) == sens.METRICS and sens.METRICS[0] == sens.HEADLINE == "spearman"
    assert np.array_equal(out["spearman"], sens.spearman(a, b))
    assert sens.HIGHER_IS_BETTER == {"spearman": True, "ssim": True, "hog_pearson": True}


# --------------------------------------------------------------------------- pre-processing


def test_prenormalise_divides_by_max_abs_and_keeps_zero_maps():
    a = torch.zeros(2, 1, 4, 4)
    a[0, 0, 0, 0], a[0, 0, 1, 1] = -4.0, 2.0
    out = sens.prenormalise(a, rescale=True)
    assert out[0, 0, 0, 0] == -1 and out[0, 0, 1, 1] == 0.5
    assert torch.equal(out[1], a[1])                    # all-zero map untouched, no NaN
    assert torch.equal(sens.prenormalise(a, rescale=False), a)


def test_scaling_rescales_every_method_with_sams_data_ranges():
    # SP and MP are rescaled too (unlike SAM): unscaled SSIM tracks the maps' amplitude
    assert sens.scaling("SP") == (True, 2.0) and sens.scaling("SP-G") == (True, 2.0)
    assert sens.scaling("MP-G") == (True, 1.0) and sens.scaling("MP2") == (True, 1.0)
    assert sens.scaling("LIME") == (True, 2.0) and sens.scaling("FIDO-CA-SDR") == (True, 2.0)
    assert sens.scaling("SmoothGrad") == (True, 1.0) and sens.scaling("RISE") == (True, 1.0)
    assert all(rescale for rescale, _ in sens.SCALING_BY_ATTRIBUTOR.values())
    with pytest.raises(ValueError, match="valid names"):
        sens.scaling("SP-X")


@pytest.mark.parametrize("method", ["SP", "SP-G", "MP", "LIME"])
def test_rescaled_copy_scores_as_the_original(method):
    """Amplitude invariance (the bug this fixes): x10 or x0.01 copies score as the maps do."""
    rescale, data_range = sens.scaling(method)
    a, b = _maps(n=3, size=24, seed=2), _maps(n=3, size=24, seed=3)
    if data_range == 2.0:                                # signed maps, as SP's drops
        a, b = a - 0.5, b - 0.5

    def sim(p, q):
        p, q = (sens.prenormalise(h, rescale=rescale) for h in (p, q))
        return sens.similarity(p, q, data_range=data_range, cell=8)

    ref = sim(a, b)
    for k in (10.0, 0.01):
        got = sim(a * k, b)
        for metric in sens.METRICS:
            np.testing.assert_allclose(got[metric], ref[metric], rtol=1e-5, atol=1e-6)
    same = sim(a, a * 10)
    for metric in sens.METRICS:
        np.testing.assert_allclose(same[metric], 1.0, atol=1e-6)


def test_unscaled_ssim_of_unrelated_small_maps_is_high_which_rescaling_removes():
    # the audit's artefact in miniature: two unrelated maps of small amplitude (SP-G's drops)
    # look alike to unscaled SSIM, because its constants dominate small variances
    a, b = (_maps(n=4, size=24, seed=8) - 0.5) * 0.02, (_maps(n=4, size=24, seed=9) - 0.5) * 0.02
    raw = sens.ssim(a, b, data_range=2)
    scaled = sens.ssim(sens.prenormalise(a, rescale=True), sens.prenormalise(b, rescale=True),
                       data_range=2)
    assert raw.mean() > 0.9 and scaled.mean() < 0.3


# --------------------------------------------------------------------------- bad inputs


def test_bad_inputs_raise_clear_errors():
    a = _maps()
    with pytest.raises(ValueError, match="same shape"):
        sens.ssim(a, _maps(size=16), data_range=1)
    with pytest.raises(TypeError, match="torch.Tensor"):
        sens.spearman(a.numpy(), a)
    with pytest.raises(ValueError, match=r"\(N,1,h,w\)"):
        sens.spearman(a[:, 0], a[:, 0])
    with pytest.raises(TypeError, match="float"):
        sens.spearman(a.long(), a.long())
    with pytest.raises(ValueError, match="data_range"):
        sens.ssim(a, a, data_range=0)
    with pytest.raises(ValueError, match="finite"):
        sens.spearman(a * float("nan"), a)
    with pytest.raises(ValueError, match="cell"):
        sens.hog_pearson(a, a, cell=16)                 # 32 px < 3 cells of 16
    with pytest.raises(TypeError, match="rescale"):
        sens.prenormalise(a, rescale=1)
