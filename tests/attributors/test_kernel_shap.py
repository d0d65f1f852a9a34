"""KernelSHAP through the engine equals the shap package's KernelExplainer (reference oracle)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kit.attributors import METHODS, explain
from kit.attributors.kernel_shap import kernel_shap, shapley_coalitions
from kit.masks import superpixels
from kit.removers import get_remover

shap = pytest.importorskip("shap")


def _set_function(model, x, target, seg, remover):
    """v(Z): the target's probability with the superpixels of each coalition row kept."""

    def f(z):
        keep = torch.as_tensor(z, dtype=x.dtype)[:, seg].unsqueeze(1)
        with torch.inference_mode():
            p = model(remover(x, keep)).softmax(1)[:, target]
        return p.double().numpy()

    return f


@pytest.mark.parametrize("remover", ["gray", "blur"])
def test_equals_shap_kernel_explainer(tiny_cnn, images, remover):
    x = images[:1]
    seg = superpixels(x, n_segments=9, compactness=20, sigma=1.0)[0]
    k = int(seg.max()) + 1
    assert 3 <= k <= 10
    rem = get_remover(remover, model=tiny_cnn, size=tuple(x.shape[-2:]))
    f = _set_function(tiny_cnn, x, 1, seg, rem)
    explainer = shap.KernelExplainer(f, np.zeros((1, k)))
    ref = explainer.shap_values(np.ones((1, k)), nsamples=2**k, l1_reg=False, silent=True)
    ref = np.asarray(ref).reshape(-1)
    sal = kernel_shap(tiny_cnn, x, 1, remover=remover, n_samples=2**k, n_segments=9,
                      compactness=20, sigma=1.0)
    ours = np.array([float(sal[0, 0][seg == j][0]) for j in range(k)])
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    # efficiency: the values sum to v(all kept) - v(all removed)
    full = f(np.ones((1, k)))[0] - f(np.zeros((1, k)))[0]
    assert abs(ours.sum() - full) < 1e-6


def test_sampled_coalitions_are_seeded_and_paired():
    z1, w1 = shapley_coalitions(12, 64, seed=3)
    z2, _ = shapley_coalitions(12, 64, seed=3)
    z3, _ = shapley_coalitions(12, 64, seed=4)
    assert np.array_equal(z1, z2) and not np.array_equal(z1, z3)
    assert z1.shape == (66, 12) and (z1[0] == 1).all() and (z1[1] == 0).all()
    assert np.array_equal(z1[2::2], 1 - z1[3::2])  # antithetic pairs
    assert (w1 == 1).all()


def test_methods_and_any_remover(tiny_cnn, images):
    assert METHODS["KernelSHAP"].remover == "gray"
    assert METHODS["KernelSHAP-G"].remover == "inpaint"
    a = explain("KernelSHAP", tiny_cnn, images, torch.tensor([0, 2]), n_samples=32,
                n_segments=6)
    b = kernel_shap(tiny_cnn, images, torch.tensor([0, 2]), n_samples=32, n_segments=6,
                    remover="noise")
    assert a.shape == b.shape == (2, 1, *images.shape[-2:])
    assert torch.isfinite(a).all() and torch.isfinite(b).all()
