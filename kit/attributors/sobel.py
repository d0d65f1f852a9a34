"""ROAR's Sobel control: an edge map that ignores the model's gradients (registered as ``"sobel"``).

Hooker et al. (ROAR, NeurIPS 2019) compare the attribution estimators against a Sobel edge
detector: a ranking that knows nothing about the classifier, only where the image has edges. As
ROAR's ``scipy.ndimage.sobel(img, axis=0)`` on an HWC image, the derivative runs down the rows and
the smoothing runs along columns *and channels* (SciPy smooths every other axis); kit sums the
result over channels to get one map per image.

Usage::

    from kit.attributors.sobel import sobel
    sal = sobel(clf, x, target)            # (N,1,H,W), signed; ROAR ranks its square
"""

from __future__ import annotations

import numpy as np
import torch

from kit.attributors._common import check_inputs, no_remover
from kit.checks import positive_int
from kit.checks import seed as seed_check
from kit.engine import BATCH_SIZE


def sobel(model, x: torch.Tensor, target, *, remover=None, seed: int = 0,
          batch_size: int = BATCH_SIZE, progress: bool = False) -> torch.Tensor:
    """Vertical Sobel derivative of the normalised image, summed over channels.

    The image is taken to the network's input space first (``model.normalize``), as ROAR applies
    the filter to the images the network sees.

    Args:
        model: a :class:`kit.models.Classifier` (its ``normalize`` gives the input space; the
            network itself is not run).
        x: ``(N,3,H,W)`` images in [0,1].
        target: int or ``(N,)`` long (validated, otherwise unused: the map does not depend on
            the class).
        seed: accepted for the uniform attributor signature; the map is deterministic.
        batch_size: images normalised per step (does not change the map).
        progress: accepted for the uniform signature; there is nothing long to show.

    Returns:
        ``(N,1,H,W)`` float32 signed map on ``x.device`` (ranked by its square in ROAR).
    """
    from scipy.ndimage import sobel as scipy_sobel

    no_remover("sobel", remover)
    check_inputs(model, x, target)
    seed_check("seed", seed)
    batch_size = positive_int("batch_size", batch_size)
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            z = model.normalize(x[i:i + batch_size]).detach().cpu().permute(0, 2, 3, 1).numpy()
            # one HWC image at a time, as ROAR calls SciPy
            out += [scipy_sobel(img, axis=0).sum(-1) for img in z]
    return torch.from_numpy(np.stack(out)).float().unsqueeze(1).to(x.device)
