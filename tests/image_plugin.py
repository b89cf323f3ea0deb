"""A small image dataset as a third-party plugin would write it, on the public API alone:
``synthetic_images`` draws a bright square whose place (and, in colour, whose hue) depends on the
class, on a noisy background, as raw uint8 (C, H, W) pixels with an ImageSpec."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from torch import nn

from pipeline_core import DatasetContext, DataSpec, ImageSpec, LoadedData, Register, Split, hookimpl

CLASSES = ("top_left", "top_right", "bottom_left", "bottom_right")
HUES = torch.tensor([[255, 60, 60], [60, 255, 60], [60, 60, 255], [255, 255, 60]], dtype=torch.float32)


class Scale(nn.Module):
    """0–255 pixels → [0, 1], in the dtype of its own buffer (float64 in the export check's twin)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(1 / 255))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.to(self.scale.dtype) * self.scale


def draw(labels: torch.Tensor, channels: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """One image per label: noise, and a square of side size/3 in the label's quadrant."""
    count, side = len(labels), max(2, size // 3)
    images = torch.rand(count, channels, size, size, generator=generator) * 80
    offsets = torch.randint(0, size // 2 - side + 1, (count, 2), generator=generator)
    for index, label in enumerate(labels.tolist()):
        top = offsets[index, 0] + (size // 2 if label >= 2 else 0)
        left = offsets[index, 1] + (size // 2 if label % 2 else 0)
        colour = HUES[label][:channels, None, None] if channels == 3 else torch.full((channels, 1, 1), 230.0)
        images[index, :, top : top + side, left : left + side] = colour
    return images.round().clamp(0, 255).to(torch.uint8)


def synthetic_images(
    context: DatasetContext,
    *,
    channels: Literal[1, 3] = 3,
    size: Annotated[int, Field(ge=4)] = 32,
    per_class: Annotated[int, Field(ge=2)] = 24,
    resize: list[dict[str, Any]] = [],  # noqa: B006 - validated copies
) -> LoadedData:
    generator = torch.Generator().manual_seed(context.seed)
    splits = {}
    for name, count in (("train", per_class), ("test", max(2, per_class // 2))):
        labels = torch.arange(len(CLASSES)).repeat(count)
        splits[name] = Split(draw(labels, channels, size, generator), labels)
    spec = DataSpec("multiclass", (channels, size, size), len(CLASSES), classes=CLASSES, input_dtype=torch.uint8,
                    image=ImageSpec(resize=tuple(resize)))
    return LoadedData(spec, splits, Scale(), description="synthetic squares")


@hookimpl
def register_datasets(register: Register) -> None:
    register("synthetic_images", synthetic_images)
