"""Classifier outputs in batches, and accuracy and confusion on labelled batches.

* :func:`probabilities` and :func:`features` are the batched inference of every metric that reads
  the classifier's softmax or penultimate features (plausibility, accuracy): one place.
  :func:`probabilities_and_features` gives both from one forward pass per image (the
  penultimate features are the final layer's input), half the passes of calling both.
* :func:`accuracy` — top-1 accuracy with a bootstrap CI and the confusion matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kit.engine import BATCH_SIZE
from kit.metrics.stats import bootstrap_ci

HIGHER_IS_BETTER = {"accuracy": True}


def _chunks(x: torch.Tensor, batch_size: int):
    """``x`` in chunks of ``batch_size`` images (the classifier lays each out for its pass:
    :meth:`kit.models.Classifier.normalize`)."""
    for i in range(0, len(x), batch_size):
        yield x[i:i + batch_size]


@torch.inference_mode()
def features(model, x: torch.Tensor, batch_size: int = BATCH_SIZE) -> torch.Tensor:
    """Penultimate features ``(N,D)`` of pixel-space images ``(N,3,H,W)``, in batches."""
    return torch.cat([model.features(xb) for xb in _chunks(x, batch_size)])


@torch.inference_mode()
def probabilities(model, x: torch.Tensor, batch_size: int = BATCH_SIZE) -> torch.Tensor:
    """Softmax probabilities ``(N,C)`` of pixel-space images ``(N,3,H,W)``, in batches."""
    return torch.cat([model(xb).softmax(1) for xb in _chunks(x, batch_size)])


@torch.inference_mode()
def probabilities_and_features(model, x: torch.Tensor, batch_size: int = BATCH_SIZE
                               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities ``(N,C)`` and penultimate features ``(N,D)`` from one pass per image.

    The features are the input of the classifier's final layer (``model.fc_name``), captured
    during the forward pass that gives the logits: the same values as :func:`features` (the world
    net's ``features`` is that input; other nets' are captured the same way). A model without
    such a layer gets two passes, :func:`probabilities` then :func:`features`.

    Args:
        model: a :class:`~kit.models.Classifier`.
        x: ``(N,3,H,W)`` pixel-space images.
        batch_size: images per forward pass.
    """
    try:
        head = model.net.get_submodule(model.fc_name)
    except AttributeError:
        head = None
    if not isinstance(head, getattr(model, "head_types", (torch.nn.Linear,))):
        return probabilities(model, x, batch_size), features(model, x, batch_size)
    probs, feats, captured = [], [], []
    handle = head.register_forward_hook(lambda m, inp, out: captured.append(inp[0]))
    try:
        for xb in _chunks(x, batch_size):
            probs.append(model(xb).softmax(1))
            f = captured.pop()
            feats.append((f.mean(dim=(2, 3)) if f.ndim == 4 else f).flatten(1))
    finally:
        handle.remove()  # never leave a hook on the caller's model
    return torch.cat(probs), torch.cat(feats)


@dataclass(frozen=True)
class Accuracy:
    """Top-1 accuracy with its 95% bootstrap CI over images, and the confusion matrix.

    Attributes:
        accuracy: fraction of correct top-1 predictions.
        ci: ``(low, high)``.
        confusion: ``(C,C)`` counts, rows = true class, columns = predicted class.
        n: number of images.
    """

    accuracy: float
    ci: tuple[float, float]
    confusion: np.ndarray
    n: int


def accuracy(model, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = BATCH_SIZE,
             seed: int = 0) -> Accuracy:
    """Top-1 accuracy of ``model`` on ``images (N,3,H,W)`` with ``labels (N,)``."""
    pred = probabilities(model, images, batch_size).argmax(1)
    correct = (pred == labels).numpy().astype(float)
    c = len(model.classes)
    cm = np.zeros((c, c), dtype=np.int64)
    np.add.at(cm, (labels.numpy(), pred.numpy()), 1)
    return Accuracy(float(correct.mean()), bootstrap_ci(correct, seed=seed), cm, len(labels))
