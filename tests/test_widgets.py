"""kit.widgets: the explorer's plain functions against direct kit calls, and the widgets driven
from Python (set a control, the outputs change and equal a direct computation).

Cheap settings throughout: sliding patch with window 16 / stride 8 (49 patches) on one world image.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("ipywidgets")

from kit import widgets, world  # noqa: E402
from kit.attributors import METHODS, explain, get_attributor  # noqa: E402
from kit.defaults import resolve  # noqa: E402
from kit.masks import upsample  # noqa: E402
from kit.metrics.deletion import deletion_curve  # noqa: E402
from kit.models import load_classifier  # noqa: E402
from kit.removers import get_remover  # noqa: E402

CHEAP = {"window": 16, "stride": 8}


def _png(img: torch.Tensor) -> bytes:
    """PNG bytes of a (3,H,W) image in [0,1] (Pillow)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    arr = (img.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def clf():
    return load_classifier("world")


@pytest.fixture(scope="module")
def img(clf):
    return widgets.load_image(3, model=clf)


@pytest.fixture(scope="module")
def view(clf):
    return widgets.explorer_view(clf, image=3, params=CHEAP)


# --- plain functions -------------------------------------------------------------------------


def test_method_hyperparameters_are_what_the_attributor_accepts():
    import inspect

    for name, m in METHODS.items():
        hp = widgets.method_hyperparameters(name)
        accepted = inspect.signature(get_attributor(m.attributor)).parameters
        assert set(hp) <= set(accepted), name
        assert set(hp) == set(widgets.METHOD_SLIDERS) & set(accepted), name
    assert widgets.method_hyperparameters("SP") == {
        "window": resolve("sp_window", 64), "stride": resolve("sp_stride", 64)}
    assert set(widgets.method_hyperparameters("LIME")) == {"n_samples"}
    assert set(widgets.method_hyperparameters("RISE")) == {"n_masks"}
    assert set(widgets.method_hyperparameters("MP-G")) == {"iterations"}
    assert widgets.method_hyperparameters("Saliency") == {}
    with pytest.raises(ValueError, match="unknown method 'nope'.*SP-G"):
        widgets.method_hyperparameters("nope")


def test_remover_options():
    assert widgets.remover_options("blur") == {"sigma": resolve("blur_sigma", 64)}
    assert widgets.remover_options("noise") == {"std": 0.2}
    assert widgets.remover_options("gray") == {}
    assert "precomputed" not in widgets.remover_names()
    assert {"gray", "blur", "inpaint", "oracle"} <= set(widgets.remover_names())
    with pytest.raises(ValueError, match="unknown remover 'fog'.*inpaint"):
        widgets.remover_options("fog")


def test_load_image_world_and_files(clf, img, tmp_path):
    b = world.sample(1, seed=0, split="test", start=3)
    assert torch.equal(img.x, b.images) and img.target == int(b.labels[0])
    assert torch.equal(img.background, b.backgrounds)
    png = _png(b.images[0])
    path = tmp_path / "mine.png"
    path.write_bytes(png)
    from_file = widgets.load_image(str(path), model=clf)
    assert from_file.x.shape == (1, 3, 64, 64) and from_file.background is None
    torch.testing.assert_close(from_file.x, b.images, atol=1 / 255 + 1e-6, rtol=0)
    assert from_file.target == int(clf(from_file.x).argmax(1)[0])
    from_bytes = widgets.load_image(png, model=clf)
    assert torch.equal(from_bytes.x, from_file.x) and from_bytes.key == from_file.key
    # a larger, non-square file: shorter side resized, centre crop
    big = torch.nn.functional.interpolate(b.images, size=(96, 128), mode="bilinear")
    wide = widgets.load_image(_png(big[0]), model=clf)
    assert wide.x.shape == (1, 3, 64, 64)


@pytest.mark.parametrize(("source", "err", "match"), [
    (-1, ValueError, "index.*>= 0, got -1"),
    ("/no/such/file.png", ValueError, "no image file"),
    (b"not an image", ValueError, "could not decode"),
    (2.5, TypeError, "got float"),
])
def test_load_image_errors(clf, source, err, match):
    with pytest.raises(err, match=match):
        widgets.load_image(source, model=clf)


def test_load_image_file_needs_model(img):
    with pytest.raises(ValueError, match="model is needed"):
        widgets.load_image(b"\x89PNG", model=None)


def test_top_fraction_keep_removes_the_most_relevant_pixels():
    heat = torch.arange(16.0).view(1, 1, 4, 4)
    keep = widgets.top_fraction_keep(heat, [0.0, 0.25, 1.0])
    assert keep.shape == (3, 1, 4, 4)
    assert keep[0].sum() == 16 and keep[2].sum() == 0
    assert torch.equal(keep[1].flatten() == 0, heat.flatten() >= 12)  # the 4 highest
    with pytest.raises(ValueError, match="fractions"):
        widgets.top_fraction_keep(heat, [1.5])


def test_compute_matches_direct_kit_calls(clf, img):
    ex = widgets.compute(clf, img.x, img.target, method="SP", remover="blur", params=CHEAP,
                         remover_params={"sigma": 2.0})
    rem = get_remover("blur", sigma=2.0)
    sal = explain("SP", clf, img.x, img.target, remover=rem, **CHEAP)
    torch.testing.assert_close(ex.sal, sal)
    heat = upsample(sal, 64, mode="coverage", **CHEAP)
    torch.testing.assert_close(ex.heatmap, heat)
    curve = deletion_curve(clf, img.x, heat, img.target, remover=rem)
    torch.testing.assert_close(ex.curve.scores, curve.scores)
    assert ex.auc == pytest.approx(float(curve.auc[0]))
    keep = widgets.top_fraction_keep(heat, ex.fractions)
    torch.testing.assert_close(ex.counterfactuals, rem(img.x, keep))
    removed = (1 - keep).flatten(1).mean(1)
    torch.testing.assert_close(removed, torch.tensor(ex.fractions), atol=1 / 4096, rtol=0)
    assert ex.params == CHEAP and ex.remover_params == {"sigma": 2.0}


def test_compute_gradient_method_uses_remover_only_for_evaluation(clf, img):
    ex = widgets.compute(clf, img.x, img.target, method="Saliency", remover="gray")
    torch.testing.assert_close(ex.sal, explain("Saliency", clf, img.x, img.target))
    assert ex.heatmap.shape == (1, 1, 64, 64)


def test_compute_oracle_uses_the_true_background(clf, img):
    ex = widgets.compute(clf, img.x, img.target, method="SP", remover="oracle", params=CHEAP,
                         background=img.background, fractions=(1.0,))
    torch.testing.assert_close(ex.counterfactuals, img.background)
    with pytest.raises(ValueError, match="oracle.*only for world images"):
        widgets.compute(clf, img.x, img.target, method="SP", remover="oracle", params=CHEAP)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"method": "LIME", "params": {"window": 8}}, r"params \['window'\] are not taken by method 'LIME'"),
    ({"params": {"window": 4, "stride": 8}}, "stride must be <= window"),
    ({"remover": "gray", "remover_params": {"sigma": 1.0}}, "not options of remover 'gray'"),
    ({"method": "SP-X"}, "unknown method 'SP-X'"),
    ({"remover": "fog"}, "unknown remover 'fog'"),
])
def test_compute_rejects_bad_selections(clf, img, kwargs, match):
    with pytest.raises(ValueError, match=match):
        widgets.compute(clf, img.x, img.target, **kwargs)


def test_plot_explorations(clf, img):
    ex = widgets.compute(clf, img.x, img.target, method="SP", params=CHEAP)
    fig = widgets.plot_explorations(img.x, {"gray": ex, "again": ex}, title="t")
    assert len(fig.axes) == 2 * (2 + len(ex.fractions)) + 1
    assert widgets.figure_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="at least one"):
        widgets.plot_explorations(img.x, {})


# --- widgets driven from Python -----------------------------------------------------------------


def _direct(clf, img, **kw):
    return widgets.compute(clf, img.x, img.target, **kw)


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
    real = widgets.compute
    monkeypatch.setattr(widgets, "compute", lambda *a, **k: calls.append(k) or real(*a, **k))
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
    torch.testing.assert_close(ex.sal, widgets.compute(clf, b.images, int(b.labels[0]),
                                                       method="SP", params=CHEAP).sal)
    other = (int(b.labels[0]) + 1) % len(clf.classes)
    view.controls["target"].value = other
    (ex,) = view.results.values()
    torch.testing.assert_close(ex.sal, widgets.compute(clf, b.images, other, method="SP",
                                                       params=CHEAP).sal)


def test_view_upload(clf):
    import datetime

    v = widgets.explorer_view(clf, image=3, params=CHEAP)
    png = _png(world.sample(1, seed=0, split="test", start=9).images[0])
    v.controls["upload"].value = ({"name": "mine.png", "type": "image/png", "size": len(png),
                                   "content": memoryview(png),
                                   "last_modified": datetime.datetime(2026, 1, 1)},)
    assert v.error is None and v.image.name == "uploaded image"
    assert v.controls["target"].value == int(clf(v.image.x).argmax(1)[0])
    v.controls["remover_0"].value = "oracle"  # no true background for a user image
    assert "only for world images" in v.error


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


# The cheapest setting of each slider, so every method of the registry runs in a second or two.
_CHEAPEST = {"window": 32, "stride": 16, "n_samples": 10, "n_masks": 50, "iterations": 10}


# One method per code path: each perturbation attributor, a gradient method (the gradient family
# shares it), Grad-CAM (a coarse grid) and the random baseline (no progress/remover keywords).
PATHS = ["SP", "LIME", "RISE", "MP", "MP2", "FIDO-CA-SDR", "Saliency", "GradCAM", "random"]


def test_paths_cover_every_attributor_kind():
    kinds = {METHODS[m].attributor for m in PATHS}
    perturbation = {m.attributor for m in METHODS.values() if m.remover is not None}
    assert perturbation <= kinds and set(PATHS) <= set(METHODS)


@pytest.mark.parametrize("method", PATHS)
def test_every_method_kind_runs_in_the_explorer(clf, img, method):
    hp = {k: _CHEAPEST[k] for k in widgets.method_hyperparameters(method)}
    ex = widgets.compute(clf, img.x, img.target, method=method, remover="gray", params=hp,
                         fractions=(0.5,), steps=4)
    assert ex.heatmap.shape == (1, 1, 64, 64) and torch.isfinite(ex.heatmap).all()
    assert ex.curve.scores.shape == (1, 5) and 0 <= ex.auc <= 1
