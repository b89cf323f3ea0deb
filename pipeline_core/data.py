"""What a dataset plugin hands the host, and what flows from it to models and metrics.

Shapes flow forward: a model gets :class:`DataSpec` (input shape, number of outputs, task), so a TOML
file never repeats ``in_features = 4``. Preprocessing (feature standardization, image scaling) is a
module that travels with the data and becomes the first layer of the model, so the exported file
takes raw inputs and the statistics are saved with the weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from pipeline_core.splits import Augment, Split
from pipeline_core.streaming import StreamedSplit

__all__ = ["Augment", "DataBundle", "DataSpec", "DatasetContext", "ImageSpec", "Predictions", "Split", "StreamedSplit", "Task", "class_indices"]

Task = Literal["multiclass", "binary", "regression"]
TASKS: tuple[str, ...] = ("multiclass", "binary", "regression")


@dataclass(frozen=True)
class DatasetContext:
    """What the host tells a dataset loader: the run's seed (for splits) and where relative paths start."""

    seed: int
    base_dir: Path = Path(".")


#: The geometric steps an image may go through on its way to the model, as a deploy side redoes them.
RESIZE_OPS = ("resize", "center_crop")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


@dataclass(frozen=True)
class ImageSpec:
    """The inputs are images: what turns an image file into one input row, so a deployer can send
    PNG or JPEG files (``metadata.json``'s ``image``). Decode the file to the input's channels (1:
    grayscale, 3: RGB, 4: RGBA), apply ``resize`` in order, and the result is the (C, H, W) pixels of
    :attr:`DataSpec.input_shape`, 0–255 in the input's dtype; scaling and normalization are in the
    model. ``resize`` lists the geometric steps the data pipeline applied to every evaluated image,
    with torchvision's meaning: ``{"op": "resize", "size": [h, w]}`` (or ``[s]``: the shorter side
    becomes ``s``, keeping the aspect ratio), optionally with ``"interpolation"`` (``nearest``,
    ``bilinear``, the default, or ``bicubic``), and ``{"op": "center_crop", "size": [h, w]}``. An
    image that reaches the end of the steps at another size is resized to (H, W)."""

    resize: tuple[dict[str, Any], ...] = ()

    def __post_init__(self) -> None:
        for number, step in enumerate(self.resize, start=1):
            size = step.get("size")
            if step.get("op") not in RESIZE_OPS:
                raise ValueError(f"image resize step {number}: op must be one of {', '.join(RESIZE_OPS)}, not {step.get('op')!r}")
            if not isinstance(size, (list, tuple)) or len(size) not in (1, 2) or not all(isinstance(n, int) and n > 0 for n in size):
                raise ValueError(f"image resize step {number}: size must be [height, width] or [shorter side], positive integers; got {size!r}")
            if step.get("interpolation", "bilinear") not in INTERPOLATIONS:
                raise ValueError(f"image resize step {number}: interpolation must be one of {', '.join(INTERPOLATIONS)}")


@dataclass(frozen=True)
class DataSpec:
    """The shape of the problem, handed to model factories.

    Targets follow the task: ``multiclass`` int64 class indices of shape (N,), ``binary`` float32 of
    shape (N, 1), ``regression`` float32 of shape (N, num_outputs). Image inputs are (C, H, W) and
    carry an :class:`ImageSpec`.
    """

    task: Task
    input_shape: tuple[int, ...]
    num_outputs: int
    classes: tuple[str, ...] = ()
    feature_names: tuple[str, ...] = ()
    input_dtype: torch.dtype = torch.float32
    image: ImageSpec | None = None

    def __post_init__(self) -> None:
        if self.image is not None and (len(self.input_shape) != 3 or self.input_shape[0] not in (1, 3, 4)):
            raise ValueError(f"image inputs have shape (channels, height, width) with 1, 3 or 4 channels, not {self.input_shape}")


@dataclass
class DataBundle:
    """A loaded dataset: the spec, the splits by name (``train``, ``test``, optional ``validation``),
    each a :class:`Split` of tensors or a :class:`~pipeline_core.StreamedSplit` decoded item by item,
    and the preprocessing module that maps raw inputs to what the network trains on."""

    spec: DataSpec
    splits: dict[str, Split | StreamedSplit]
    preprocess: nn.Module = field(default_factory=nn.Identity)
    description: str = ""
    #: what the host decided for streamed splits (memory or stream, sizes, workers); empty without any
    loading: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.spec.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, not {self.spec.task!r}")
        for required in ("train", "test"):
            if required not in self.splits:
                raise ValueError(f"a data bundle needs a {required!r} split; it has {sorted(self.splits)}")


def class_indices(outputs: torch.Tensor, task: Task) -> torch.Tensor:
    """The class index of each row of a classifier's outputs: the argmax for multiclass, logit > 0
    for binary (int64, shape (N,)). A regression model predicts values, not classes."""
    if task == "multiclass":
        return outputs.argmax(dim=1)
    if task == "binary":
        return (outputs > 0).long().view(-1)
    raise ValueError("a regression model predicts values, not classes")


@dataclass(frozen=True)
class Predictions:
    """A model's outputs on one split, with the targets: what every metric is computed from."""

    outputs: torch.Tensor
    targets: torch.Tensor
    task: Task
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    def predicted_classes(self) -> torch.Tensor:
        """Class index per row (argmax for multiclass, logit > 0 for binary): :func:`class_indices`."""
        return class_indices(self.outputs, self.task)

    def true_classes(self) -> torch.Tensor:
        return self.targets.long().view(-1)
