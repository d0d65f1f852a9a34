"""Oracle toy models for the attributor tests (style.md §11), all wrapped as pixel-space
:class:`kit.models.Classifier` with mean 0 and std 1, so the network sees the pixels themselves.

* ``linear_model``: logits = ``W x + b`` on 3x32x32 images, 3 classes, fixed seeded weights:
  gradient = W_t, IG with a black baseline = x * W_t exactly, SmoothGrad = gradient, VarGrad = 0.
* ``patch_model``: class 0's logit = mean intensity inside ``PATCH`` (rows and columns 8..15 of a
  32x32 image), class 1's logit = 0.
* ``tiny_cnn``: a random small CNN (Conv2d, nn.ReLU modules, max pool, global average pool, Linear),
  3 classes; its last convolution has a 16x16 output grid on 32x32 inputs.

The ``images`` fixture gives a (2,3,32,32) float32 batch in [0,1].
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kit.models import Classifier

SIZE = 32
PATCH = (slice(8, 16), slice(8, 16))
"""Rows and columns of the patch_model's evidence square."""

ZERO, ONE = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)


class LinearNet(nn.Module):
    def __init__(self, n_classes: int = 3) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.fc = nn.Linear(3 * SIZE * SIZE, n_classes)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(n_classes, 3 * SIZE * SIZE, generator=g) * 0.05)
            self.fc.bias.copy_(torch.randn(n_classes, generator=g))

    def weights(self) -> torch.Tensor:
        """``(C,3,H,W)`` weights: the exact gradient of each logit."""
        return self.fc.weight.detach().view(-1, 3, SIZE, SIZE)

    def forward(self, z):
        return self.fc(z.flatten(1))


class PatchNet(nn.Module):
    square = PATCH
    """Rows and columns of the evidence square (tests read it from ``model.net.square``)."""

    def inside(self) -> torch.Tensor:
        """``(H,W)`` bool mask of the square."""
        m = torch.zeros(SIZE, SIZE, dtype=torch.bool)
        m[self.square] = True
        return m

    def forward(self, z):
        inside = z[:, :, PATCH[0], PATCH[1]].mean((1, 2, 3))
        return torch.stack([inside, torch.zeros_like(inside)], 1)


class TinyCNN(nn.Module):
    def __init__(self, n_classes: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
        )
        self.fc = nn.Linear(8, n_classes)

    def features(self, z):
        return self.body(z).mean((2, 3))

    def forward(self, z):
        return self.fc(self.features(z))


@pytest.fixture
def linear_model() -> Classifier:
    return Classifier(LinearNet(), ("a", "b", "c"), ZERO, ONE, name="linear")


@pytest.fixture
def patch_model() -> Classifier:
    return Classifier(PatchNet(), ("patch", "constant"), ZERO, ONE, name="patch")


@pytest.fixture
def tiny_cnn() -> Classifier:
    torch.manual_seed(0)
    return Classifier(TinyCNN(), ("a", "b", "c"), ZERO, ONE, name="tiny_cnn")


@pytest.fixture
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, SIZE, SIZE, generator=g)
