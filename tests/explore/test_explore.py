"""kit.explore: the explorer's model against direct kit calls (map, heatmap, counterfactuals,
deletion curve), its hyperparameter and remover specs, and every method and remover it offers.

Cheap settings throughout: sliding patch with window 16 / stride 8 (49 patches) on one world image.
"""

from __future__ import annotations

import inspect

import pytest
import torch

from kit import explore
from kit.attributors import METHODS, explain, get_attributor
from kit.defaults import resolve
from kit.masks import TopFraction, upsample
from kit.metrics.deletion import deletion_curve
from kit.removers import REMOVERS, get_remover, remover_files

CHEAP = {"window": 16, "stride": 8}


def test_method_hyperparameters_are_what_the_attributor_accepts():
    for name, m in METHODS.items():
        hp = explore.method_hyperparameters(name)
        accepted = inspect.signature(get_attributor(m.attributor)).parameters
        assert set(hp) <= set(accepted), name
        assert set(hp) == set(explore.METHOD_HYPERPARAMETERS) & set(accepted), name
    assert explore.method_hyperparameters("SP") == {
        "window": resolve("sp_window", 64), "stride": resolve("sp_stride", 64)}
    assert set(explore.method_hyperparameters("LIME")) == {"n_samples"}
    assert set(explore.method_hyperparameters("RISE")) == {"n_masks"}
    assert set(explore.method_hyperparameters("MP-G")) == {"iterations"}
    assert explore.method_hyperparameters("Saliency") == {}
    with pytest.raises(ValueError, match="unknown method 'nope'.*SP-G"):
        explore.method_hyperparameters("nope")


def test_remover_options():
    assert explore.remover_options("blur") == {"sigma": resolve("blur_sigma", 64)}
    assert explore.remover_options("blur", 224) == {"sigma": resolve("blur_sigma", 224)}
    assert explore.remover_options("noise") == {"std": 0.2}
    assert explore.remover_options("gray") == {}
    assert "precomputed" not in explore.remover_names()
    assert {"gray", "blur", "inpaint", "oracle"} <= set(explore.remover_names())
    assert explore.remover_options("blend") == {"lam": 0.5}  # built only with a background
    with pytest.raises(ValueError, match="unknown remover 'fog'.*inpaint"):
        explore.remover_options("fog")


def test_every_registered_remover_is_offered():
    # everything in the registry except the wrappers around an explicit fill or remover
    assert set(REMOVERS) - set(explore.remover_names()) <= {"precomputed", "cached"}
    assert set(explore.REMOVER_OPTIONS) <= set(explore.remover_names())


def test_every_rung_of_the_ladder_is_offered():
    """X, X-G, X-R and X-O of every method are removers the explorer offers; those built from
    the true background only for images that have one."""
    from kit.attributors.methods import ladder

    rung_removers = {METHODS[n].remover for r in ladder().values() for n in r.values()}
    assert {"gray", "blur", "inpaint", "inpaint_removal", "oracle"} <= rung_removers
    assert rung_removers | {"telea", "blend"} <= set(explore.remover_names())
    without = explore.remover_names(backgrounds=False)
    assert set(explore.remover_names()) - set(without) == {
        r for r, cls in REMOVERS.items() if cls.needs_backgrounds} == {"oracle", "blend"}
    assert {"inpaint", "inpaint_removal", "telea"} <= set(without)


def test_compute_oracle_rung_method(clf, img):
    """An O-rung method with its own remover in the explorer is exactly explain(backgrounds=)."""
    ex = explore.compute(clf, img.x, img.target, method="SP-O", remover="oracle", params=CHEAP,
                         background=img.background, fractions=(0.5,), steps=2)
    torch.testing.assert_close(ex.sal, explain("SP-O", clf, img.x, img.target,
                                               backgrounds=img.background, **CHEAP))


def test_counterfactual_masks_remove_the_most_relevant_pixels():
    # the explorer's counterfactuals use kit.masks' one ranker; what it must do for them
    heat = torch.arange(16.0).view(1, 1, 4, 4)
    keep = TopFraction(heat, [0.0, 0.25, 1.0]).build(torch.arange(3), image=torch.zeros(3))
    assert keep.shape == (3, 1, 4, 4)
    assert keep[0].sum() == 16 and keep[2].sum() == 0
    assert torch.equal(keep[1].flatten() == 0, heat.flatten() >= 12)  # the 4 highest
    with pytest.raises(ValueError, match="fraction"):
        TopFraction(heat, [1.5])


def test_compute_matches_direct_kit_calls(clf, img):
    ex = explore.compute(clf, img.x, img.target, method="SP", remover="blur", params=CHEAP,
                         remover_params={"sigma": 2.0})
    rem = get_remover("blur", sigma=2.0)
    sal = explain("SP", clf, img.x, img.target, remover=rem, **CHEAP)
    torch.testing.assert_close(ex.sal, sal)
    heat = upsample(sal, 64, mode="coverage", **CHEAP)
    torch.testing.assert_close(ex.heatmap, heat)
    curve = deletion_curve(clf, img.x, heat, img.target, remover=rem)
    torch.testing.assert_close(ex.curve.scores, curve.scores)
    assert ex.auc == pytest.approx(float(curve.auc[0]))
    k = len(ex.fractions)
    keep = TopFraction(heat, ex.fractions).build(torch.arange(k), image=torch.zeros(k))
    torch.testing.assert_close(ex.counterfactuals, rem(img.x, keep))
    removed = (1 - keep).flatten(1).mean(1)
    torch.testing.assert_close(removed, torch.tensor(ex.fractions), atol=1 / 4096, rtol=0)
    assert ex.params == CHEAP and ex.remover_params == {"sigma": 2.0}


def test_compute_gradient_method_uses_remover_only_for_evaluation(clf, img):
    ex = explore.compute(clf, img.x, img.target, method="Saliency", remover="gray")
    torch.testing.assert_close(ex.sal, explain("Saliency", clf, img.x, img.target))
    assert ex.heatmap.shape == (1, 1, 64, 64)


def test_compute_oracle_uses_the_true_background(clf, img):
    ex = explore.compute(clf, img.x, img.target, method="SP", remover="oracle", params=CHEAP,
                         background=img.background, fractions=(1.0,))
    torch.testing.assert_close(ex.counterfactuals, img.background)
    with pytest.raises(ValueError, match="oracle.*world"):
        explore.compute(clf, img.x, img.target, method="SP", remover="oracle", params=CHEAP)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"method": "LIME", "params": {"window": 8}}, r"params \['window'\] are not taken by method 'LIME'"),
    ({"params": {"window": 4, "stride": 8}}, "stride must be <= window"),
    ({"remover": "gray", "remover_params": {"sigma": 1.0}}, "not options of remover 'gray'"),
    ({"method": "SP-X"}, "unknown method 'SP-X'"),
    ({"remover": "fog"}, "unknown remover 'fog'"),
    ({"fractions": (0.5, 1.5)}, r"fractions must be .*\[0, 1\].*1\.5"),
])
def test_compute_rejects_bad_selections(clf, img, kwargs, match):
    with pytest.raises(ValueError, match=match):
        explore.compute(clf, img.x, img.target, **kwargs)


# The cheapest setting of each hyperparameter, so every method of the registry runs in a second
# or two.
_CHEAPEST = {"window": 32, "stride": 16, "n_samples": 10, "n_masks": 50, "iterations": 10}


# One method per code path: each perturbation attributor, a gradient method (the gradient family
# shares it), Grad-CAM (a coarse grid) and the random baseline (no remover keyword).
PATHS = ["SP", "LIME", "KernelSHAP", "RISE", "MP", "MP2", "FIDO-CA-SDR", "Saliency", "GradCAM", "random"]


def test_paths_cover_every_attributor_kind():
    kinds = {METHODS[m].attributor for m in PATHS}
    perturbation = {m.attributor for m in METHODS.values() if m.remover is not None}
    assert perturbation <= kinds and set(PATHS) <= set(METHODS)
    assert set(explore.METHOD_HYPERPARAMETERS) == set(_CHEAPEST)


@pytest.mark.parametrize("method", PATHS)
def test_every_method_kind_runs_in_the_explorer(clf, img, method):
    hp = {k: _CHEAPEST[k] for k in explore.method_hyperparameters(method)}
    ex = explore.compute(clf, img.x, img.target, method=method, remover="gray", params=hp,
                         fractions=(0.5,), steps=4)
    assert ex.heatmap.shape == (1, 1, 64, 64) and torch.isfinite(ex.heatmap).all()
    assert ex.curve.scores.shape == (1, 5) and 0 <= ex.auc <= 1


@pytest.mark.parametrize("remover", explore.remover_names())
def test_every_offered_remover_runs_in_the_explorer(clf, img, remover):
    missing = [f.name for f in remover_files(remover) if not f.exists()]
    if missing:  # the removal inpainter before its checkpoint is trained
        pytest.skip(f"remover {remover!r}: shipped file(s) {missing} absent")
    ex = explore.compute(clf, img.x, img.target, method="SP", remover=remover,
                         params={"window": 32, "stride": 16}, background=img.background,
                         fractions=(0.5,), steps=2)
    assert ex.counterfactuals.shape == (1, 3, 64, 64) and 0 <= ex.auc <= 1
    # the counterfactual changed the removed half only
    keep = TopFraction(ex.heatmap, (0.5,)).build([0], image=[0]).bool().expand(1, 3, 64, 64)
    assert torch.equal(ex.counterfactuals[keep], img.x[keep])
