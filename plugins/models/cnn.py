"""A convolutional classifier (or regressor) whose input channels, image size and outputs come from the data.

Blocks of convolution → optional BatchNorm → activation → optional pooling → optional dropout, then a
head of fully connected layers: the small CNNs of the MNIST tutorials (two or three blocks and one
hidden layer) and anything of that shape. Each per-block option is one value for every block or a
list with one value per block; ``check_cnn`` refuses lists whose lengths disagree, and the factory
refuses blocks that would shrink the data's images to nothing, naming the block and the sizes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

from pydantic import Field

from pipeline_core import ConfigError, DataSpec, Register, hookimpl
from pipeline_core_plugins.models.choices import Activation

if TYPE_CHECKING:
    from torch import nn

Positive = Annotated[int, Field(ge=1)]
Fraction = Annotated[float, Field(ge=0, lt=1)]
Padding = Annotated[int, Field(ge=0)] | Literal["same"]
Pool = Literal["max", "avg", "none"]
Value = TypeVar("Value")

#: the options that take one value per block
PER_BLOCK = ("kernel_size", "stride", "padding", "pool", "batch_norm", "dropout")


def _per_block(value: Value | list[Value], blocks: int) -> list[Value]:
    return list(value) if isinstance(value, list) else [value] * blocks


def _size_after(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def cnn(
    spec: DataSpec,
    *,
    channels: Annotated[list[Positive], Field(min_length=1)] = [16, 32],  # noqa: B006 - options are validated copies, never mutated
    kernel_size: Positive | list[Positive] = 3,
    stride: Positive | list[Positive] = 1,
    padding: Padding | list[Padding] = "same",
    pool: Pool | list[Pool] = "max",
    pool_size: Annotated[int, Field(ge=2)] = 2,
    batch_norm: bool | list[bool] = False,
    dropout: Fraction | list[Fraction] = 0.0,
    activation: Activation = "relu",
    global_pool: Pool = "none",
    hidden_sizes: list[Positive] = [],  # noqa: B006 - options are validated copies, never mutated
    head_dropout: Fraction = 0.0,
    channels_last: bool = False,
) -> nn.Module:
    """``channels[i]`` output channels in block ``i`` (default two blocks, 16 and 32: the MNIST
    tutorials' small CNN). ``padding = "same"`` pads ``kernel_size // 2``
    (the image keeps its size at stride 1). ``pool`` halves the image (``pool_size``) after a block;
    ``dropout`` follows it. ``global_pool`` ("avg" or "max") reduces the last feature maps to one value
    per channel before the head instead of flattening them. The head has ``hidden_sizes`` layers
    (with the activation and ``head_dropout``) and one output per class. ``channels_last`` runs the
    convolutions in NHWC memory order (often faster on CPUs and tensor cores; the weights and exported
    files are the same)."""
    from torch import nn

    from pipeline_core_plugins.models.layers import ACTIVATIONS, ChannelsLast

    if len(spec.input_shape) != 3:
        raise ConfigError(
            f"model 'cnn' takes images of shape (channels, height, width); the data gives inputs of shape {list(spec.input_shape)}. "
            "Use an image dataset, or the 'mlp' model for rows of features"
        )
    blocks = len(channels)
    kernels, strides, paddings = _per_block(kernel_size, blocks), _per_block(stride, blocks), _per_block(padding, blocks)
    pools, norms, dropouts = _per_block(pool, blocks), _per_block(batch_norm, blocks), _per_block(dropout, blocks)
    depth, height, width = spec.input_shape
    shapes = [f"{depth}×{height}×{width}"]
    layers: list[nn.Module] = [ChannelsLast()] if channels_last else []
    for block in range(blocks):
        kernel, step = kernels[block], strides[block]
        pad = kernel // 2 if paddings[block] == "same" else int(paddings[block])
        height, width = _size_after(height, kernel, step, pad), _size_after(width, kernel, step, pad)
        if pools[block] != "none":
            height, width = height // pool_size, width // pool_size
        if height < 1 or width < 1:
            raise ConfigError(
                f"model.channels: block {block + 1} of {blocks} leaves no image: {' → '.join(shapes)} "
                f"(channels×height×width) and then a {kernel}×{kernel} convolution at stride {step}, padding {pad}"
                f"{f' and {pool_size}×{pool_size} pooling' if pools[block] != 'none' else ''}. "
                "Use fewer blocks, pool = 'none' or stride 1 in later blocks, more padding, or larger images"
            )
        layers.append(nn.Conv2d(depth, channels[block], kernel, step, pad, bias=not norms[block]))
        if norms[block]:
            layers.append(nn.BatchNorm2d(channels[block]))
        layers.append(ACTIVATIONS[activation]())
        if pools[block] == "max":
            layers.append(nn.MaxPool2d(pool_size))
        elif pools[block] == "avg":
            layers.append(nn.AvgPool2d(pool_size))
        if dropouts[block]:
            layers.append(nn.Dropout(dropouts[block]))
        depth = channels[block]
        shapes.append(f"{depth}×{height}×{width}")
    if global_pool != "none":
        layers.append(nn.AdaptiveMaxPool2d(1) if global_pool == "max" else nn.AdaptiveAvgPool2d(1))
        height = width = 1
    layers.append(nn.Flatten())
    features = depth * height * width
    for size in hidden_sizes:
        layers += [nn.Linear(features, size), ACTIVATIONS[activation]()]
        if head_dropout:
            layers.append(nn.Dropout(head_dropout))
        features = size
    layers.append(nn.Linear(features, spec.num_outputs))
    return nn.Sequential(*layers)


def check_cnn(*, channels: list[int], **options: object) -> None:
    """Every per-block list has one value per block (``channels`` says how many blocks)."""
    for name in PER_BLOCK:
        value = options.get(name)
        if isinstance(value, list) and len(value) != len(channels):
            raise ValueError(
                f"{name} has {len(value)} values but channels has {len(channels)} blocks; "
                f"give one value per block, or a single value for every block"
            )


@hookimpl
def register_models(register: Register) -> None:
    register("cnn", cnn, check=check_cnn)
