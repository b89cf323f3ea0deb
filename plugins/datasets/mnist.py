"""MNIST and Fashion-MNIST through torchvision's real ``datasets.MNIST`` / ``FashionMNIST``,
loaded once as uint8 tensors of 1×28×28 images.

The tutorials decode every image through PIL and ``ToTensor`` on every epoch; here the whole split is
read once (torchvision parses the IDX files into a uint8 tensor) and the model's first layer scales
each batch to [0, 1] (and optionally normalizes: :class:`pipeline_core.ScaleImages`), so the exported
model takes raw 0–255 pixels. Gzipped IDX files (as distributed) are unpacked next to themselves
when the raw ones are absent. Both datasets have the same file names and format.
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from pipeline_core import ConfigError, DatasetContext, DataSpec, ImageSpec, Register, hookimpl

if TYPE_CHECKING:
    from pipeline_core import LoadedData

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DIGITS = tuple(str(digit) for digit in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
ValSize = Annotated[int, Field(ge=0)] | Annotated[float, Field(ge=0, lt=1)]
Std = Annotated[float, Field(gt=0)]


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


def _validation_count(val_size: int | float, rows: int, title: str) -> int:
    count = val_size if isinstance(val_size, int) else round(val_size * rows)
    if count >= rows:
        raise ConfigError(f"[data] val_size {val_size} leaves no {title} training images (there are {rows})")
    return count


def idx_dataset(
    dataset: type, title: str, classes: tuple[str, ...], context: DatasetContext, *, root: str, download: bool, val_size: int | float,
    mean: float | None, std: float,
) -> LoadedData:
    """torchvision's ``dataset`` class (MNIST or one of its same-format siblings) from
    ``<root>/<class name>/raw``, as uint8 1×28×28 images; ``mean`` (``None``: no normalization)."""
    import torch

    from pipeline_core import LoadedData, ScaleImages, Split

    folder = Path(os.path.normpath(root if Path(root).is_absolute() else context.base_dir / root))
    raw = folder / dataset.__name__ / "raw"
    missing = prepare_raw_files(raw) if raw.is_dir() else list(FILES)
    if missing and not download:
        raise ConfigError(
            f"{title} files not found: looked in {raw} for {', '.join(f'{m}[.gz]' for m in missing)}. "
            "Set download = true under [data] to fetch them (needs internet), or copy the four IDX files "
            "(gzipped or not) into that folder."
        )
    try:
        train = dataset(str(folder), train=True, download=download)
        test = dataset(str(folder), train=False, download=download)
    except (RuntimeError, OSError, AssertionError, ValueError) as error:  # torchvision asserts on a bad IDX header
        reason = str(error) or "a file is not in IDX format (wrong header or size)"
        raise ConfigError(f"{title} could not be loaded from {raw}: {reason}") from error

    images, labels = train.data.unsqueeze(1), train.targets.to(torch.int64)
    splits = {"test": Split(test.data.unsqueeze(1), test.targets.to(torch.int64))}
    held_out = _validation_count(val_size, len(images), title)
    if held_out:
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(context.seed))
        splits["validation"] = Split(images[order[:held_out]], labels[order[:held_out]])
        images, labels = images[order[held_out:]], labels[order[held_out:]]
    splits["train"] = Split(images, labels)
    spec = idx_spec(classes, tuple(images.shape[1:]))
    preprocess = ScaleImages(mean, std) if mean is not None else ScaleImages()
    return LoadedData(spec, splits, preprocess, description=f"{title} (torchvision) from {raw}")


def idx_spec(classes: tuple[str, ...], shape: tuple[int, ...] = (1, 28, 28)) -> DataSpec:
    """What an MNIST-format dataset gives a model: uint8 images (28×28 in every file of the format)."""
    return DataSpec("multiclass", shape, len(classes), classes, input_dtype="uint8", image=ImageSpec())


def mnist_spec(context: DatasetContext, **options: object) -> DataSpec:
    """The spec without reading the files, so ``pipeline validate`` can build and check the model."""
    return idx_spec(DIGITS)


def fashion_mnist_spec(context: DatasetContext, **options: object) -> DataSpec:
    return idx_spec(FASHION_CLASSES)


def mnist(
    context: DatasetContext,
    *,
    root: str = "data",
    download: bool = False,
    val_size: ValSize = 0,
    normalize: bool = False,
    mean: float = 0.1307,
    std: Std = 0.3081,
) -> LoadedData:
    """torchvision MNIST: 60,000 training and 10,000 test digits, 28×28 uint8.

    ``root`` is relative to the pipeline file; the files are looked for in ``<root>/MNIST/raw``.
    ``val_size`` carves a validation split from the training images (a count, like the tutorial's
    ``random_split(trainset, [50000, 10000])``, or a fraction), shuffled with the run's seed.
    """
    from torchvision import datasets

    return idx_dataset(datasets.MNIST, "MNIST", DIGITS, context, root=root, download=download, val_size=val_size,
                       mean=mean if normalize else None, std=std)


def fashion_mnist(
    context: DatasetContext,
    *,
    root: str = "data",
    download: bool = False,
    val_size: ValSize = 0,
    normalize: bool = False,
    mean: float = 0.2860,
    std: Std = 0.3530,
) -> LoadedData:
    """torchvision Fashion-MNIST: 60,000 training and 10,000 test 28×28 grayscale clothing images in
    10 classes (T-shirt/top … Ankle boot), the same IDX files as MNIST in ``<root>/FashionMNIST/raw``."""
    from torchvision import datasets

    return idx_dataset(datasets.FashionMNIST, "Fashion-MNIST", FASHION_CLASSES, context, root=root, download=download,
                       val_size=val_size, mean=mean if normalize else None, std=std)


@hookimpl
def register_datasets(register: Register) -> None:
    register("mnist", mnist, spec=mnist_spec)
    register("fashion_mnist", fashion_mnist, spec=fashion_mnist_spec)
