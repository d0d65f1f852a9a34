"""ROAD's noisy linear imputation (kit.removers.NoisyLinear): the linear system exact on toy
images (ramp, single pixel, a hand-solved 2-pixel hole, a dense reference), noise only on the
removed pixels, seeding, batch = loop, the two solvers, the empty image, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kit.removers import REMOVERS, ROAD_WEIGHTS, Cached, NoisyLinear, get_remover


def rand(shape, seed, dtype=torch.float64):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def dense_reference(x: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """ROAD's system written out pixel by pixel and solved densely: each removed pixel minus
    the weighted mean of its neighbours inside the image (weights renormalised there) is 0."""
    c, h, w = x.shape
    where = [(r, q) for r in range(h) for q in range(w) if hole[r, q]]
    var = {p: i for i, p in enumerate(where)}
    a = np.zeros((len(where), len(where)))
    b = np.zeros((len(where), c))
    for i, (r, q) in enumerate(where):
        for (dr, dc), wt in ROAD_WEIGHTS:
            rr, qq = r + dr, q + dc
            if 0 <= rr < h and 0 <= qq < w:
                a[i, i] += wt
                if hole[rr, qq]:
                    a[i, var[(rr, qq)]] -= wt
                else:
                    b[i] += wt * x[:, rr, qq]
    v = np.linalg.solve(a, b)
    out = x.copy()
    for i, (r, q) in enumerate(where):
        out[:, r, q] = v[i]
    return out


def test_registered_with_road_defaults():
    assert REMOVERS["noisy_linear"] is NoisyLinear
    r = get_remover("noisy_linear")
    assert (r.noise, r.seed, r.threshold, r.solver) == (0.01, 0, 0.5, "banded")
    assert not r.differentiable
    assert sum(w for _, w in ROAD_WEIGHTS) == pytest.approx(1.0)
    assert sorted(w for _, w in ROAD_WEIGHTS) == [1 / 12] * 4 + [1 / 6] * 4

    class M:
        mean = (0.485, 0.456, 0.406)

    assert get_remover("noisy_linear", model=M()).empty_color == M.mean


def test_linear_ramp_is_reproduced_inside_a_hole():
    h, w = 16, 20
    r = torch.arange(h, dtype=torch.float64).view(-1, 1)
    c = torch.arange(w, dtype=torch.float64).view(1, -1)
    ramp = torch.stack([0.1 + 0.02 * r + 0.03 * c, 0.8 - 0.04 * r + 0.0 * c,
                        0.2 + 0.01 * r + 0.01 * c])[None]
    keep = torch.ones(1, 1, h, w, dtype=torch.float64)
    keep[..., 3:12, 2:17] = 0  # a big interior hole, not touching the border
    keep[..., 7, 1] = 1
    out = NoisyLinear(noise=0)(ramp, keep)
    torch.testing.assert_close(out, ramp, atol=1e-12, rtol=0)


def test_single_removed_pixel_is_the_weighted_mean_of_its_neighbours():
    x = rand((1, 3, 7, 7), 0)
    keep = torch.ones(1, 1, 7, 7, dtype=torch.float64)
    keep[..., 3, 4] = 0
    out = NoisyLinear(noise=0)(x, keep)
    expected = sum(wt * x[0, :, 3 + dr, 4 + dc] for (dr, dc), wt in ROAD_WEIGHTS)
    torch.testing.assert_close(out[0, :, 3, 4], expected, atol=1e-14, rtol=0)
    # at a corner: the mean over the 3 neighbours inside the image, weights renormalised
    keep = torch.ones(1, 1, 7, 7, dtype=torch.float64)
    keep[..., 0, 0] = 0
    corner = NoisyLinear(noise=0)(x, keep)[0, :, 0, 0]
    expected = (x[0, :, 0, 1] / 6 + x[0, :, 1, 0] / 6 + x[0, :, 1, 1] / 12) / (5 / 12)
    torch.testing.assert_close(corner, expected, atol=1e-14, rtol=0)


def test_hand_solved_two_pixel_hole():
    # p = (2, 2) and q = (2, 3) removed, side by side: v_p = s_p + v_q / 6, v_q = s_q + v_p / 6,
    # s = the weighted sum over the 7 kept neighbours; so v_p = (s_p + s_q / 6) * 36 / 35.
    x = rand((1, 3, 5, 6), 1)
    keep = torch.ones(1, 1, 5, 6, dtype=torch.float64)
    keep[..., 2, 2:4] = 0

    def kept_sum(r, q, other):
        return sum(wt * x[0, :, r + dr, q + dc] for (dr, dc), wt in ROAD_WEIGHTS
                   if (r + dr, q + dc) != other)

    sp, sq = kept_sum(2, 2, (2, 3)), kept_sum(2, 3, (2, 2))
    vp, vq = (sp + sq / 6) * 36 / 35, (sq + sp / 6) * 36 / 35
    out = NoisyLinear(noise=0)(x, keep)
    torch.testing.assert_close(out[0, :, 2, 2], vp, atol=1e-14, rtol=0)
    torch.testing.assert_close(out[0, :, 2, 3], vq, atol=1e-14, rtol=0)


@pytest.mark.parametrize("solver", ["banded", "sparse"])
def test_matches_a_dense_reference_on_random_holes(solver):
    x = rand((3, 3, 9, 11), 2)
    keep = (rand((3, 1, 9, 11), 3) > 0.55).double()  # holes on the border, several components
    out = NoisyLinear(noise=0, solver=solver)(x, keep)
    for i in range(3):
        ref = dense_reference(x[i].numpy(), keep[i, 0].numpy() < 0.5)
        np.testing.assert_allclose(out[i].numpy(), np.clip(ref, 0, 1), atol=1e-12, rtol=0)


def test_noise_on_removed_pixels_only_with_the_stated_std():
    x = 0.25 + 0.5 * rand((2, 3, 32, 32), 4, torch.float32)  # away from the clamp
    keep = (rand((2, 1, 32, 32), 5, torch.float32) > 0.5).float()
    noisy = NoisyLinear(noise=0.01, seed=3)(x, keep)
    clean = NoisyLinear(noise=0)(x, keep)
    kept = keep.bool().expand_as(x)
    assert torch.equal(noisy[kept], x[kept]) and torch.equal(clean[kept], x[kept])
    diff = (noisy - clean)[~kept].double()
    assert diff.abs().min() > 0
    assert diff.std().item() == pytest.approx(0.01, rel=0.05)
    assert abs(diff.mean().item()) < 1e-3


def test_seeded_batch_consistent_and_global_rng_untouched():
    x = rand((4, 3, 12, 12), 6, torch.float32)
    keep = (rand((4, 1, 12, 12), 7, torch.float32) > 0.4).float()
    state = torch.random.get_rng_state()
    np_state = np.random.get_state()[1].copy()  # noqa: NPY002 (the global one is checked)
    a = NoisyLinear(seed=1)(x, keep)
    assert torch.equal(state, torch.random.get_rng_state())
    assert np.array_equal(np_state, np.random.get_state()[1])  # noqa: NPY002
    assert torch.equal(a, NoisyLinear(seed=1)(x, keep))  # same seed, same bits
    assert not torch.equal(a, NoisyLinear(seed=2)(x, keep))
    loop = torch.cat([NoisyLinear(seed=1)(x[i:i + 1], keep[i:i + 1]) for i in range(4)])
    assert torch.equal(a, loop)  # batch = one image at a time, bit for bit
    # two images with the same hole get different noise
    same = NoisyLinear(seed=1)(x[:2], keep[:1].expand(2, -1, -1, -1))
    assert not torch.equal(same[0] - x[0], same[1] - x[1])
    # one image against several masks = the image repeated
    many = NoisyLinear(seed=1)(x[:1], keep)
    assert torch.equal(many, NoisyLinear(seed=1)(x[:1].expand(4, -1, -1, -1).clone(), keep))


def test_solvers_agree_and_sparse_batch_equals_loop():
    x = rand((3, 3, 16, 16), 8)
    keep = (rand((3, 1, 16, 16), 9) > 0.3).double()
    banded = NoisyLinear(noise=0)(x, keep)
    sparse = NoisyLinear(noise=0, solver="sparse")(x, keep)
    torch.testing.assert_close(banded, sparse, atol=1e-12, rtol=0)
    loop = torch.cat([NoisyLinear(noise=0, solver="sparse")(x[i:i + 1], keep[i:i + 1])
                      for i in range(3)])
    torch.testing.assert_close(sparse, loop, atol=1e-12, rtol=0)


def test_hole_rule_and_edge_cases():
    x = rand((2, 3, 6, 6), 10)
    soft = torch.full((2, 1, 6, 6), 0.7, dtype=torch.float64)
    soft[..., 2, 2] = 0.3  # only this pixel is below 0.5: the only one imputed
    hard = torch.ones_like(soft)
    hard[..., 2, 2] = 0
    fill = NoisyLinear(noise=0).fill(x, soft)
    torch.testing.assert_close(fill, NoisyLinear(noise=0).fill(x, hard))
    torch.testing.assert_close(NoisyLinear(noise=0)(x, soft), x * soft + fill * (1 - soft))
    assert torch.equal(NoisyLinear()(x, torch.ones_like(soft)), x)  # nothing removed
    # nothing kept: the gray fill (empty_color) plus the noise, the other image still solved
    keep = torch.ones(2, 1, 6, 6, dtype=torch.float64)
    keep[0] = 0
    keep[1, :, 1, 1] = 0
    r = NoisyLinear(noise=0, empty_color=(0.2, 0.4, 0.6))
    out = r(x, keep)
    torch.testing.assert_close(out[0], torch.tensor([0.2, 0.4, 0.6], dtype=x.dtype)
                               .view(3, 1, 1).expand(3, 6, 6))
    assert torch.isfinite(NoisyLinear(empty_color=(0.2, 0.4, 0.6))(x, keep)).all()
    assert out[1, :, 1, 1].sub(x[1, :, 1, 1]).abs().max() > 0


def test_cached_wrapper_gives_the_same_fills():
    x = rand((2, 3, 10, 10), 11, torch.float32)
    keep = (rand((2, 1, 10, 10), 12, torch.float32) > 0.5).float()
    c = Cached(NoisyLinear(seed=5))
    first = c(x, keep)
    assert torch.equal(first, NoisyLinear(seed=5)(x, keep))
    assert torch.equal(c(x, keep), first) and c.stats["hits"] == 2


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"noise": -0.1}, "noise must be a number in"),
    ({"seed": -1}, "seed must be an integer"),
    ({"solver": "cg"}, "solver: 'cg'; valid names: banded, sparse"),
    ({"threshold": 2.0}, "threshold must be"),
    ({"empty_color": (2, 0, 0)}, "color must be 3 values"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NoisyLinear(**kwargs)
    with pytest.raises(ValueError, match=match):
        get_remover("noisy_linear", **kwargs)


def test_bad_input():
    r = NoisyLinear()
    with pytest.raises(ValueError, match=r"keep must have shape \(M,1,8,8\)"):
        r(torch.rand(1, 3, 8, 8), torch.ones(1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"must be in \[0,1\]"):
        r(torch.rand(1, 3, 8, 8) + 1, torch.ones(1, 1, 8, 8))
