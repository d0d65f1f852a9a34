"""Classifier accuracy and confusion on labelled batches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kit.metrics.plausibility import probabilities
from kit.metrics.stats import bootstrap_ci

HIGHER_IS_BETTER = {"accuracy": True}


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


def accuracy(model, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 256,
             seed: int = 0) -> Accuracy:
    """Top-1 accuracy of ``model`` on ``images (N,3,H,W)`` with ``labels (N,)``."""
    pred = probabilities(model, images, batch_size).argmax(1)
    correct = (pred == labels).numpy().astype(float)
    c = len(model.classes)
    cm = np.zeros((c, c), dtype=np.int64)
    np.add.at(cm, (labels.numpy(), pred.numpy()), 1)
    return Accuracy(float(correct.mean()), bootstrap_ci(correct, seed=seed), cm, len(labels))
