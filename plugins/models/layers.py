"""Building blocks the built-in models share: the activations by name, and the channels-last switch."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Activation = Literal["relu", "tanh", "sigmoid", "gelu", "leaky_relu", "elu", "silu"]
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "silu": nn.SiLU,
}


class ChannelsLast(nn.Module):
    """Puts an image batch in NHWC memory order (the values and shape stay NCHW), so the
    convolutions after it run in that layout: often faster on CPUs and tensor cores. A no-op for
    exporters, which see the same values."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.contiguous(memory_format=torch.channels_last)
