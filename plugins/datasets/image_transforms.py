"""The ``transforms`` list of an image dataset: declarative torchvision.transforms.v2 steps in TOML.

Each step is a table (or just its name) validated like any option::

    transforms = [
        { name = "resize", size = [36, 36] },
        { name = "center_crop", size = 32 },
        { name = "random_crop", padding = 4 },
        "horizontal_flip",
        { name = "normalize", mean = [0.49, 0.48, 0.45], std = [0.25, 0.24, 0.26] },
    ]

Deterministic steps (``resize``, ``center_crop``) come first and apply to every split, and they are
what the exported model expects of an image (``DataSpec.image``). Augmentations (``random_crop``,
``random_resized_crop``, ``horizontal_flip``, ``vertical_flip``, ``rotation``, ``color_jitter``)
come after them, apply to training batches only, and keep the image's size: the model sees the same
shape in training and evaluation. ``normalize`` comes last and goes into the model's graph with the
scaling to [0, 1] (:class:`pipeline_core.ScaleImages`), so a deployer sends raw 0–255 pixels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import pydantic
from pydantic import BeforeValidator, Field

from pipeline_core import ConfigError

if TYPE_CHECKING:  # torch and torchvision load when a dataset builds its transforms, not when it registers
    from torch import nn

Positive = Annotated[int, Field(ge=1)]
Size = Positive | Annotated[list[Positive], Field(min_length=1, max_length=2)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Interpolation = Literal["nearest", "bilinear", "bicubic"]
_CONFIG = pydantic.ConfigDict(strict=True, extra="forbid", frozen=True)


def _pair(size: int | list[int]) -> tuple[int, int] | tuple[int]:
    """torchvision's size convention: ``[h, w]``, or one number (``[s]``)."""
    return (size,) if isinstance(size, int) else tuple(size)  # type: ignore[return-value]


class Resize(pydantic.BaseModel):
    """``size = [h, w]``, or one number: the shorter side becomes it, keeping the aspect ratio."""

    model_config = _CONFIG
    name: Literal["resize"]
    size: Size
    interpolation: Interpolation = "bilinear"

    def build(self) -> nn.Module:
        from torchvision.transforms import v2

        return v2.Resize(list(_pair(self.size)), interpolation=_interpolation(self.interpolation), antialias=True)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        size = _pair(self.size)
        if len(size) == 2:
            return size  # type: ignore[return-value]
        short, long = (height, width) if height <= width else (width, height)
        scaled = int(size[0] * long / short)  # torchvision's rule for one number
        return (size[0], scaled) if height <= width else (scaled, size[0])

    def image_step(self) -> dict[str, Any]:
        return {"op": "resize", "size": list(_pair(self.size)), "interpolation": self.interpolation}


class CenterCrop(pydantic.BaseModel):
    """The central ``size = [h, w]`` (or square ``size``), padding with zeros where the image is smaller."""

    model_config = _CONFIG
    name: Literal["center_crop"]
    size: Size

    def build(self) -> nn.Module:
        from torchvision.transforms import v2

        return v2.CenterCrop(list(_pair(self.size)))

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        size = _pair(self.size)
        return (size[0], size[-1])

    def image_step(self) -> dict[str, Any]:
        size = _pair(self.size)
        return {"op": "center_crop", "size": [size[0], size[-1]]}


class RandomCrop(pydantic.BaseModel):
    """Pad by ``padding`` (one number, [left/right, top/bottom] or [left, top, right, bottom]) and crop
    a random window of the image's own size: the CIFAR recipe's shifts."""

    model_config = _CONFIG
    name: Literal["random_crop"]
    padding: Annotated[int, Field(ge=0)] | Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=2, max_length=4)] = 4
    padding_mode: Literal["constant", "edge", "reflect", "symmetric"] = "constant"
    fill: Annotated[int, Field(ge=0, le=255)] = 0

    def build_for(self, height: int, width: int) -> nn.Module:
        from torchvision.transforms import v2

        return v2.RandomCrop([height, width], padding=self.padding, fill=self.fill, padding_mode=self.padding_mode)


class RandomResizedCrop(pydantic.BaseModel):
    """A random part of the image (``scale``: its share of the area, ``ratio``: aspect ratios),
    resized back to the image's size."""

    model_config = _CONFIG
    name: Literal["random_resized_crop"]
    scale: Annotated[list[Annotated[float, Field(gt=0, le=1)]], Field(min_length=2, max_length=2)] = [0.08, 1.0]
    ratio: Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=2, max_length=2)] = [0.75, 4 / 3]
    interpolation: Interpolation = "bilinear"

    def build_for(self, height: int, width: int) -> nn.Module:
        from torchvision.transforms import v2

        return v2.RandomResizedCrop(
            [height, width], scale=tuple(self.scale), ratio=tuple(self.ratio), interpolation=_interpolation(self.interpolation), antialias=True
        )


class HorizontalFlip(pydantic.BaseModel):
    """Mirror left–right with probability ``p``."""

    model_config = _CONFIG
    name: Literal["horizontal_flip"]
    p: Fraction = 0.5

    def build_for(self, height: int, width: int) -> nn.Module:
        from torchvision.transforms import v2

        return v2.RandomHorizontalFlip(self.p)


class VerticalFlip(pydantic.BaseModel):
    """Mirror top–bottom with probability ``p``."""

    model_config = _CONFIG
    name: Literal["vertical_flip"]
    p: Fraction = 0.5

    def build_for(self, height: int, width: int) -> nn.Module:
        from torchvision.transforms import v2

        return v2.RandomVerticalFlip(self.p)


class Rotation(pydantic.BaseModel):
    """Rotate by a random angle in ``[-degrees, degrees]`` (or ``[min, max]``), corners filled with ``fill``."""

    model_config = _CONFIG
    name: Literal["rotation"]
    degrees: Annotated[float, Field(ge=0)] | Annotated[list[float], Field(min_length=2, max_length=2)]
    interpolation: Literal["nearest", "bilinear"] = "nearest"
    fill: Annotated[int, Field(ge=0, le=255)] = 0

    def build_for(self, height: int, width: int) -> nn.Module:
        from torchvision.transforms import v2

        return v2.RandomRotation(self.degrees, interpolation=_interpolation(self.interpolation), fill=self.fill)


Jitter = Annotated[float, Field(ge=0)] | Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=2, max_length=2)]


class ColorJitter(pydantic.BaseModel):
    """Random brightness, contrast, saturation and hue (torchvision's ``ColorJitter`` ranges)."""

    model_config = _CONFIG
    name: Literal["color_jitter"]
    brightness: Jitter = 0.0
    contrast: Jitter = 0.0
    saturation: Jitter = 0.0
    hue: Annotated[float, Field(ge=0, le=0.5)] = 0.0

    def build_for(self, height: int, width: int) -> nn.Module:
        from torchvision.transforms import v2

        return v2.ColorJitter(brightness=self.brightness, contrast=self.contrast, saturation=self.saturation, hue=self.hue)


class Normalize(pydantic.BaseModel):
    """``(x - mean) / std`` of pixels scaled to [0, 1], one value for all channels or one per channel;
    done inside the model (it must be the last step)."""

    model_config = _CONFIG
    name: Literal["normalize"]
    mean: float | Annotated[list[float], Field(min_length=1)]
    std: Annotated[float, Field(gt=0)] | Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=1)]


DETERMINISTIC = (Resize, CenterCrop)
AUGMENTATIONS = (RandomCrop, RandomResizedCrop, HorizontalFlip, VerticalFlip, Rotation, ColorJitter)
Step = Resize | CenterCrop | RandomCrop | RandomResizedCrop | HorizontalFlip | VerticalFlip | Rotation | ColorJitter | Normalize


def _by_name(value: Any) -> Any:
    """A bare name is short for ``{ name = ... }`` (``"horizontal_flip"``)."""
    return {"name": value} if isinstance(value, str) else value


Transform = Annotated[
    Union[Resize, CenterCrop, RandomCrop, RandomResizedCrop, HorizontalFlip, VerticalFlip, Rotation, ColorJitter, Normalize],  # noqa: UP007
    Field(discriminator="name"),
    BeforeValidator(_by_name),
]


def _interpolation(name: str) -> Any:
    from torchvision.transforms import InterpolationMode

    return InterpolationMode(name)


def order_problem(steps: list[Step]) -> str | None:
    """Why the steps' order cannot work (deterministic, then augmentations, then normalize), or ``None``."""
    seen_augmentation = False
    for index, step in enumerate(steps):
        where = f"transforms[{index}] ({step.name})"
        if isinstance(step, Normalize) and index != len(steps) - 1:
            return f"{where}: normalize must be the last step (it runs inside the model, after every other step)"
        if isinstance(step, AUGMENTATIONS):
            seen_augmentation = True
        elif isinstance(step, DETERMINISTIC) and seen_augmentation:
            return (f"{where}: a deterministic step after an augmentation; put resize and center_crop first (they apply to "
                    "every split and to what the exported model expects), then the augmentations (training only)")
    return None


class Pipeline:
    """The steps split by role: deterministic (every split), augmentations (training), normalize (the model)."""

    def __init__(self, steps: list[Step]) -> None:
        self.deterministic = [step for step in steps if isinstance(step, DETERMINISTIC)]
        self.augmentations = [step for step in steps if isinstance(step, AUGMENTATIONS)]
        self.normalize = next((step for step in steps if isinstance(step, Normalize)), None)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """An image's size after the deterministic steps."""
        for step in self.deterministic:
            height, width = step.output_size(height, width)
        return height, width

    def fixes_size(self) -> bool:
        """Whether the deterministic steps end at one size whatever the input's."""
        return any(isinstance(step, CenterCrop) or (isinstance(step, Resize) and len(_pair(step.size)) == 2) for step in self.deterministic)

    def deterministic_transform(self) -> nn.Module | None:
        from torchvision.transforms import v2

        return v2.Compose([step.build() for step in self.deterministic]) if self.deterministic else None

    def augment(self, height: int, width: int) -> nn.Module | None:
        from torchvision.transforms import v2

        return v2.Compose([step.build_for(height, width) for step in self.augmentations]) if self.augmentations else None

    def scaling(self, channels: int) -> nn.Module:
        """The model's first layer: pixels to [0, 1], then ``normalize``'s mean and std (one value,
        or one per channel: another count is an error naming the option)."""
        from pipeline_core import ScaleImages

        if self.normalize is None:
            return ScaleImages()
        for option in ("mean", "std"):
            values = getattr(self.normalize, option)
            if isinstance(values, list) and len(values) not in (1, channels):
                raise ConfigError(f"data.transforms: normalize {option} has {len(values)} values for {channels}-channel images; give {channels} or 1")
        return ScaleImages(self.normalize.mean, self.normalize.std)

    def image_steps(self) -> tuple[dict[str, Any], ...]:
        """The deterministic steps as ``ImageSpec.resize`` states them for a deploy side."""
        return tuple(step.image_step() for step in self.deterministic)
