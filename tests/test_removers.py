"""Removers: the composite contract, properties (hypothesis), hole rule, registry, bad input."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kit import world
from kit.models import Inpainter
from kit.removers import (
    NS,
    REMOVERS,
    Blend,
    Blur,
    Gray,
    Inpaint,
    InpaintRemoval,
    Noise,
    Precomputed,
    Telea,
    TrueBackground,
    get_remover,
    hole_mask,
)


class ConstInpainter(Inpainter):
    """Stand-in generative model: fills holes with 0.25 and records what it was given."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def generate(self, images, hole):
        self.calls.append((images.shape[0], hole.clone()))
        return torch.full_like(images, 0.25)


def all_removers(bg=None):
    bg = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1)) if bg is None else bg
    return [
        Gray(color=(0.4, 0.5, 0.6)), Blur(sigma=2.0), Noise(seed=3), Telea(), NS(),
        Inpaint(model=ConstInpainter()), TrueBackground(bg), Precomputed(bg),
    ]


def rand(shape, seed):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("remover", all_removers(), ids=lambda r: r.name)
def test_keep_one_is_identity(remover):
    x = rand((2, 3, 16, 16), 0)
    assert torch.equal(remover(x, torch.ones(2, 1, 16, 16)), x)


@pytest.mark.parametrize("remover", all_removers(), ids=lambda r: r.name)
def test_shape_dtype_range_broadcast(remover):
    x = rand((1, 3, 16, 16), 0)
    keep = (rand((5, 1, 16, 16), 1) > 0.5).float()
    out = remover(x, keep)
    assert out.shape == (5, 3, 16, 16) and out.dtype == x.dtype and out.device == x.device
    assert out.min() >= 0 and out.max() <= 1
    # one image against 5 masks equals the image repeated 5 times
    assert torch.allclose(out, remover(x.expand(5, -1, -1, -1).clone(), keep))
    # kept pixels are the original ones
    k = keep.bool().expand_as(out)
    assert torch.equal(out[k], x.expand_as(out)[k])


@pytest.mark.parametrize("remover", [Gray(color=(0.1, 0.2, 0.3)), Noise(seed=1)], ids=str)
@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_keep_zero_fill_independent_of_pixels(remover, seed):
    a, b = rand((2, 3, 8, 8), seed), rand((2, 3, 8, 8), seed + 1)
    zero = torch.zeros(2, 1, 8, 8)
    assert torch.equal(remover(a, zero), remover(b, zero))


@settings(max_examples=25, deadline=None)
@given(alpha=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_soft_masks_interpolate(alpha, seed):
    x = rand((1, 3, 8, 8), seed)
    for r in (Gray(color=(0.5, 0.2, 0.9)), Blur(sigma=1.0), Noise(seed=2)):
        full = r(x, torch.zeros(1, 1, 8, 8))
        soft = r(x, torch.full((1, 1, 8, 8), alpha))
        assert torch.allclose(soft, alpha * x + (1 - alpha) * full, atol=1e-6)


def test_noise_seeded_and_batch_consistent():
    x = rand((3, 3, 8, 8), 0)
    keep = torch.zeros(3, 1, 8, 8)
    assert torch.equal(Noise(seed=4)(x, keep), Noise(seed=4)(x, keep))
    assert not torch.equal(Noise(seed=4)(x, keep), Noise(seed=5)(x, keep))
    assert torch.equal(Noise(seed=4)(x[1:2], keep[1:2]), Noise(seed=4)(x, keep)[1:2])
    state = torch.random.get_rng_state()
    Noise(seed=4)(x, keep)
    assert torch.equal(state, torch.random.get_rng_state())  # global RNG untouched


def test_blur_is_a_gaussian_blur():
    x = torch.zeros(1, 3, 21, 21)
    x[..., 10, 10] = 1
    out = Blur(sigma=2.0).fill(x, torch.zeros(1, 1, 21, 21))
    assert torch.isclose(out.sum(), torch.tensor(3.0), atol=1e-3)  # mass preserved
    assert out[0, 0, 10, 10] == out.max() and torch.allclose(out, out.flip(-1))


def test_oracle_returns_true_background():
    b = world.sample(4, seed=0, split="test")
    keep = 1 - b.masks.float()
    out = TrueBackground(b.backgrounds)(b.images, keep)
    assert torch.equal(out, b.backgrounds)


def test_hole_rule_matches_gam():
    keep = torch.tensor([0.1, 0.3, 0.6, 0.9]).view(1, 1, 2, 2)
    # tau = max(0.5, (0.9 + 0.1) / 2) = 0.5
    assert hole_mask(keep).flatten().tolist() == [1, 1, 0, 0]
    keep2 = torch.tensor([0.5, 0.7, 0.8, 1.0]).view(1, 1, 2, 2)
    # tau = max(0.5, 0.75) = 0.75
    assert hole_mask(keep2).flatten().tolist() == [1, 1, 0, 0]
    both = torch.cat([keep, keep2])
    assert hole_mask(both, "per_mask").flatten().tolist() == [1, 1, 0, 0, 1, 1, 0, 0]
    assert hole_mask(both, "gam").flatten().tolist() == [1, 1, 0, 0, 1, 0, 0, 0]  # tau 0.55


def test_inpaint_passes_hole_polarity_and_batches():
    inp = ConstInpainter()
    r = Inpaint(model=inp, batch_size=2)
    x = rand((1, 3, 8, 8), 0)
    keep = torch.ones(5, 1, 8, 8)
    keep[:, :, :4] = 0
    out = r(x, keep)
    assert [c[0] for c in inp.calls] == [2, 2, 1]  # chunked by batch_size
    assert torch.equal(inp.calls[0][1][0, 0, :4], torch.ones(4, 8))  # holes where keep == 0
    assert torch.all(out[:, :, :4] == 0.25) and torch.equal(out[:, :, 4:], x.expand(5, -1, -1, -1)[:, :, 4:])
    assert not r.differentiable and Gray.differentiable


def test_registry_and_get_remover():
    assert set(REMOVERS) == {"gray", "blur", "insertion_blur", "noise", "telea", "ns",
                             "noisy_linear", "inpaint",
                             "inpaint_removal", "oracle", "blend", "precomputed", "cached"}
    assert get_remover("blur", sigma=5).sigma == 5
    g = Gray(color=(0.1, 0.1, 0.1))
    assert get_remover(g) is g

    class M:
        mean = (0.485, 0.456, 0.406)

    assert get_remover("gray", model=M()).color == (0.485, 0.456, 0.406)
    with pytest.raises(ValueError, match="unknown remover 'grey'; valid names: gray, blur"):
        get_remover("grey")
    with pytest.raises(ValueError, match="bad options for remover 'blur'.*valid options"):
        get_remover("blur", radius=3)


@pytest.mark.parametrize(
    ("x", "keep", "exc", "match"),
    [
        (torch.rand(3, 8, 8), torch.ones(1, 1, 8, 8), ValueError, r"x must have shape \(N,3,H,W\), got \(3, 8, 8\)"),
        (torch.rand(1, 1, 8, 8), torch.ones(1, 1, 8, 8), ValueError, r"x must have shape \(N,3,H,W\)"),
        ((torch.rand(1, 3, 8, 8) * 255).byte(), torch.ones(1, 1, 8, 8), TypeError, "x must be a float tensor"),
        (torch.rand(1, 3, 8, 8) * 255, torch.ones(1, 1, 8, 8), ValueError, r"x must be in \[0,1\]"),
        (torch.full((1, 3, 8, 8), float("nan")), torch.ones(1, 1, 8, 8), ValueError, "x contains NaN"),
        (torch.rand(2, 3, 8, 8), torch.ones(3, 1, 8, 8), ValueError, "keep's batch size 3 does not broadcast against x's 2"),
        (torch.rand(1, 3, 8, 8), torch.ones(1, 1, 4, 4), ValueError, r"keep must have shape \(M,1,8,8\)"),
        (torch.rand(1, 3, 8, 8), torch.full((1, 1, 8, 8), 2.0), ValueError, r"keep must be in \[0,1\]"),
    ],
)
def test_bad_input(x, keep, exc, match):
    with pytest.raises(exc, match=match):
        Gray(color=(0.5, 0.5, 0.5))(x, keep)


def test_bad_options():
    with pytest.raises(ValueError, match="sigma must be a positive number, got -1"):
        Blur(sigma=-1)
    with pytest.raises(ValueError, match=r"color must be 3 values in \[0,1\]"):
        Gray(color=(1, 2))
    with pytest.raises(ValueError, match="threshold must be 'gam', 'per_mask' or a float"):
        hole_mask(torch.ones(1, 1, 2, 2), "median")


def test_cached_remover_reuses_fills_and_matches_uncached():
    from kit.removers import Cached

    inp = ConstInpainter()
    plain = Inpaint(model=ConstInpainter())
    cached = Cached(Inpaint(model=inp), max_items=8)
    x = rand((1, 3, 8, 8), 0)
    keep = rand((4, 1, 8, 8), 1)  # soft masks: the GAM threshold is applied over the whole call
    first = cached(x, keep)
    assert torch.equal(first, plain(x, keep))
    assert cached.stats == {"hits": 0, "misses": 4} and len(cached) == 4
    n_calls = len(inp.calls)
    again = cached(x, keep)
    assert torch.equal(again, first) and len(inp.calls) == n_calls  # no new inpainter call
    assert cached.stats["hits"] == 4
    # duplicates inside one call are filled once; the store is bounded (LRU)
    cached.clear()
    cached(x, torch.cat([keep[:1]] * 3))
    assert cached.stats == {"hits": 2, "misses": 1}
    small = Cached(Inpaint(model=ConstInpainter()), max_items=2)
    small(x, keep)
    assert len(small) == 2
    assert not cached.differentiable and Cached(Gray(color=(0.5, 0.5, 0.5))).differentiable


def test_cached_remover_bad_options():
    from kit.removers import Cached

    with pytest.raises(ValueError, match="max_items must be an integer >= 1, got 0"):
        Cached(Gray(color=(0.5, 0.5, 0.5)), max_items=0)
    with pytest.raises(ValueError, match="already a Cached remover"):
        Cached(Cached(Gray(color=(0.5, 0.5, 0.5))))
    with pytest.raises(ValueError, match="unknown remover 'inpainting'"):
        Cached("inpainting")


@pytest.mark.parametrize("remover", [Telea(), NS()], ids=lambda r: r.name)
def test_opencv_with_nothing_kept_removes_everything(remover):
    # cv2.inpaint returns its input unchanged when the hole is the whole image; kit's OpenCV
    # removers must not hand the original image back as "everything removed".
    x = rand((3, 3, 16, 16), 0)
    keep = torch.ones(3, 1, 16, 16)
    keep[1] = 0  # image 1: nothing kept
    keep[2, :, 4:12, 4:12] = 0  # image 2: an ordinary hole
    out = remover(x, keep)
    assert torch.equal(out[1], Gray()(x[1:2], keep[1:2])[0])
    assert torch.equal(remover(rand((1, 3, 16, 16), 5), keep[1:2])[0], out[1])
    assert torch.equal(out[0], x[0])
    assert not torch.equal(out[2], Gray()(x[2:3], keep[2:3])[0])  # still OpenCV's fill


def test_resolver_size_model_and_backgrounds():
    """The one resolver: blur sigma from the image size, gray and the Telea/NS empty-hole fill
    from the explained model's mean, the oracle from per-image backgrounds (sliced by take)."""
    from kit.removers import TrueBackground

    assert get_remover("blur", size=64).sigma == 3.0
    assert get_remover("blur", size=(224, 224)).sigma == 10.0
    assert get_remover("blur", size=224, sigma=2).sigma == 2

    class M:
        mean = (0.485, 0.456, 0.406)

    assert get_remover("gray", model=M()).color == M.mean
    telea = get_remover("telea", model=M())
    x = torch.rand(2, 3, 8, 8)
    out = telea(x, torch.zeros(2, 1, 8, 8))  # nothing kept: the model's own mean, not the world's
    assert torch.allclose(out[:, :, 0, 0], torch.tensor(M.mean).expand(2, 3), atol=1e-6)

    with pytest.raises(ValueError, match="oracle.*backgrounds="):
        get_remover("oracle")
    bg = torch.rand(3, 3, 8, 8)
    oracle = get_remover("oracle", backgrounds=bg)
    assert isinstance(oracle, TrueBackground)
    one = oracle.take(torch.tensor([2]))
    assert torch.equal(one(x[:1], torch.zeros(1, 1, 8, 8)), bg[2:3])
    assert get_remover("gray").take(torch.tensor([0])) == get_remover("gray")
    with pytest.raises(ValueError, match="unknown remover 'nope'; valid names: gray"):
        get_remover("nope")


def test_removal_inpainter_rung():
    """``inpaint_removal`` is an Inpaint whose default model is the removal inpainter, keyed in
    the cache by its own shipped file; with any Inpainter object it fills like ``inpaint``."""
    from kit.removers import remover_files

    r = get_remover("inpaint_removal")
    assert isinstance(r, InpaintRemoval) and r.model == "world-removal" and not r.differentiable
    assert [f.name for f in remover_files("inpaint_removal")] == ["world_inpainter_removal.pt"]
    assert [f.name for f in remover_files("inpaint")] == ["world_inpainter.pt"]
    x, keep = rand((2, 3, 8, 8), 0), (rand((2, 1, 8, 8), 1) > 0.5).float()
    stand_in = ConstInpainter()
    assert torch.equal(InpaintRemoval(model=stand_in)(x, keep), Inpaint(model=stand_in)(x, keep))


def test_blend_is_the_fill_continuum():
    """F_lam = lam * background + (1 - lam) * completion fill; lam 1 is the oracle and lam 0
    the inpaint remover, exactly; only lam 1 is differentiable; backgrounds are required."""
    b = world.sample(3, seed=11, split="test")
    inp = ConstInpainter()
    keep = (rand((3, 1, 64, 64), 2) > 0.5).float()
    oracle = get_remover("oracle", backgrounds=b.backgrounds)(b.images, keep)
    completion = Inpaint(model=inp)(b.images, keep)
    one = get_remover("blend", lam=1.0, backgrounds=b.backgrounds)  # (model= is the classifier)
    zero = Blend(b.backgrounds, lam=0.0, model=inp)
    assert torch.equal(one(b.images, keep), oracle) and one.differentiable
    assert torch.equal(zero(b.images, keep), completion) and not zero.differentiable
    n_calls = len(inp.calls)
    Blend(b.backgrounds, lam=1.0, model=inp)(b.images, keep)
    assert len(inp.calls) == n_calls  # lam 1 never runs the inpainter
    half = Blend(b.backgrounds, lam=0.25, model=inp)
    torch.testing.assert_close(half(b.images, keep), 0.25 * oracle + 0.75 * completion)
    assert torch.equal(half.take(torch.tensor([1]))(b.images[1:2], keep[1:2]),
                       half(b.images, keep)[1:2])
    with pytest.raises(ValueError, match="'blend' needs backgrounds="):
        get_remover("blend", lam=0.5)
    with pytest.raises(ValueError, match="lam must be a number in \\[0, 1\\], got 1.5"):
        get_remover("blend", lam=1.5, backgrounds=b.backgrounds)


@pytest.mark.parametrize("remover", [Telea(), NS()], ids=lambda r: r.name)
def test_opencv_fills_in_parallel_equal_the_serial_fills(remover, monkeypatch):
    # a batch is spread over torch's thread count; every image's fill is its own computation
    x = rand((40, 3, 16, 16), 1)
    keep = (rand((40, 1, 16, 16), 2) > 0.3).float()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        serial = remover(x, keep)
        torch.set_num_threads(4)
        parallel = remover(x, keep)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(serial, parallel)
