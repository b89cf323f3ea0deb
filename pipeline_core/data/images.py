"""Image preprocessing that lives inside the model, so an exported model takes raw 0–255 pixels.

A dataset of images keeps its pixels as uint8 (four times smaller than float32, in memory and in
every batch moved to the device) and hands :class:`ScaleImages` as its ``preprocess`` module: the
host makes it the model's first layer, so scaling and normalization run on the device, are saved
with the weights, and are part of every exported file.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _per_channel(values: float | Sequence[float], name: str) -> torch.Tensor:
    """A scalar stays a 0-d tensor; a sequence becomes (C, 1, 1), broadcasting over (N, C, H, W)."""
    if isinstance(values, (int, float)):
        return torch.tensor(float(values), dtype=torch.float32)
    flat = [float(v) for v in values]
    if not flat:
        raise ValueError(f"{name} needs at least one value")
    return torch.tensor(flat, dtype=torch.float32).view(-1, 1, 1)


class ScaleImages(nn.Module):
    """Raw pixels (uint8 0–255, or floats on that scale) → ``(x / 255 - mean) / std``.

    ``mean`` and ``std`` are one value for every channel or one per channel (torchvision's
    ``Normalize`` convention: statistics of pixels already scaled to [0, 1]). The arithmetic is folded
    into one multiply (and one add when normalizing): it runs on every training batch. The input is
    cast to the buffers' dtype, so the export check's float64 twin of the model computes in float64.
    """

    def __init__(self, mean: float | Sequence[float] = 0.0, std: float | Sequence[float] = 1.0) -> None:
        super().__init__()
        mean_t, std_t = _per_channel(mean, "mean"), _per_channel(std, "std")
        if mean_t.dim() and std_t.dim() and mean_t.numel() != std_t.numel() and 1 not in (mean_t.numel(), std_t.numel()):
            raise ValueError(f"mean has {mean_t.numel()} values and std {std_t.numel()}; give one per channel, or one for all")
        if bool((std_t <= 0).any()):
            raise ValueError(f"std must be positive, got {std_t.flatten().tolist()}")
        self.register_buffer("scale", 1.0 / (255.0 * std_t))
        self.register_buffer("shift", torch.broadcast_to(-mean_t / std_t, torch.broadcast_shapes(mean_t.shape, std_t.shape)).clone())
        self.shifted = bool((mean_t != 0).any())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        scaled = images.to(self.scale.dtype) * self.scale  # float32, or float64 in the export check's exact twin
        return scaled + self.shift if self.shifted else scaled
