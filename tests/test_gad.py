"""GAD: distancing and cached support models (kit.studies.gad), fusion (kit.attributors.gad),
RC / RS (kit.metrics.gad); methods.md §3.8, §4.7.

Toy models only (no world rendering, no shipped weights), so the file runs in seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from kit import cache
from kit.attributors import gad as fusion
from kit.metrics import gad as ratios
from kit.models import Classifier
from kit.studies import gad as study

H = W = 12


def _tiny(seed: int = 0) -> Classifier:
    """A 3-class CNN small enough to fine-tune in milliseconds (BatchNorm included)."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))
    return Classifier(net, ["a", "b", "c"], mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


class _Linear(nn.Module):
    """logits_c = sum_{k,h,w} weight[c,k,h,w] * z[k,h,w]: margins and occlusions in closed form."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nkhw,ckhw->nc", z, self.weight)


def _linear_classifier(weight: torch.Tensor) -> Classifier:
    # mean 0 / std 1: normalisation is the identity and the gray remover fills with 0
    return Classifier(_Linear(weight), ["t", "o"], mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def _lab(n) -> torch.Tensor:
    """Labels of :func:`_images`: class 0 on even indices, class 1 on odd ones."""
    n = n.shape[0] if isinstance(n, torch.Tensor) else n
    return torch.arange(n) % 2


def _images(n: int, seed: int = 0) -> torch.Tensor:
    """Random images whose class (:func:`_lab`) shows in a channel: red for 0, blue for 1."""
    x = torch.rand(n, 3, H, W, generator=torch.Generator().manual_seed(seed)) * 0.6
    x[0::2, 0] += 0.4
    x[1::2, 2] += 0.4
    return x


def _state(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(s1: dict, s2: dict) -> bool:
    return s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)


TRAIN = dict(k=2, epochs=2, lr=1e-2, batch_size=8)


# ----------------------------------------------------------------------------------------------
# distancing
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0, 2, 8, 3.5])
def test_distanced_targets_push_each_image_toward_its_own_class(alpha):
    logits = torch.randn(6, 4)
    labels = torch.tensor([1, 3, 3, 1, 1, 3])
    z = study.distanced_targets(logits, labels, 1, 3, alpha)
    own = (labels == 1)
    sign = torch.where(own, 1.0, -1.0)  # z_1 - z_3 grows on class-1 images, shrinks on class 3
    torch.testing.assert_close((z[:, 1] - z[:, 3]) - (logits[:, 1] - logits[:, 3]),
                               sign * float(alpha))
    rows = torch.arange(6)
    torch.testing.assert_close(z[rows, labels] - logits[rows, labels], torch.full((6,), alpha / 2))
    torch.testing.assert_close(z[:, [0, 2]], logits[:, [0, 2]])  # other classes untouched


def test_distanced_targets_refuse_labels_outside_the_pair():
    with pytest.raises(ValueError, match=r"labels must hold only the pair's classes 1 and 3"):
        study.distanced_targets(torch.zeros(2, 4), torch.tensor([1, 2]), 1, 3, 2)
    with pytest.raises(ValueError, match=r"labels must be a \(2,\) tensor"):
        study.distanced_targets(torch.zeros(2, 4), torch.tensor([1]), 1, 3, 2)


def test_trained_support_models_distance_both_classes_and_leave_the_original(tmp_path):
    model = _tiny()
    before = _state(model)
    x, y = _images(32), _lab(32)
    alpha = 6.0
    sup = study.train_support_models(model, (0, 1), alpha, images=x, labels=y, k=2, epochs=30,
                                     lr=1e-2, batch_size=8, cache_dir=tmp_path)
    assert sup.kind == "distanced"
    assert _same(before, _state(model)), "the original model was modified"
    assert all(not p.requires_grad for p in model.parameters())
    m0 = ratios.pair_margin(model, x, y, 1 - y)  # own-class margin z_y - z_o
    for m in sup.models:
        assert not m.training and all(not p.requires_grad for p in m.parameters())
        shift = ratios.pair_margin(m, x, y, 1 - y) - m0
        for c in (0, 1):  # each class is pushed toward itself: no anti-distancing of class 1
            s_c = shift[y == c].mean().item()
            assert 0.7 * alpha < s_c < 1.3 * alpha, (c, s_c)
        # other logits stay close to the original ones (MSE on all logits)
        with torch.inference_mode():
            drift = (m(x)[:, 2] - model(x)[:, 2]).abs().mean().item()
        assert drift < 0.3 * alpha, drift
    table = study.support_summary(model, {alpha: sup}, x, y)
    assert table["kind"].tolist() == ["original", "distanced", "distanced"]
    assert (table.loc[1:, ["margin_shift_0", "margin_shift_1"]] > 0.7 * alpha).all().all()


def test_margin_summary_reports_each_class_before_and_after(tmp_path):
    model, x, y = _tiny(), _images(12), _lab(12)
    sup = study.train_support_models(model, (0, 1), 4, images=_images(16), labels=_lab(16),
                                     cache_dir=tmp_path, **TRAIN)
    bias = study.bias_only_control(model, (0, 1), 4)
    table = study.margin_table(model, {4: sup, "bias": bias}, x, y)
    assert len(table) == 2 * 12
    np.testing.assert_allclose(table["margin_after"] - table["margin_before"],
                               table["margin_shift"], atol=1e-9)
    summ = study.margin_summary(table, classes=["a", "b", "c"])
    assert summ[["kind", "class"]].values.tolist() == [
        ["distanced", 0], ["distanced", 1], ["bias only", 0], ["bias only", 1]]
    assert summ["class_name"].tolist() == ["a", "b", "a", "b"]
    assert (summ["n"] == 6).all()
    assert ((summ["shift_low"] <= summ["shift"]) & (summ["shift"] <= summ["shift_high"])).all()
    # the bias-only copy moves z_a - z_b by exactly +4: +4 on class a's margin, -4 on class b's
    b_rows = summ[summ["kind"] == "bias only"].set_index("class")
    assert b_rows.loc[0, "shift"] == pytest.approx(4.0, abs=1e-4)
    assert b_rows.loc[1, "shift"] == pytest.approx(-4.0, abs=1e-4)
    assert summ.loc[summ["kind"] == "distanced", "target_shift"].tolist() == [4.0, 4.0]
    with pytest.raises(ValueError, match="missing column"):
        study.margin_summary(table.drop(columns=["margin_after"]))


# ----------------------------------------------------------------------------------------------
# the support-model cache
# ----------------------------------------------------------------------------------------------


def test_support_cache_hit_miss(tmp_path):
    model, x = _tiny(), _images(16)
    first = study.train_support_models(model, (0, 1), 4, images=x, labels=_lab(x), cache_dir=tmp_path, **TRAIN)
    assert first.from_cache == (False, False)
    assert sorted(p.stem for p in tmp_path.glob("*.pt")) == sorted(first.keys)
    again = study.train_support_models(model, (0, 1), 4, images=x, labels=_lab(x), cache_dir=tmp_path, **TRAIN)
    assert again.from_cache == (True, True) and again.keys == first.keys
    for m1, m2 in zip(first.models, again.models, strict=True):
        assert _same(_state(m1), _state(m2))
    assert again.losses == first.losses
    # one more copy: the first two are hits, the new one is trained
    more = study.train_support_models(model, (0, 1), 4, images=x, labels=_lab(x), cache_dir=tmp_path,
                                    **{**TRAIN, "k": 3})
    assert more.from_cache == (True, True, False)
    # cache=False neither reads nor writes
    n_files = len(list(tmp_path.glob("*.pt")))
    off = study.train_support_models(model, (0, 1), 4, images=x, labels=_lab(x), cache_dir=tmp_path, cache=False,
                                   **TRAIN)
    assert off.from_cache == (False, False) and len(list(tmp_path.glob("*.pt"))) == n_files


@pytest.mark.parametrize("change", ["alpha", "classes", "lr", "epochs", "batch_size", "seed",
                                    "images", "labels", "model"])
def test_support_cache_key_covers_the_configuration(tmp_path, change):
    model, x = _tiny(), _images(16)
    base = dict(classes=(0, 1), alpha=4.0, images=x, labels=_lab(x), **TRAIN, seed=0)
    ref = study.train_support_models(model, cache_dir=tmp_path, **base)
    changed = dict(base)
    if change == "alpha":
        changed["alpha"] = 2.0
    elif change == "classes":
        changed["classes"] = (1, 0)
    elif change == "lr":
        changed["lr"] = 5e-3
    elif change == "epochs":
        changed["epochs"] = 3
    elif change == "batch_size":
        changed["batch_size"] = 4
    elif change == "seed":
        changed["seed"] = 1
    elif change == "images":
        changed["images"] = x.flip(-1)
    elif change == "labels":
        changed["labels"] = 1 - _lab(x)
    other_model = _tiny(seed=1) if change == "model" else model
    res = study.train_support_models(other_model, cache_dir=tmp_path, **changed)
    if change == "seed":  # copy seeds 1, 2 vs 0, 1: copy 1 is shared, copy 2 is new
        assert res.keys[0] == ref.keys[1] and res.from_cache == (True, False)
    else:
        assert not set(res.keys) & set(ref.keys) and res.from_cache == (False, False)


def test_support_training_is_deterministic(tmp_path):
    model, x = _tiny(), _images(16)
    a = study.train_support_models(model, (0, 1), 4, images=x, labels=_lab(x), cache=False, **TRAIN)
    b = study.train_support_models(model, (0, 1), 4, images=x, labels=_lab(x), cache=False, **TRAIN)
    for m1, m2 in zip(a.models, b.models, strict=True):
        assert _same(_state(m1), _state(m2))
    # different copy seeds see the data in a different order, so the copies differ
    assert not _same(_state(a.models[0]), _state(a.models[1]))


def test_cached_file_is_a_verified_cache_entry(tmp_path):
    model, x = _tiny(), _images(16)
    sup = study.train_support_models(model, (0, 1), 4, images=x, labels=_lab(x), cache_dir=tmp_path, **TRAIN)
    blob = cache.read(tmp_path / f"{sup.keys[0]}.pt")  # kit.cache: checksummed, weights_only
    assert set(blob) == {"state_dict", "config", "loss", "seconds"}
    config = json.loads(blob["config"])
    assert config["alpha"] == 4.0 and study.support_key(config) == sup.keys[0]


def test_corrupted_cache_entry_is_retrained_and_overwritten(tmp_path):
    model, x = _tiny(), _images(16)
    first = study.train_support_models(model, (0, 1), 4, images=x, labels=_lab(x), cache_dir=tmp_path, **TRAIN)
    path = tmp_path / f"{first.keys[0]}.pt"
    path.write_bytes(path.read_bytes()[:100])  # truncated file
    with pytest.warns(RuntimeWarning, match="unreadable or corrupted"):
        again = study.train_support_models(model, (0, 1), 4, images=x, labels=_lab(x), cache_dir=tmp_path,
                                           **TRAIN)
    assert again.from_cache == (False, True)
    assert _same(_state(again.models[0]), _state(first.models[0]))  # deterministic retraining
    assert cache.read(path) is not None  # overwritten with a good entry


def test_default_cache_folder_follows_kit_cache_at_call_time(tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_CACHE", str(tmp_path))  # set after kit was imported
    sup = study.train_support_models(_tiny(), (0, 1), 4, images=_images(16), labels=_lab(16), **TRAIN)
    assert sorted(p.stem for p in (tmp_path / "gad").glob("*.pt")) == sorted(sup.keys)


# ----------------------------------------------------------------------------------------------
# fusion
# ----------------------------------------------------------------------------------------------


def test_top_q_counts_and_breaks_ties_by_index():
    sal = torch.tensor([[3.0, 1.0, 1.0, 1.0, -2.0]]).view(1, 1, 1, 5)
    assert fusion.top_q(sal, 0.4).view(-1).tolist() == [True, True, False, False, False]
    assert fusion.top_q(sal, 0.01).sum() == 1  # at least one pixel
    assert fusion.top_q(sal, 1.0).all()


def test_top_q_per_image_and_q_tied_to_the_object():
    sal = torch.arange(2 * 16, dtype=torch.float32).view(2, 1, 4, 4)
    top = fusion.top_q(sal, torch.tensor([0.25, 0.5]))
    assert top.flatten(1).sum(1).tolist() == [4, 8]
    assert torch.equal(top[0], fusion.top_q(sal[:1], 0.25)[0])  # the same rule as a number
    masks = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    masks[0, 0, :1] = True       # 4 of 16 pixels
    masks[1, 0, :3, :2] = True   # 6 of 16
    q = study.resolve_q("object", masks)
    assert q.tolist() == [0.25, 6 / 16]
    assert study.resolve_q(0.1) == 0.1
    assert fusion.top_q(sal, q).flatten(1).sum(1).tolist() == [4, 6]


def test_fusion_keeps_only_consistent_features():
    # 10 pixels, q = 0.3 -> top 3 of each map; pixels 0 and 5 are in both top sets
    a1 = torch.tensor([9.0, 8.0, 0.0, 0.0, 0.0, 7.0, 0.0, 0.0, 0.0, -10.0]).view(1, 1, 2, 5)
    a2 = torch.tensor([2.0, 0.0, 0.0, 0.0, 0.0, 4.0, 3.0, 0.0, 0.0, 0.0]).view(1, 1, 2, 5)
    sal, support = fusion.fuse([a1, a2], q=0.3)
    assert support.view(-1).nonzero().view(-1).tolist() == [0, 5]
    expected = torch.zeros(10)
    expected[0] = (9 / 10 + 2 / 4) / 2  # normalised by max|A_j|: 10 and 4
    expected[5] = (7 / 10 + 4 / 4) / 2
    torch.testing.assert_close(sal.view(-1), expected)


def test_gad_explain_with_identical_models_is_the_normalised_baseline():
    model, x = _tiny(), _images(3)
    base = fusion.baseline_explain("input_x_gradient", model, x, 0)
    res = fusion.gad_explain("input_x_gradient", [model, model], x, 0)
    assert torch.equal(res.support, base.support)
    torch.testing.assert_close(res.sal, fusion.normalise(base.sal) * base.support)
    assert res.maps.shape == (2, 3, 1, H, W)
    wrapped = fusion.gad("input_x_gradient", [model, model])
    torch.testing.assert_close(wrapped(model, x, 0), res.sal)


# ----------------------------------------------------------------------------------------------
# ratios
# ----------------------------------------------------------------------------------------------


def _block(r0: int, r1: int, c0: int, c1: int) -> torch.Tensor:
    s = torch.zeros(1, 1, H, W, dtype=torch.bool)
    s[..., r0:r1, c0:c1] = True
    return s


def _toy_ratio_model():
    # margin z_t - z_o = sum_{h,w} d[h,w] * x[0,h,w] with d = 1 on the left half, 2 on the right
    d = torch.ones(H, W)
    d[:, W // 2 :] = 2.0
    weight = torch.zeros(2, 3, H, W)
    weight[0, 0] = d
    return _linear_classifier(weight)


def test_rc_of_identical_supports_is_one_and_of_a_subset_below_one():
    model, x = _toy_ratio_model(), torch.full((1, 3, H, W), 0.5)
    s0 = _block(2, 8, 1, 5)
    same = ratios.gad_ratios(model, x, 0, 1, s0, s0)
    assert same.rc[0] == 1.0 and same.rs[0] == pytest.approx(1.0)
    sub = ratios.gad_ratios(model, x, 0, 1, _block(3, 6, 2, 4), s0)
    assert sub.rc[0] < 1.0
    assert sub.rc[0] == pytest.approx((3 * 2) / (6 * 4))


def test_rs_on_a_linear_model_in_closed_form():
    model = _toy_ratio_model()
    x = torch.full((1, 3, H, W), 0.5)
    s0 = _block(0, 4, 0, 4)        # left half: d = 1, 16 pixels
    s_gad = _block(5, 7, 7, 10)    # right half: d = 2, 6 pixels
    assert torch.equal(ratios.convex_hull(s0), s0) and torch.equal(ratios.convex_hull(s_gad), s_gad)
    r = ratios.gad_ratios(model, x, 0, 1, s_gad, s0, remover="gray")
    # gray fills 0 (the classifier's mean), so the margin drop is sum_hull d * 0.5
    assert r.delta_0[0] == pytest.approx(16 * 1 * 0.5)
    assert r.delta_gad[0] == pytest.approx(6 * 2 * 0.5)
    assert r.area_0[0] == pytest.approx(16 / (H * W))
    assert r.rc[0] == pytest.approx(6 / 16)
    assert r.rs[0] == pytest.approx((6 * 2 * 0.5 / 6) / (16 * 1 * 0.5 / 16))  # = 2
    assert not r.empty[0]


def test_empty_supports_are_counted_and_excluded_and_lines_are_their_own_hull():
    model, x = _toy_ratio_model(), torch.full((3, 3, H, W), 0.5)
    sup = torch.zeros(3, 1, H, W, dtype=torch.bool)
    sup[0, 0, 3, 2:9] = True           # one line of pixels: no 2-D hull, the line is its hull
    sup[1, 0, 2:4, 2:4] = True         # a 2x2 square
    s0 = _block(2, 8, 1, 5).expand(3, -1, -1, -1)   # image 2: an empty GAD support
    assert ratios.is_empty(sup).tolist() == [False, False, True]
    assert torch.equal(ratios.convex_hull(sup), sup)
    r = ratios.gad_ratios(model, x, 0, 1, sup, s0)
    assert r.empty.tolist() == [False, False, True]
    assert r.rc[0] == pytest.approx(7 / 24) and r.rc[1] == pytest.approx(4 / 24)
    assert np.isnan(r.rc[2]) and np.isnan(r.rs[2])
    assert r.regions_gad.tolist() == [1, 1, 0] and r.regions_0.tolist() == [1, 1, 1]


def test_one_hull_per_connected_region():
    # two 3x3 blocks in opposite corners: one hull over both would bridge the image diagonal
    s = _block(0, 3, 0, 3) | _block(9, 12, 9, 12)
    hull = ratios.convex_hull(s)
    assert torch.equal(hull, s), "each block is convex: the hulls are the blocks themselves"
    assert ratios.regions(s).tolist() == [2]
    # an L of 5 pixels is one region (8-connectivity joins the diagonal step too); its hull fills
    # the corner, and a diagonal neighbour belongs to the same region
    ell = torch.zeros(1, 1, H, W, dtype=torch.bool)
    ell[0, 0, 2:5, 2] = True
    ell[0, 0, 4, 2:5] = True
    ell[0, 0, 5, 5] = True
    assert ratios.regions(ell).tolist() == [1]
    h = ratios.convex_hull(ell)
    assert bool((h >= ell).all()) and int(h.sum()) > int(ell.sum())
    assert not bool(h[0, 0, 0, 0]) and not bool(h[0, 0, 8:, :].any())


def test_gad_table_is_deterministic_and_long(tmp_path):
    model, x = _tiny(), _images(3, seed=1)
    sup = study.train_support_models(model, (0, 1), 4, images=_images(16), labels=_lab(16), cache_dir=tmp_path,
                                   **TRAIN)
    t = torch.tensor([0, 1, 0])
    o = 1 - t
    kw = {"smoothgrad": {"n_samples": 3}}
    run1 = study.gad_table(model, x, t, o, {4: sup}, ["saliency", "smoothgrad"], method_kwargs=kw)
    run2 = study.gad_table(model, x, t, o, {4: sup}, ["saliency", "smoothgrad"], method_kwargs=kw)
    # paper names (kit.attributors.METHODS) work too, with a profile's budgets
    named = study.gad_table(model, x, t, o, {4: sup}, ["Saliency", "SmoothGrad"], profile="cheap",
                          method_kwargs={"SmoothGrad": {"n_samples": 3}})
    assert named.per_image["value"].tolist() == run1.per_image["value"].tolist()
    assert set(named.per_image["method"]) == {"Saliency", "SmoothGrad"}
    assert list(run1.per_image.columns) == ["image", "method", "alpha", "metric", "value"]
    assert len(run1.per_image) == 2 * 2 * 3  # methods x metrics x images
    assert run1.per_image.equals(run2.per_image)
    assert set(run1.results) == {("saliency", 0.0), ("saliency", 4.0), ("smoothgrad", 0.0),
                                 ("smoothgrad", 4.0)}
    assert run1.diagnostics["n_images"].tolist() == [3, 3]
    assert ((run1.diagnostics["hull_area_0"] > 0) & (run1.diagnostics["hull_area_0"] <= 1)).all()
    assert list(run1.hulls.columns) == list(run1.per_image.columns)
    assert len(run1.hulls) == 2 * len(study.HULL_METRICS) * 3  # methods x metrics x images
    # hulls contain their support: area >= |S| / hw, per image
    for (m, a), res in run1.results.items():
        if a > 0:
            sel = (run1.hulls["method"] == m) & (run1.hulls["metric"] == "hull_area_gad")
            area = run1.hulls.loc[sel, "value"]
            assert (area.to_numpy() >= res.support.flatten(1).float().mean(1).numpy()).all()


def test_bias_only_control_has_ratios_exactly_one_where_distancing_does_not(tmp_path):
    model, x = _tiny(), _images(6, seed=2)
    t = _lab(6)
    sup = study.train_support_models(model, (0, 1), 6, images=_images(32), labels=_lab(32),
                                     cache_dir=tmp_path, **{**TRAIN, "epochs": 10})
    bias = study.bias_only_control(model, (0, 1), 6)
    assert bias.kind == "bias only" and len(bias.models) == 1
    # the copy differs only in the output bias, by (alpha/2)(e_a - e_b)
    s0, s1 = _state(model), _state(bias.models[0])
    assert [k for k in s0 if not torch.equal(s0[k], s1[k])] == ["net.5.bias"]
    torch.testing.assert_close(s1["net.5.bias"] - s0["net.5.bias"], torch.tensor([3.0, -3.0, 0.0]))
    methods = ["saliency", "input_x_gradient", "integrated_gradients"]
    run = study.gad_table(model, x, t, 1 - t, {6: sup}, methods, q=0.25, bias_control=bias,
                          method_kwargs={"integrated_gradients": {"steps": 8}})
    tab = run.per_image
    for m in methods:
        ctrl = tab[tab["method"] == m + study.BIAS_SUFFIX]
        assert len(ctrl) == 2 * 6 and set(ctrl["alpha"]) == {6.0}
        assert (ctrl["value"] == 1.0).all(), ctrl  # exactly: the maps are the baseline's
    # ...while the trained (distanced) copies change the maps, so the same test can fail
    real = tab[(tab["method"].isin(methods)) & (tab["alpha"] == 6.0)]
    assert (real["value"] != 1.0).any()
    assert set(run.hulls["metric"]) == set(study.HULL_METRICS)
    assert run.diagnostics["q"].tolist() == [0.25] * 6


def test_fusion_only_control_rows(tmp_path):
    model, x = _tiny(), _images(3, seed=1)
    data = _images(16)
    sup = study.train_support_models(model, (0, 1), 4, images=data, labels=_lab(data), cache_dir=tmp_path, **TRAIN)
    ctrl = study.train_support_models(model, (0, 1), 0, images=data, labels=_lab(data), cache_dir=tmp_path, **TRAIN)
    run = study.gad_table(model, x, 0, 1, {4: sup}, ["saliency"], control=ctrl)
    name = "saliency" + study.CONTROL_SUFFIX
    assert set(run.per_image["method"]) == {"saliency", name}
    assert set(run.per_image.query("method == @name")["alpha"]) == {0.0}
    assert (name, 0.0) in run.results and ("saliency", 0.0) in run.results
    with pytest.raises(ValueError, match="control must be the SupportModels of copies trained at"):
        study.gad_table(model, x, 0, 1, {4: sup}, ["saliency"], control=sup)


# ----------------------------------------------------------------------------------------------
# bad inputs
# ----------------------------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors(tmp_path):
    model, x = _tiny(), _images(4)
    with pytest.raises(ValueError, match="alpha must be"):
        study.distanced_targets(torch.zeros(2, 3), torch.tensor([0, 1]), 0, 1, -1)
    with pytest.raises(ValueError, match="labels must be given with images"):
        study.train_support_models(model, (0, 1), 2, images=x, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="q must be a number in \\(0, 1\\] or 'object'"):
        study.resolve_q("nope")
    with pytest.raises(ValueError, match="q='object' needs masks"):
        study.resolve_q("object")
    with pytest.raises(ValueError, match="one per image"):
        fusion.top_q(torch.zeros(2, 1, 4, 4), torch.tensor([0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match="bias_control must be the output of bias_only_control"):
        study.gad_table(model, x, 0, 1, {2: study.bias_only_control(model, (0, 1), 2)},
                        ["saliency"], bias_control=study.train_support_models(
                            model, (0, 1), 2, images=x, labels=_lab(x), cache_dir=tmp_path,
                            **TRAIN))
    with pytest.raises(ValueError, match="two different classes"):
        study.train_support_models(model, (1, 1), 2, images=x, labels=_lab(x), cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"classes must be in \[0, 2\]"):
        study.train_support_models(model, (0, 5), 2, images=x, labels=_lab(x), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        study.train_support_models(model, (0, 1), 2, images=x, labels=_lab(x), k=0, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="lr must be"):
        study.train_support_models(model, (0, 1), 2, images=x, labels=_lab(x), lr=0, cache_dir=tmp_path)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        study.train_support_models("world", (0, 1), 2, images=x, labels=_lab(x))
    with pytest.raises(ValueError, match=r"q must be a number in \[0, 1\]"):
        fusion.top_q(torch.zeros(1, 1, 4, 4), 1.5)
    with pytest.raises(ValueError, match=r"q must be a number in \(0, 1\]"):
        fusion.top_q(torch.zeros(1, 1, 4, 4), 0)
    with pytest.raises(ValueError, match="valid names"):
        fusion.baseline_explain("nope", model, x, 0)
    with pytest.raises(ValueError, match="maps must be a non-empty list"):
        fusion.fuse([])
    with pytest.raises(ValueError, match=r"maps\[1\] has shape"):
        fusion.fuse([torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 5, 5)])
    with pytest.raises(ValueError, match="support_gad must have shape"):
        ratios.gad_ratios(model, x, 0, 1, torch.ones(4, 1, 6, 6, dtype=torch.bool),
                       torch.ones(4, 1, H, W, dtype=torch.bool))
    with pytest.raises(ValueError, match="other must differ from target"):
        ratios.gad_ratios(model, x, 0, 0, torch.ones(4, 1, H, W, dtype=torch.bool),
                       torch.ones(4, 1, H, W, dtype=torch.bool))
    sup = study.train_support_models(model, (0, 1), 2, images=x, labels=_lab(x), cache_dir=tmp_path, **TRAIN)
    with pytest.raises(ValueError, match="alpha 0 is the baseline"):
        study.gad_table(model, x, 0, 1, {0: sup}, ["saliency"])
    with pytest.raises(ValueError, match="valid names"):
        study.gad_table(model, x, 0, 1, {2: sup}, ["saliency", "nope"])
    with pytest.raises(ValueError, match="unknown profile 'nope'; valid names"):
        study.gad_table(model, x, 0, 1, {2: sup}, ["saliency"], profile="nope")
    with pytest.raises(ValueError, match="not in methods"):
        study.gad_table(model, x, 0, 1, {2: sup}, ["saliency"],
                      method_kwargs={"smoothgrad": {"n_samples": 2}})


def test_plots_draw_the_run(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kit import report
    from kit.viz import gad as plots

    model, x = _tiny(), _images(3, seed=1)
    sup = study.train_support_models(model, (0, 1), 4, images=_images(16), labels=_lab(16), cache_dir=tmp_path,
                                     **TRAIN)
    run = study.gad_table(model, x, 0, 1, {4: sup}, ["saliency"])
    summary = report.summarize(run.per_image, ratios.HIGHER_IS_BETTER, by=("method", "alpha"))
    fig = plots.plot_maps(x, run.results, "saliency", n=2)
    assert len(fig.axes) == 2 * 3  # images x (image, no GAD, α = 4)
    fig2 = plots.plot_ratios(summary)
    assert [ax.get_title().split()[0] for ax in fig2.axes] == ["RC", "RS"]
    with pytest.raises(ValueError, match="not in results"):
        plots.plot_maps(x, run.results, "nope")
    table = study.margin_table(model, [sup, study.bias_only_control(model, (0, 1), 4)], x,
                               _lab(3))
    fig3 = plots.plot_margins(study.margin_summary(table))
    assert len(fig3.axes) == 2  # one panel per class
    with pytest.raises(ValueError, match="margin_summary"):
        plots.plot_margins(summary)
    plt.close("all")
