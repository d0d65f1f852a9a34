"""Perturbation attributors (sliding patch, LIME, RISE) and their masks (methods.md §1.2, §3.1,
§3.2, §3.7): oracles on the toy models, closed forms, and the reference implementations as oracles
(Captum ``Occlusion`` for SP, the ``lime`` package for LIME, skimage's resize for RISE's masks)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kit.attributors import ATTRIBUTORS, get_attributor, lime, rise, sliding_patch
from kit.attributors.lime import LimeResult, lime_explain, lime_samples, lime_weights
from kit.masks import (
    RiseMasks,
    grid_shape,
    rise_masks,
    sliding_windows,
    superpixels,
    upsample,
    window_masks,
)
from kit.models import Classifier, Inpainter
from kit.removers import Gray, Inpaint

TARGETS = torch.tensor([0, 2])
COLOR = (0.3, 0.45, 0.6)
"""A gray colour that is not the toy models' mean (0), so baseline mix-ups show."""


def assert_close(a, b, rtol=1e-5, atol=1e-6):
    torch.testing.assert_close(a.float(), b.float(), rtol=rtol, atol=atol)


def smooth_images(n: int = 2, size: int = 32) -> torch.Tensor:
    """Structured images (colour ramps plus blobs): SLIC finds many superpixels in them."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    out = []
    for i in range(n):
        blob = torch.exp(-((yy - 0.3 - 0.3 * i) ** 2 + (xx - 0.6) ** 2) / 0.02)
        img = torch.stack([yy, xx, (1 - yy) * 0.5 + 0.5 * blob])
        out.append(img.flip(-1) if i % 2 else img)
    return torch.stack(out).clamp(0, 1)


def square_image(model) -> torch.Tensor:
    """Dim textured background, bright patch_model square: the evidence is in the square."""
    g = torch.Generator().manual_seed(3)
    x = 0.2 + 0.05 * torch.rand(1, 3, 32, 32, generator=g)
    x[:, :, model.net.square[0], model.net.square[1]] = 0.9
    return x


def in_square(model, flat_index: int, size: int = 32) -> bool:
    return bool(model.net.inside().flatten()[flat_index])


# ---------------------------------------------------------------------------------- masks


def brute_force_coverage(grid: torch.Tensor, size: int, window: int, stride: int):
    """Pixel u: mean of grid values of the patches covering u (from the keep-masks), margins
    copying the nearest covered pixel."""
    keep = sliding_windows(size, window, stride, dtype=torch.float64)  # (K,1,H,W)
    cover = 1 - keep[:, 0]
    vals = grid.reshape(grid.shape[0], -1).double()  # (N,K)
    total = torch.einsum("nk,khw->nhw", vals, cover)
    count = cover.sum(0)
    ext = (grid.shape[-1] - 1) * stride + window
    idx = torch.arange(size).clamp(max=ext - 1)
    return (total / count)[:, idx][:, :, idx].unsqueeze(1)


@pytest.mark.parametrize("size, window, stride", [(32, 8, 2), (32, 8, 4), (32, 5, 3), (30, 7, 3),
                                                  (32, 8, 8), (12, 12, 1)])
def test_coverage_upsample_equals_brute_force(size, window, stride):
    n = grid_shape(size, window, stride)
    grid = torch.randn(2, 1, *n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = upsample(grid, size, mode="coverage", window=window, stride=stride)
    assert out.shape == (2, 1, size, size) and out.dtype == torch.float64
    assert_close(out, brute_force_coverage(grid, size, window, stride))


@pytest.mark.parametrize("size, window, stride", [(32, 8, 2), (33, 8, 2), (64, 8, 3), (29, 29, 3)])
def test_coverage_upsample_of_constant_grid_is_constant(size, window, stride):
    grid = torch.full((1, 1, *grid_shape(size, window, stride)), 0.7)
    out = upsample(grid, size, mode="coverage", window=window, stride=stride)
    assert out.shape == (1, 1, size, size)
    assert_close(out, torch.full_like(out, 0.7))


def test_bilinear_and_nearest_are_torch_interpolate():
    sal = torch.rand(2, 1, 7, 7)
    assert_close(upsample(sal, 28), F.interpolate(sal, size=(28, 28), mode="bilinear",
                                                  align_corners=False))
    assert_close(upsample(sal, (14, 21), mode="nearest"),
                 F.interpolate(sal, size=(14, 21), mode="nearest"))


def test_upsample_bad_arguments():
    sal = torch.rand(1, 1, 13, 13)
    with pytest.raises(ValueError, match="mode"):
        upsample(sal, 32, mode="bicubic")
    with pytest.raises(ValueError, match="window= and stride="):
        upsample(sal, 32, mode="coverage")
    with pytest.raises(ValueError, match="only used by mode='coverage'"):
        upsample(sal, 32, window=8, stride=2)
    with pytest.raises(ValueError, match=r"expected \(10, 10\)"):
        upsample(sal, 32, mode="coverage", window=5, stride=3)
    with pytest.raises(ValueError, match="stride <= window"):
        upsample(torch.rand(1, 1, 3, 3), 32, mode="coverage", window=4, stride=14)
    with pytest.raises(ValueError, match="sal"):
        upsample(sal[0], 32)


@pytest.mark.parametrize("size, window, stride", [(32, 8, 2), (33, 8, 3), ((32, 24), 6, 4)])
def test_sliding_windows_counts_and_positions(size, window, stride):
    keep = sliding_windows(size, window, stride)
    n_h, n_w = grid_shape(size, window, stride)
    H, W = (size, size) if isinstance(size, int) else size
    assert (n_h, n_w) == ((H - window) // stride + 1, (W - window) // stride + 1)
    assert keep.shape == (n_h * n_w, 1, H, W) and keep.dtype == torch.float32
    assert set(keep.unique().tolist()) == {0.0, 1.0}
    assert ((1 - keep).sum((1, 2, 3)) == window * window).all()  # one full patch per mask
    for k in (0, n_w + 1, n_h * n_w - 1):  # row-major, top-left at (r*s, c*s)
        r, c = divmod(k, n_w)
        hole = (keep[k, 0] == 0).nonzero()
        assert hole.min(0).values.tolist() == [r * stride, c * stride]
    assert torch.equal(window_masks(size, window, stride, torch.tensor([3, 1])), keep[[3, 1]])


def test_window_larger_than_image_names_window_and_size():
    with pytest.raises(ValueError, match=r"window=40.*32x32"):
        sliding_windows(32, 40, 2)


def test_superpixels_are_slic_with_consecutive_labels():
    from skimage.segmentation import slic

    x = smooth_images()
    seg = superpixels(x, n_segments=20, compactness=30, sigma=1.0)
    assert seg.shape == (2, 32, 32) and seg.dtype == torch.long
    for i in range(2):
        labels = seg[i].unique()
        assert torch.equal(labels, torch.arange(len(labels)))  # 0..K-1, no gaps
        img = (x[i].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        ref = slic(img, n_segments=20, compactness=30.0, sigma=1.0, start_label=0)
        assert np.array_equal(seg[i].numpy(), ref)
    assert torch.equal(seg, superpixels(x, n_segments=20, compactness=30, sigma=1.0))


def skimage_rise_masks(masks: RiseMasks) -> torch.Tensor:
    """RISE's own recipe (skimage resize, order 1, reflect) on the same grids and shifts."""
    from skimage.transform import resize

    H, W = masks.size
    up = ((masks.s + 1) * masks.cell[0], (masks.s + 1) * masks.cell[1])
    out = []
    for g, (dy, dx) in zip(masks.grid.numpy(), masks.shifts.tolist(), strict=True):
        big = resize(g, up, order=1, mode="reflect", anti_aliasing=False)
        out.append(torch.from_numpy(big[dy : dy + H, dx : dx + W].copy()))
    return torch.stack(out).unsqueeze(1)


@pytest.mark.parametrize("size, s", [(32, 7), (64, 7), ((30, 40), 4)])
def test_rise_masks_match_the_skimage_recipe(size, s):
    masks = RiseMasks(20, size, s=s, p=0.5, seed=3)
    assert_close(masks.build(torch.arange(20), dtype=torch.float64), skimage_rise_masks(masks))


def test_rise_masks_seeded_and_global_rng_untouched():
    state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()  # noqa: NPY002
    a = rise_masks(50, 32, s=7, p=0.5, seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert np.array_equal(np.random.get_state()[1], np_state)  # noqa: NPY002
    assert a.shape == (50, 1, 32, 32) and a.dtype == torch.float32
    assert torch.equal(a, rise_masks(50, 32, s=7, p=0.5, seed=0))
    assert not torch.equal(a, rise_masks(50, 32, s=7, p=0.5, seed=1))
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(RiseMasks(50, 32, seed=0)[10:20], a[10:20])  # batches = slices of all
    assert abs(rise_masks(400, 32, s=7, p=0.3, seed=0).mean().item() - 0.3) < 0.03


# ---------------------------------------------------------------------------------- SP


def test_sp_oracle_patch_model(patch_model):
    x = square_image(patch_model)
    sal = sliding_patch(patch_model, x, 0, window=4, stride=2)
    assert sal.shape == (1, 1, 15, 15)
    # only patches that overlap the square (rows/cols 8..15) change the score
    n = torch.arange(15) * 2
    overlaps = ((n + 4 > 8) & (n < 16))
    touching = overlaps[:, None] & overlaps[None, :]
    assert (sal[0, 0][~touching] == 0).all() and (sal[0, 0][touching] > 0).all()
    pix = upsample(sal, 32, mode="coverage", window=4, stride=2)
    assert in_square(patch_model, int(pix.flatten().argmax()))


def test_sp_linear_model_closed_form(linear_model, images):
    """score='logit', gray fill c: A[r,c] = sum over the patch of W_t * (x - c)."""
    sal = sliding_patch(linear_model, images, TARGETS, remover=Gray(COLOR), window=8, stride=4,
                        score="logit")
    w = linear_model.net.weights()[TARGETS].double()  # (N,3,H,W)
    contrib = (w * (images.double() - torch.tensor(COLOR).view(1, 3, 1, 1))).sum(1, keepdim=True)
    keep = sliding_windows(32, 8, 4, dtype=torch.float64)
    ref = torch.einsum("nhw,khw->nk", contrib[:, 0], 1 - keep[:, 0]).reshape(2, 1, 7, 7)
    assert_close(sal, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("window, stride", [(8, 2), (8, 4), (6, 2), (5, 3), (32, 1)])
@pytest.mark.parametrize("color", [None, COLOR])
def test_sp_equals_captum_occlusion(tiny_cnn, images, window, stride, color):
    """Gray SP + coverage upsampling == Captum Occlusion on the softmax with a constant baseline
    (geometries with (H - window) % stride == 0: both place the same windows, pitfall 18)."""
    from captum.attr import Occlusion

    assert (32 - window) % stride == 0
    remover = "gray" if color is None else Gray(color)
    c = tiny_cnn.mean if color is None else color
    sal = sliding_patch(tiny_cnn, images, TARGETS, remover=remover, window=window, stride=stride)
    pix = upsample(sal, 32, mode="coverage", window=window, stride=stride)
    baseline = torch.tensor(c).view(1, 3, 1, 1).expand(1, 3, 32, 32)
    occ = Occlusion(lambda z: tiny_cnn(z).softmax(1)).attribute(
        images, target=TARGETS, sliding_window_shapes=(3, window, window),
        strides=(3, stride, stride), baselines=baseline, perturbations_per_eval=64)
    assert torch.equal(occ[:, :1], occ[:, 1:2])  # one value per pixel across channels
    assert_close(pix, occ[:, :1])


def test_sp_captum_grid_differs_when_not_divisible(tiny_cnn, images):
    """(32 - 8) % 5 != 0: GAM/kit place 5 positions per axis, Captum ceil -> 6 (last truncated),
    so the maps are not comparable there (pitfall 18); the kit maps the margin by replication."""
    sal = sliding_patch(tiny_cnn, images, TARGETS, window=8, stride=5)
    assert sal.shape[-2:] == (5, 5)
    pix = upsample(sal, 32, mode="coverage", window=8, stride=5)
    assert torch.equal(pix[..., 28:, :], pix[..., 27:28, :].expand_as(pix[..., 28:, :]))


def test_sp_defaults_resolve_from_image_size(tiny_cnn):
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    sal = sliding_patch(tiny_cnn, x, 1, batch_size=256)
    assert sal.shape == (1, 1, 29, 29)  # 64: window 8, stride 2
    assert torch.equal(sal, sliding_patch(tiny_cnn, x, 1, window=8, stride=2, batch_size=256))


class CountingNet(nn.Module):
    """Wraps a net and records the batch size of every forward call."""

    def __init__(self, net):
        super().__init__()
        self.inner = net
        self.calls: list[int] = []

    def forward(self, z):
        self.calls.append(z.shape[0])
        return self.inner(z)


def test_sp_batches_forward_passes(tiny_cnn, images):
    counting = Classifier(CountingNet(tiny_cnn.net), tiny_cnn.classes, (0, 0, 0), (1, 1, 1))
    sal = sliding_patch(counting, images, TARGETS, window=8, stride=2, batch_size=50)
    k = 13 * 13
    # one forward for the unperturbed images, then the engine streams all 2 * K (image, window)
    # composites in chunks of 50 that may span images (kit.engine.score_masks): ceil(2K / 50)
    assert counting.net.calls == [2] + [50] * 6 + [2 * k - 300]
    assert_close(sal, sliding_patch(tiny_cnn, images, TARGETS, window=8, stride=2,
                                    batch_size=k))


def test_sp_bad_inputs(tiny_cnn, images):
    with pytest.raises(ValueError, match=r"window=40.*32x32"):
        sliding_patch(tiny_cnn, images, TARGETS, window=40, stride=2)
    with pytest.raises(ValueError, match=r"unknown remover 'nope'.*gray"):
        sliding_patch(tiny_cnn, images, TARGETS, remover="nope", window=8, stride=8)
    with pytest.raises(ValueError, match="stride"):
        sliding_patch(tiny_cnn, images, TARGETS, window=8, stride=0)
    with pytest.raises(ValueError, match="margin is only used with local=True"):
        sliding_patch(tiny_cnn, images, TARGETS, window=8, stride=8, margin=2)
    with pytest.raises(ValueError, match="local=True.*'noise'"):
        sliding_patch(tiny_cnn, images, TARGETS, window=8, stride=8, remover="noise", local=True)


# -------------------------------------------------------------------- SP local inpainting


class LocalInpainter(Inpainter):
    """Normalised convolution: a hole pixel gets the mean of the known pixels within ``radius``
    (receptive field = radius, zero padding at the border for values and weights alike).
    Records the shape of every call."""

    name = "toy_local"

    def __init__(self, radius: int = 3):
        super().__init__()
        self.radius = radius
        self.shapes: list[tuple[int, ...]] = []

    def generate(self, images, hole):
        self.shapes.append(tuple(images.shape))
        known = 1 - hole
        k, r = 2 * self.radius + 1, self.radius
        num = F.avg_pool2d(images * known, k, stride=1, padding=r)
        den = F.avg_pool2d(known, k, stride=1, padding=r)
        return num / den.clamp_min(1e-12)


class GlobalInpainter(Inpainter):
    """Fills holes with the mean of all known pixels: not local at all."""

    name = "toy_global"

    def generate(self, images, hole):
        known = 1 - hole
        mean = (images * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True)
        return mean.expand_as(images)


@pytest.mark.parametrize("window, stride", [(4, 2), (8, 3)])
def test_sp_local_equals_full_for_a_local_inpainter(tiny_cnn, images, window, stride):
    full_inp, local_inp = LocalInpainter(radius=3), LocalInpainter(radius=3)
    full = sliding_patch(tiny_cnn, images, TARGETS, remover=Inpaint(model=full_inp),
                         window=window, stride=stride)
    local = sliding_patch(tiny_cnn, images, TARGETS, remover=Inpaint(model=local_inp),
                          window=window, stride=stride, local=True)
    assert_close(local, full, rtol=1e-5, atol=1e-6)
    assert not torch.equal(full, sliding_patch(tiny_cnn, images, TARGETS, window=window,
                                               stride=stride))  # the fill mattered
    # the inpainter saw crops of side window + 2 * margin (margin = window), not 32x32 images
    side = min(3 * window, 32)
    assert {s[-2:] for s in local_inp.shapes} == {(side, side)}
    assert {s[-2:] for s in full_inp.shapes} == {(32, 32)}
    assert sum(np.prod(s) for s in local_inp.shapes) < sum(np.prod(s) for s in full_inp.shapes)


def test_sp_local_exact_for_gray_and_approximate_for_a_global_inpainter(tiny_cnn, images):
    kw = {"window": 6, "stride": 2}
    assert_close(sliding_patch(tiny_cnn, images, TARGETS, local=True, **kw),
                 sliding_patch(tiny_cnn, images, TARGETS, **kw), rtol=0, atol=0)
    remover = Inpaint(model=GlobalInpainter())
    full = sliding_patch(tiny_cnn, images, TARGETS, remover=remover, **kw)
    local = sliding_patch(tiny_cnn, images, TARGETS, remover=remover, local=True, margin=2, **kw)
    assert not torch.allclose(local, full)  # less context, another fill: documented trade-off


# ---------------------------------------------------------------------------------- LIME


def test_lime_oracle_patch_model(patch_model):
    x = square_image(patch_model)
    # compactness 10: on this small image SLIC then follows the square's edges
    res = lime_explain(patch_model, x, 0, n_samples=300, n_segments=16, compactness=10,
                       sigma=0.0)
    seg, coef = res.segments[0], res.coef[0]
    inside = patch_model.net.inside()
    purity = torch.stack([inside[seg == k].float().mean() for k in range(len(coef))])
    assert ((purity == 0) | (purity == 1)).all()  # the oracle's premise
    assert (coef[purity == 1] > 0.01).all()  # every superpixel of the square is evidence
    assert (coef[purity == 0].abs() < 0.1 * coef[purity == 1].min()).all()  # the rest ~ 0
    assert in_square(patch_model, int(res.sal.flatten().argmax()))
    assert res.sal[0, 0][inside].mean() > 10 * res.sal[0, 0][~inside].abs().mean()


def test_lime_result_fields(tiny_cnn):
    x = smooth_images()
    res = lime_explain(tiny_cnn, x, TARGETS, n_samples=40, n_segments=20, sigma=1.0)
    assert isinstance(res, LimeResult)
    assert res.sal.shape == (2, 1, 32, 32) and res.sal.dtype == torch.float32
    assert res.segments.shape == (2, 32, 32)
    assert res.intercept.shape == (2,) and res.score.shape == (2,)
    for i in range(2):
        assert res.coef[i].shape == (int(res.segments[i].max()) + 1,)
        assert_close(res.sal[i, 0], res.coef[i][res.segments[i]])
    assert torch.equal(res.sal, lime(tiny_cnn, x, TARGETS, n_samples=40, n_segments=20,
                                     sigma=1.0))
    other = lime(tiny_cnn, x, TARGETS, n_samples=40, n_segments=20, sigma=1.0, seed=1)
    assert not torch.equal(res.sal, other)


def test_lime_samples_and_weights_are_stock_lime():
    z = lime_samples(50, 7, seed=4)
    ref = np.random.RandomState(4).randint(0, 2, 50 * 7).reshape(50, 7)
    ref[0] = 1
    assert np.array_equal(z, ref)
    from sklearn.metrics.pairwise import cosine_distances

    d = cosine_distances(z, np.ones((1, 7))).ravel()
    np.testing.assert_allclose(lime_weights(z, 0.25), np.sqrt(np.exp(-(d**2) / 0.25**2)))


@pytest.mark.parametrize("color", [None, COLOR])
def test_lime_equals_the_lime_package(tiny_cnn, color):
    """Same segments (segmentation_fn returns kit's), same samples (LimeImageExplainer's
    random_state = kit's seed; random_seed given so that no draw is spent on it), gray fill =
    hide_color, classifier_fn = the model's softmax: same coefficients, intercept and R^2."""
    lime_image = pytest.importorskip("lime.lime_image")
    x = smooth_images(1)
    remover = "gray" if color is None else Gray(color)
    c = tiny_cnn.mean if color is None else color
    res = lime_explain(tiny_cnn, x, 2, remover=remover, n_samples=120, n_segments=20, sigma=1.0,
                       seed=7)
    seg = res.segments[0].numpy()
    assert seg.max() + 1 >= 8

    def classifier_fn(batch):
        z = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float()
        with torch.no_grad():
            return tiny_cnn(z).softmax(1).numpy()

    explainer = lime_image.LimeImageExplainer(kernel_width=0.25, random_state=7)
    exp = explainer.explain_instance(
        x[0].permute(1, 2, 0).numpy(), classifier_fn, labels=(2,), top_labels=None,
        hide_color=c, num_samples=120, batch_size=32, segmentation_fn=lambda img: seg,
        random_seed=0)
    ref = np.zeros(seg.max() + 1)
    for k, v in exp.local_exp[2]:
        ref[k] = v
    np.testing.assert_allclose(res.coef[0].numpy(), ref, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(res.intercept[0].item(), exp.intercept[2], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(res.score[0].item(), exp.score, rtol=1e-4, atol=1e-6)


def test_lime_equals_lime_base_on_the_same_data(tiny_cnn):
    """LimeBase fed kit's samples, labels and cosine distances gives kit's coefficients."""
    lime_base = pytest.importorskip("lime.lime_base")
    x = smooth_images(1)
    res = lime_explain(tiny_cnn, x, 1, n_samples=80, n_segments=20, sigma=1.0, seed=2)
    seg = res.segments[0]
    z = lime_samples(80, int(seg.max()) + 1, seed=2)
    keep = torch.from_numpy(z).float()[:, seg].unsqueeze(1)
    gray = torch.tensor(tiny_cnn.mean).view(1, 3, 1, 1)
    with torch.no_grad():
        probs = tiny_cnn(x * keep + gray * (1 - keep)).softmax(1).double().numpy()
    from sklearn.metrics import pairwise_distances

    dist = pairwise_distances(z, z[0].reshape(1, -1), metric="cosine").ravel()
    base = lime_base.LimeBase(lambda d: np.sqrt(np.exp(-(d**2) / 0.25**2)), random_state=0)
    intercept, exp, score, _ = base.explain_instance_with_data(z, probs, dist, 1, 100000)
    ref = np.zeros(z.shape[1])
    for k, v in exp:
        ref[k] = v
    np.testing.assert_allclose(res.coef[0].numpy(), ref, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(res.intercept[0].item(), intercept, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------------- RISE


def test_rise_oracle_patch_model(patch_model):
    x = square_image(patch_model)
    sal = rise(patch_model, x, 0, n_masks=2000, batch_size=500)
    assert sal.shape == (1, 1, 32, 32)
    inside = patch_model.net.inside()
    assert in_square(patch_model, int(sal.flatten().argmax()))
    assert sal[0, 0][inside].mean() > sal[0, 0][~inside].mean()


def test_rise_is_the_normalised_weighted_mask_sum(linear_model, images):
    """S(u) = 1/(N p) sum_i f(R(x, M_i)) M_i(u), computed here in one go from rise_masks."""
    n, p = 96, 0.4
    sal = rise(linear_model, images, TARGETS, remover=Gray(COLOR), n_masks=n, s=5, p=p, seed=3,
               score="logit", batch_size=40)
    m = rise_masks(n, 32, s=5, p=p, seed=3, dtype=torch.float64)  # (n,1,H,W)
    c = torch.tensor(COLOR, dtype=torch.float64).view(1, 3, 1, 1)
    w = linear_model.net.weights().double()
    b = linear_model.net.fc.bias.double()
    for i, t in enumerate(TARGETS.tolist()):
        comp = images[i].double() * m + c * (1 - m)  # (n,3,H,W)
        f = (comp * w[t]).sum((1, 2, 3)) + b[t]
        ref = torch.einsum("k,khw->hw", f, m[:, 0]) / (n * p)
        assert_close(sal[i, 0], ref, rtol=1e-4, atol=1e-4)


class ConstantNet(nn.Module):
    def forward(self, z):
        return torch.tensor([[1.0, 0.0]]).expand(z.shape[0], 2)


def test_rise_normalisation_constant_model():
    """A model that ignores its input: S(u) = q * mean_i M_i(u) / p, which averages to q."""
    model = Classifier(ConstantNet(), ("a", "b"), (0, 0, 0), (1, 1, 1))
    q = torch.tensor([1.0, 0.0]).softmax(0)[0].item()
    sal = rise(model, torch.rand(1, 3, 32, 32), 0, n_masks=1000, p=0.25, batch_size=500)
    assert abs(sal.mean().item() - q) < 0.03 * q


def test_rise_and_lime_bad_arguments(tiny_cnn, images):
    with pytest.raises(ValueError, match=r"\bp\b"):
        rise(tiny_cnn, images, TARGETS, n_masks=8, p=0.0)
    with pytest.raises(ValueError, match="n_masks"):
        rise(tiny_cnn, images, TARGETS, n_masks=0)
    with pytest.raises(ValueError, match=r"unknown remover 'nope'"):
        rise(tiny_cnn, images, TARGETS, n_masks=8, remover="nope")
    with pytest.raises(ValueError, match=r"unknown remover 'nope'"):
        lime(tiny_cnn, images, TARGETS, n_samples=8, remover="nope")
    with pytest.raises(ValueError, match="kernel_width"):
        lime(tiny_cnn, images, TARGETS, n_samples=8, kernel_width=0)


# ---------------------------------------------------------------------- shared behaviour


@pytest.mark.parametrize("name", ["sliding_patch", "lime", "rise"])
def test_registered(name):
    assert name in ATTRIBUTORS and get_attributor(name).__name__ == name


CHEAP = {
    "sliding_patch": {"window": 8, "stride": 4},
    "lime": {"n_samples": 24, "n_segments": 10},
    "rise": {"n_masks": 32},
}


@pytest.mark.parametrize("name", list(CHEAP))
def test_inpaint_remover_and_progress(tiny_cnn, capsys, name):
    """-G variants run through the Inpaint adapter; progress=True draws a bar, False is silent."""
    fn = ATTRIBUTORS[name]
    images = smooth_images()  # several superpixels, so no LIME sample removes everything
    remover = Inpaint(model=LocalInpainter(radius=4))
    g = fn(tiny_cnn, images, TARGETS, remover=remover, **CHEAP[name])
    assert torch.isfinite(g).all()
    assert not torch.equal(g, fn(tiny_cnn, images, TARGETS, **CHEAP[name]))
    capsys.readouterr()
    fn(tiny_cnn, images, TARGETS, progress=True, **CHEAP[name])
    assert capsys.readouterr().err
    state = random.getstate()
    fn(tiny_cnn, images, TARGETS, **CHEAP[name])
    assert random.getstate() == state
