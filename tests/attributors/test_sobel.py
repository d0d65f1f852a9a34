"""The Sobel control (kit.attributors.sobel): ROAR's SciPy call on the normalised image."""

from __future__ import annotations

import numpy as np

from kit import world


def test_sobel_matches_roar_scipy_call():
    from scipy.ndimage import sobel as scipy_sobel

    from kit.attributors import ATTRIBUTORS, explain
    from kit.models import load_classifier

    clf = load_classifier("world")
    x = world.sample(2, seed=3, split="train").images
    z = clf.normalize(x).permute(0, 2, 3, 1).numpy()
    expected = np.stack([scipy_sobel(img, axis=0).sum(-1) for img in z])
    np.testing.assert_allclose(ATTRIBUTORS["sobel"](clf, x, 0)[:, 0].numpy(), expected,
                               rtol=1e-5, atol=1e-5)
    # by method name, in batches of one: the same map
    np.testing.assert_allclose(explain("sobel", clf, x, 0, batch_size=1)[:, 0].numpy(), expected,
                               rtol=1e-5, atol=1e-5)
