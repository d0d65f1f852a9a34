"""Network architectures of the embedded world's models (trained by :mod:`kit.train`).

* :class:`WorldCNN` — a small VGG-style classifier on normalised 64×64 inputs; ``features`` is the
  global-pooled penultimate vector used for Fréchet distances.
* :class:`GatedInpainter` — a gated-convolution encoder-decoder in the DeepFill v2 family
  (Yu et al., "Free-Form Image Inpainting with Gated Convolution", ICCV 2019): every convolution
  produces features and a learned soft gate, so the network learns which pixels are valid instead of
  trusting zeros in the holes; dilated gated convolutions at 1/4 resolution give every hole pixel a
  receptive field covering the whole image. Single stage, U-Net skips, no contextual attention
  (objects here are small; attention costs more than it buys at 64×64 on a CPU).
* :class:`LiteInpainter` — the shipped world inpainters' network (completion and removal): the
  same gated convolutions, but the 64×64 image is folded into 2×2 pixel blocks first
  (``pixel_unshuffle``: 20 channels at 32×32, no information lost) and unfolded at the end
  (``pixel_shuffle``), so no convolution runs at full resolution; dilated gated convolutions at
  1/4 resolution keep a receptive field over the whole image. About 0.28 GFLOP per 64×64 image
  at width 32, under a quarter of the GatedInpainter's 1.2 (``benchmarks/inpainters.py``).
* :class:`PatchDiscriminator` — a spectral-normalised PatchGAN critic (SN-PatchGAN, as in DeepFill
  v2), used only in training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class WorldCNN(nn.Module):
    """Classifier for the embedded world.

    Args:
        n_classes: number of logits.
        width: channels of the first stage (doubles twice; the feature vector has ``4*width``).
    """

    def __init__(self, n_classes: int = 8, width: int = 24) -> None:
        super().__init__()
        w = width

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.body = nn.Sequential(
            *block(3, w), nn.MaxPool2d(2),  # 32x32
            *block(w, 2 * w), *block(2 * w, 2 * w), nn.MaxPool2d(2),  # 16x16
            *block(2 * w, 4 * w), *block(4 * w, 4 * w), nn.MaxPool2d(2),  # 8x8
            *block(4 * w, 4 * w),
        )
        self.fc = nn.Linear(4 * w, n_classes)

    def features(self, z: torch.Tensor) -> torch.Tensor:
        """``(N,3,H,W)`` normalised images -> ``(N,4*width)`` pooled features."""
        return self.body(z).mean((2, 3))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(N,3,H,W)`` normalised images -> ``(N,n_classes)`` logits."""
        return self.fc(self.features(z))


class AreaResize(nn.Module):
    """``net(area-resize(z, size))``: a network trained at a lower resolution, fed native images.

    ROAR's retrainings (:mod:`kit.studies.roar`) train :class:`WorldCNN` on area-downsampled
    images; wrapped like this, the trained network takes the world's 64×64 images like every
    other classifier (removers, attributors and fills stay at the native resolution). Area
    resizing is linear per channel, so resizing after the classifier's normalisation equals
    resizing first.

    Args:
        net: the network at the lower resolution.
        size: its input side length.
    """

    def __init__(self, net: nn.Module, size: int) -> None:
        super().__init__()
        self.net = net
        self.size = int(size)

    def _resize(self, z: torch.Tensor) -> torch.Tensor:
        if tuple(z.shape[-2:]) == (self.size, self.size):
            return z
        return F.interpolate(z, size=(self.size, self.size), mode="area")

    def features(self, z: torch.Tensor) -> torch.Tensor:
        """``(N,3,H,W)`` normalised images -> the wrapped network's pooled features."""
        return self.net.features(self._resize(z))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(N,3,H,W)`` normalised images -> ``(N,n_classes)`` logits."""
        return self.net(self._resize(z))


class GatedConv(nn.Module):
    """``ELU(conv_f(x)) * sigmoid(conv_g(x))``, with both convolutions fused into one."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, 2 * cout, k, stride, padding=dilation * (k - 1) // 2,
                              dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat, gate = self.conv(x).chunk(2, dim=1)
        return F.elu(feat) * torch.sigmoid(gate)


def _up2(h: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour 2x upsampling as a broadcast copy: the same values as
    ``F.interpolate(h, scale_factor=2, mode="nearest")``, several times faster on CPU."""
    n, c, hh, ww = h.shape
    return h[:, :, :, None, :, None].expand(n, c, hh, 2, ww, 2).reshape(n, c, 2 * hh, 2 * ww)


class GatedInpainter(nn.Module):
    """Gated-convolution inpainting network on ``[-1,1]`` images.

    Input: the image with holes zeroed, the hole mask and a ones channel (DeepFill's input layout).
    Output: a full ``(N,3,H,W)`` image in ``[-1,1]``; the caller composites with the known pixels.

    Args:
        width: channels at full resolution; 2x and 3x that at 1/2 and 1/4 resolution.
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        c1, c2, c3 = width, 2 * width, 3 * width
        self.e1 = GatedConv(5, c1, 5)  # 64
        self.e2 = GatedConv(c1, c2, 3, stride=2)  # 32
        self.e3 = GatedConv(c2, c2, 3)
        self.e4 = GatedConv(c2, c3, 3, stride=2)  # 16
        self.mid = nn.Sequential(*(GatedConv(c3, c3, 3, dilation=d) for d in (2, 4, 8, 1)))
        self.d1 = GatedConv(c3, c2, 3)  # 32, after upsampling; + skip from e3
        self.d2 = GatedConv(c2, c1, 3)  # 64, after upsampling; + skip from e1
        self.out = nn.Conv2d(c1, 3, 3, padding=1)

    def forward(self, x: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """Args: x ``(N,3,H,W)`` in [-1,1]; hole ``(N,1,H,W)`` in {0,1}. H, W divisible by 4."""
        inp = torch.cat([x * (1 - hole), hole, torch.ones_like(hole)], dim=1)
        h1 = self.e1(inp)
        h3 = self.e3(self.e2(h1))
        h = self.mid(self.e4(h3))
        h = self.d1(_up2(h)) + h3
        h = self.d2(_up2(h)) + h1
        return torch.tanh(self.out(h))


class LiteInpainter(nn.Module):
    """Gated-convolution inpainting network that works at 1/2 and 1/4 resolution, on ``[-1,1]``.

    Same input layout and output as :class:`GatedInpainter` (image with holes zeroed, hole mask,
    ones channel -> a full image in ``[-1,1]``). The input is folded 2×2 into channels
    (``pixel_unshuffle``), so the first and last layers see every pixel without convolving at
    64×64; the output is 12 channels at 1/2 resolution unfolded by ``pixel_shuffle``.

    Args:
        width: channels at 1/2 resolution; twice that at 1/4 resolution.
        dilations: dilation of each gated convolution at 1/4 resolution (their number sets the
            depth; 2, 4, 8 at 16×16 reach across the whole image).
    """

    def __init__(self, width: int = 32, dilations: tuple[int, ...] = (2, 4, 8)) -> None:
        super().__init__()
        c1, c2 = width, 2 * width
        self.e1 = GatedConv(20, c1, 3)  # 32x32, input folded 2x2
        self.e2 = GatedConv(c1, c2, 3, stride=2)  # 16x16
        self.mid = nn.ModuleList(GatedConv(c2, c2, 3, dilation=d) for d in dilations)
        self.d1 = GatedConv(c2, c1, 3)  # 32x32 after upsampling; + skip from e1
        self.d2 = GatedConv(c1, c1, 3)
        self.out = nn.Conv2d(c1, 12, 3, padding=1)  # unfolded to (3,64,64)

    def forward(self, x: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """Args: x ``(N,3,H,W)`` in [-1,1]; hole ``(N,1,H,W)`` in {0,1}. H, W divisible by 4."""
        inp = torch.cat([x * (1 - hole), hole, torch.ones_like(hole)], dim=1)
        h1 = self.e1(F.pixel_unshuffle(inp, 2))
        h = self.e2(h1)
        for block in self.mid:  # residual: each dilated block refines, none has to copy
            h = h + block(h)
        h = self.d1(_up2(h)) + h1
        h = self.d2(h) + h
        return torch.tanh(F.pixel_shuffle(self.out(h), 2))


INPAINTER_ARCHS: dict[str, type[nn.Module]] = {"gated": GatedInpainter, "lite": LiteInpainter}
"""Inpainter networks by the ``config["arch"]`` name a checkpoint records (``"gated"`` when absent:
checkpoints written before the lite network existed)."""


class PatchDiscriminator(nn.Module):
    """SN-PatchGAN critic: image and hole mask -> a grid of realness scores (one per patch)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        w = width
        self.net = nn.Sequential(
            sn(nn.Conv2d(4, w, 4, 2, 1)), nn.LeakyReLU(0.2),  # 32
            sn(nn.Conv2d(w, 2 * w, 4, 2, 1)), nn.LeakyReLU(0.2),  # 16
            sn(nn.Conv2d(2 * w, 4 * w, 4, 2, 1)), nn.LeakyReLU(0.2),  # 8
            sn(nn.Conv2d(4 * w, 1, 3, 1, 1)),
        )

    def forward(self, x: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """``(N,3,H,W)`` in [-1,1] and ``(N,1,H,W)`` -> ``(N,1,H/8,W/8)`` scores."""
        return self.net(torch.cat([x, hole], dim=1))
