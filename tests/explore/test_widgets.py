"""kit.widgets: the explorer's view driven from Python (set a control, the outputs change and
equal a direct :func:`kit.explore.compute`).

Cheap settings throughout: sliding patch with window 16 / stride 8 (49 patches) on one world image.
"""

from __future__ import annotations

import inspect

import pytest
import torch

pytest.importorskip("ipywidgets")

from kit import explore, widgets, world  # noqa: E402
from kit.attributors import METHODS, explain, get_attributor  # noqa: E402

CHEAP = {"window": 16, "stride": 8}


@pytest.fixture(scope="module")
def view(clf):
    return widgets.explorer_view(clf, image=3, params=CHEAP)


def test_sliders_cover_the_exposed_hyperparameters():
    assert set(widgets.METHOD_SLIDERS) == set(explore.METHOD_HYPERPARAMETERS)
    assert {r: set(s) for r, s in widgets.REMOVER_SLIDERS.items()} == {
        r: set(o) for r, o in explore.REMOVER_OPTIONS.items()}
    for name, m in METHODS.items():  # a slider for each keyword the method's attributor takes
        accepted = inspect.signature(get_attributor(m.attributor)).parameters
        assert set(explore.method_hyperparameters(name)) == (
            set(widgets.METHOD_SLIDERS) & set(accepted)), name


def test_view_offers_every_method_and_remover(view):
    assert list(view.controls["method"].options) == list(METHODS)
    assert list(view.controls["remover_0"].options) == explore.remover_names()


# --- widgets driven from Python -----------------------------------------------------------------


def _direct(clf, img, **kw):
    return explore.compute(clf, img.x, img.target, **kw)


def test_view_initial_render_matches_compute(clf, img, view):
    assert view.error is None
    (ex,) = view.results.values()
    torch.testing.assert_close(ex.sal, _direct(clf, img, method="SP", params=CHEAP).sal)
    for name in ("heatmap_0", "strip_0", "curve"):
        assert view.images[name].value[:4] == b"\x89PNG"
    assert view.progress.value == 3 and "deletion AUC" in view.status.value
    assert set(view.controls) >= {"index", "upload", "target", "method", "remover_0", "window",
                                  "stride"}
    assert all(not view.controls[k].continuous_update for k in ("window", "stride"))


def test_view_remover_change_updates_outputs(clf, img, view):
    heat_before = view.images["heatmap_0"].value
    curve_before = view.images["curve"].value
    view.controls["remover_0"].value = "blur"
    assert view.error is None
    assert "remover_0.sigma" in view.controls  # blur's option slider appears
    (ex,) = view.results.values()
    direct = _direct(clf, img, method="SP", remover="blur", params=CHEAP)
    torch.testing.assert_close(ex.sal, direct.sal)
    assert ex.auc == pytest.approx(direct.auc)
    assert view.images["heatmap_0"].value != heat_before
    assert view.images["curve"].value != curve_before
    view.controls["remover_0.sigma"].value = 1.0
    (ex,) = view.results.values()
    assert ex.remover_params == {"sigma": 1.0}
    torch.testing.assert_close(
        ex.sal, _direct(clf, img, method="SP", remover="blur", params=CHEAP,
                        remover_params={"sigma": 1.0}).sal)
    view.controls["remover_0"].value = "gray"
    assert "remover_0.sigma" not in view.controls


def test_view_slider_and_cache(clf, img, view, monkeypatch):
    calls = []
    real = explore.compute
    monkeypatch.setattr(explore, "compute", lambda *a, **k: calls.append(k) or real(*a, **k))
    seen = []
    view.progress.observe(lambda ch: seen.append(ch["new"]), "value")
    view.controls["stride"].value = 4
    assert len(calls) == 1 and view.error is None
    assert seen == [0, 1, 2, 3]  # the progress bar walks through map, counterfactuals, deletion
    (ex,) = view.results.values()
    assert ex.sal.shape == (1, 1, 13, 13)  # (64 - 16) // 4 + 1
    view.controls["stride"].value = 8  # back to a cached selection: no recomputation
    assert len(calls) == 1
    (ex,) = view.results.values()
    assert ex.sal.shape == (1, 1, 7, 7)
    view.controls["window"].value = 4  # stride 8 > window 4: an error message, no exception
    assert "stride must be <= window" in view.error and "stride" in view.status.value
    view.controls["window"].value = 16
    assert view.error is None


def test_view_method_change_shows_only_accepted_sliders(clf, img, view):
    view.controls["method"].value = "Saliency"
    assert "window" not in view.controls and view.hp_box.children == ()
    (ex,) = view.results.values()
    assert ex.method == "Saliency"
    torch.testing.assert_close(ex.sal, explain("Saliency", clf, img.x, img.target))
    view.controls["method"].value = "SP"
    assert [c.description for c in view.hp_box.children] == ["window (px)", "stride (px)"]
    # the geometry chosen before the detour is remembered
    assert (view.controls["window"].value, view.controls["stride"].value) == (16, 8)
    view.controls["method"].value = "SP-G"  # paired with the inpainter
    assert view.controls["remover_0"].value == "inpaint"
    assert (view.controls["window"].value, view.controls["stride"].value) == (16, 8)
    assert list(view.results.values())[0].method == "SP-G"
    view.controls["method"].value = "SP"
    assert view.controls["remover_0"].value == "gray"


def test_view_image_and_target_controls(clf, view):
    view.controls["index"].value = 5
    b = world.sample(1, seed=0, split="test", start=5)
    assert torch.equal(view.image.x, b.images)
    assert view.controls["target"].value == int(b.labels[0])
    (ex,) = view.results.values()
    torch.testing.assert_close(ex.sal, explore.compute(clf, b.images, int(b.labels[0]),
                                                       method="SP", params=CHEAP).sal)
    other = (int(b.labels[0]) + 1) % len(clf.classes)
    view.controls["target"].value = other
    (ex,) = view.results.values()
    torch.testing.assert_close(ex.sal, explore.compute(clf, b.images, other, method="SP",
                                                       params=CHEAP).sal)


def test_view_upload(clf, png):
    import datetime

    v = widgets.explorer_view(clf, image=3, params=CHEAP, removers=("oracle",))
    assert v.error is None and "oracle" in v.controls["remover_0"].options
    encoded = png(world.sample(1, seed=0, split="test", start=9).images[0])
    v.controls["upload"].value = ({"name": "mine.png", "type": "image/png", "size": len(encoded),
                                   "content": memoryview(encoded),
                                   "last_modified": datetime.datetime(2026, 1, 1)},)
    assert v.error is None and v.image.name == "uploaded image"
    assert v.controls["target"].value == int(clf(v.image.x).argmax(1)[0])
    # no true background for a user image: the removers built from one are not offered, and the
    # oracle chosen before falls back to gray
    assert list(v.controls["remover_0"].options) == explore.remover_names(backgrounds=False)
    assert v.controls["remover_0"].value == "gray"
    assert list(v.results.values())[0].remover == "gray"
    v.controls["method"].value = "SP-O"  # its remover is not offered here: the choice stays
    assert v.error is None and v.controls["remover_0"].value == "gray"
    with pytest.raises(ValueError, match="removers: 'oracle' needs the image's true background"):
        widgets.explorer_view(clf, image=encoded, params=CHEAP, removers=("oracle",))


def test_view_blend_slider_and_oracle_rung(clf, img):
    """The fill continuum is a remover with a lam slider; an O-rung method picks the oracle."""
    v = widgets.explorer_view(clf, image=3, params=CHEAP, removers=("blend",))
    assert v.error is None and v.controls["remover_0.lam"].value == 0.5
    v.controls["remover_0.lam"].value = 1.0  # lam 1 is the oracle, exactly
    (ex,) = v.results.values()
    assert ex.remover_params == {"lam": 1.0}
    torch.testing.assert_close(ex.sal, _direct(clf, img, method="SP", remover="oracle",
                                               params=CHEAP, background=img.background).sal)
    v.controls["method"].value = "SP-O"
    assert v.controls["remover_0"].value == "oracle" and "remover_0.lam" not in v.controls
    torch.testing.assert_close(list(v.results.values())[0].sal,
                               explain("SP-O", clf, img.x, img.target,
                                       backgrounds=img.background, **CHEAP))


def test_compare_view_and_explorer(clf, img):
    v = widgets.explorer_view(clf, image=3, removers=("gray", "blur"), params=CHEAP)
    a, b = v.results.values()
    assert (a.remover, b.remover) == ("gray", "blur")
    assert v.images["heatmap_0"].value != v.images["heatmap_1"].value
    h1 = v.images["heatmap_1"].value
    v.controls["remover_1"].value = "noise"
    assert v.images["heatmap_1"].value != h1
    assert list(v.results.values())[1].remover == "noise"
    with pytest.raises(ValueError, match="1 or 2"):
        widgets.explorer_view(clf, removers=("gray", "blur", "noise"))
    tab = widgets.explorer(clf, image=3, params=CHEAP, compare=("gray", "gray"))  # cached twice
    assert len(tab.children) == 2 and [v.n for v in tab.views] == [1, 2]
