"""Building blocks the built-in models share: the activations by name, and the channels-last switch.
Imported by the model factories when they build a network (the option types are in ``choices``)."""

from __future__ import annotations

import torch
from torch import nn

from pipeline_core_plugins.models.choices import Activation

__all__ = ["ACTIVATIONS", "Activation", "ChannelsLast"]
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
