"""MNIST through torchvision's real ``datasets.MNIST``, loaded once as a uint8 tensor.

The tutorials decode every image through PIL and ``ToTensor`` on every epoch; here the whole split is
read once (torchvision parses the IDX files into a uint8 tensor) and the model's first layer scales
each batch to [0, 1] (and optionally normalizes), so the exported model takes raw 0–255 pixels.
Gzipped IDX files (as distributed) are unpacked next to themselves when the raw ones are absent.
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from pipeline_core import ConfigError, DataBundle, DatasetContext, DataSpec, ImageSpec, Register, Split, hookimpl

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class ScaleImages(nn.Module):
    """uint8 pixels → ``(x / 255 - mean) / std``, folded into one multiply (and one add when
    normalizing): this runs on every training batch, so it is kept to the fewest kernels."""

    def __init__(self, mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(1.0 / (255.0 * std)))
        self.register_buffer("shift", torch.tensor(-mean / std))
        self.shifted = mean != 0.0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        scaled = images.to(self.scale.dtype) * self.scale  # float32, or float64 in the export check's exact twin
        return scaled + self.shift if self.shifted else scaled


def prepare_raw_files(raw: Path) -> list[str]:
    """Unpack ``*.gz`` IDX files whose raw copy is missing; return the names still missing."""
    missing = []
    for name in FILES:
        target, packed = raw / name, raw / f"{name}.gz"
        if target.exists():
            continue
        if packed.exists():
            with gzip.open(packed, "rb") as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink)
            continue
        missing.append(name)
    return missing


def _validation_count(val_size: int | float, rows: int) -> int:
    count = val_size if isinstance(val_size, int) else round(val_size * rows)
    if count >= rows:
        raise ConfigError(f"[data] val_size {val_size} leaves no MNIST training images (there are {rows})")
    return count


def mnist(
    context: DatasetContext,
    *,
    root: str = "data",
    download: bool = False,
    val_size: Annotated[int, Field(ge=0)] | Annotated[float, Field(ge=0, lt=1)] = 0,
    normalize: bool = False,
    mean: float = 0.1307,
    std: Annotated[float, Field(gt=0)] = 0.3081,
) -> DataBundle:
    """torchvision MNIST: 60,000 training and 10,000 test digits, 28×28 uint8.

    ``root`` is relative to the pipeline file; the files are looked for in ``<root>/MNIST/raw``.
    ``val_size`` carves a validation split from the training images (a count, like the tutorial's
    ``random_split(trainset, [50000, 10000])``, or a fraction), shuffled with the run's seed.
    """
    from torchvision import datasets

    folder = Path(os.path.normpath(root if Path(root).is_absolute() else context.base_dir / root))
    raw = folder / "MNIST" / "raw"
    missing = prepare_raw_files(raw) if raw.is_dir() else list(FILES)
    if missing and not download:
        raise ConfigError(
            f"MNIST files not found: looked in {raw} for {', '.join(f'{m}[.gz]' for m in missing)}. "
            "Set download = true under [data] to fetch them (needs internet), or copy the four IDX files "
            "(gzipped or not) into that folder."
        )
    try:
        train = datasets.MNIST(str(folder), train=True, download=download)
        test = datasets.MNIST(str(folder), train=False, download=download)
    except (RuntimeError, OSError, AssertionError, ValueError) as error:  # torchvision asserts on a bad IDX header
        reason = str(error) or "a file is not in IDX format (wrong header or size)"
        raise ConfigError(f"MNIST could not be loaded from {raw}: {reason}") from error

    images, labels = train.data.unsqueeze(1), train.targets.to(torch.int64)
    splits = {"test": Split(test.data.unsqueeze(1), test.targets.to(torch.int64))}
    held_out = _validation_count(val_size, len(images))
    if held_out:
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(context.seed))
        splits["validation"] = Split(images[order[:held_out]], labels[order[:held_out]])
        images, labels = images[order[held_out:]], labels[order[held_out:]]
    splits["train"] = Split(images, labels)
    spec = DataSpec(
        task="multiclass",
        input_shape=tuple(images.shape[1:]),
        num_outputs=10,
        classes=tuple(str(digit) for digit in range(10)),
        input_dtype=torch.uint8,
        image=ImageSpec(),
    )
    preprocess = ScaleImages(mean, std) if normalize else ScaleImages()
    return DataBundle(spec, splits, preprocess, description=f"MNIST (torchvision) from {raw}")


@hookimpl
def register_datasets(register: Register) -> None:
    register("mnist", mnist)
