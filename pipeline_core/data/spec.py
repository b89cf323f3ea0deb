"""The shape of a problem, as a dataset declares it and a model factory receives it.

Kept apart from :mod:`pipeline_core.data.loaded` (the loaded tensors) and free of torch at import, so that a
dataset's ``spec=`` function, the registration of every built-in plugin and ``pipeline validate``
with a cached model check run without importing torch (seconds of a command's start).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

__all__ = ["INTERPOLATIONS", "RESIZE_OPS", "TASKS", "DataSpec", "DatasetContext", "ImageSpec", "Task"]


class _Dtype:
    """The ``input_dtype`` field: stores what it is given (a ``torch.dtype``, or its name), and reads as
    a ``torch.dtype``, importing torch only then. A dataclass field whose default is a descriptor."""

    DEFAULT = "float32"

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}"

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self.DEFAULT  # the dataclass's default
        value = instance.__dict__[self.slot]
        if isinstance(value, str):
            import torch

            value = getattr(torch, value)
            object.__setattr__(instance, self.slot, value)
        return value

    def __set__(self, instance: object, value: object) -> None:
        if isinstance(value, str) and not value.isidentifier():
            raise ValueError(f"input_dtype must be a torch dtype or its name (such as 'uint8'), not {value!r}")
        instance.__dict__[self.slot] = value

    @staticmethod
    def name(spec: object) -> str:
        value = spec.__dict__["_input_dtype"]
        return value if isinstance(value, str) else str(value).removeprefix("torch.")


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
    #: ``torch.float32`` unless given; a spec function may name it (``"uint8"``), so it needs no torch
    input_dtype: torch.dtype = _Dtype()  # type: ignore[assignment]
    image: ImageSpec | None = None

    def __post_init__(self) -> None:
        if self.image is not None and (len(self.input_shape) != 3 or self.input_shape[0] not in (1, 3, 4)):
            raise ValueError(f"image inputs have shape (channels, height, width) with 1, 3 or 4 channels, not {self.input_shape}")

    @property
    def dtype_name(self) -> str:
        """The input dtype's name (``float32``, ``uint8``), read without importing torch."""
        return _Dtype.name(self)
