"""CIFAR-10 from its binary distribution (``cifar-10-batches-bin``), never from the python pickles.

The binary version is plain records: one label byte, then 32×32 red, green and blue planes (3,073
bytes a record), 10,000 records in each of ``data_batch_1.bin`` … ``data_batch_5.bin`` and
``test_batch.bin``, class names one per line in ``batches.meta.txt``. The python version is pickled
numpy arrays, and unpickling a file can run any code in it, so it is refused with a pointer to the
binary one. Records are memory-mapped and served as a :class:`pipeline_core.StreamedSplit`: decoded
into memory when they fit ``[data] memory_limit`` (184 MB for all 60,000), streamed otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from pipeline_core import ConfigError, DatasetContext, DataSpec, ImageSpec, Register, hookimpl
from pipeline_core_plugins.datasets.image_transforms import Pipeline, Transform, order_problem

if TYPE_CHECKING:  # torch loads when the dataset loads, not when it registers (pipeline plugins, validate)
    import numpy as np
    import torch

    from pipeline_core import LoadedData

FOLDER = "cifar-10-batches-bin"
TRAIN_FILES = tuple(f"data_batch_{n}.bin" for n in range(1, 6))
TEST_FILE = "test_batch.bin"
META_FILE = "batches.meta.txt"
SHAPE = (3, 32, 32)
RECORD = 1 + 3 * 32 * 32
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class Records:
    """``records[i]``: image ``i`` of the batch files as uint8 (3, 32, 32), through ``transform``.
    The files are memory-mapped on first use in each process (a worker maps its own)."""

    def __init__(self, files: list[Path], transform: torch.nn.Module | None = None) -> None:
        import numpy as np

        self.files = [str(path) for path in files]
        self.counts = [os.path.getsize(path) // RECORD for path in files]
        self.starts = np.cumsum([0, *self.counts])
        self.transform = transform
        self._maps: list[np.ndarray] | None = None

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_maps": None}  # a worker maps the files itself

    def maps(self) -> list[np.ndarray]:
        import numpy as np

        if self._maps is None:
            self._maps = [np.memmap(path, dtype=np.uint8, mode="r").reshape(count, RECORD) for path, count in zip(self.files, self.counts, strict=True)]
        return self._maps

    def __len__(self) -> int:
        return int(self.starts[-1])

    def labels(self) -> torch.Tensor:
        import numpy as np
        import torch

        return torch.from_numpy(np.concatenate([np.asarray(records[:, 0]) for records in self.maps()]).astype(np.int64))

    def __getitem__(self, index: int) -> torch.Tensor:
        import numpy as np
        import torch

        file = int(np.searchsorted(self.starts, index, side="right")) - 1
        image = torch.from_numpy(np.array(self.maps()[file][index - self.starts[file], 1:]).reshape(SHAPE))
        return self.transform(image) if self.transform is not None else image


def _files(folder: Path) -> tuple[list[Path], Path, tuple[str, ...]]:
    """The train batch files, the test batch file and the class names, or an error saying what is missing."""
    missing = [name for name in (*TRAIN_FILES, TEST_FILE) if not (folder / name).is_file()]
    if missing:
        pickles = folder.parent / "cifar-10-batches-py"
        hint = (f" {pickles} is the python version: its files are pickles, which can run code when read, so they are not read."
                if pickles.is_dir() else "")
        raise ConfigError(
            f"data.root: CIFAR-10 binary files not found: looked in {folder} for {', '.join(missing)}.{hint} Download the "
            "binary version (cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html) and unpack it into the root folder"
        )
    for name in (*TRAIN_FILES, TEST_FILE):
        size = (folder / name).stat().st_size
        if size == 0 or size % RECORD:
            raise ConfigError(f"{folder / name}: {size} bytes is not a whole number of {RECORD}-byte CIFAR-10 records; the file is truncated or not a CIFAR-10 batch")
    classes = CLASSES
    meta = folder / META_FILE
    if meta.is_file():
        classes = tuple(line.strip() for line in meta.read_text(encoding="utf-8").splitlines() if line.strip())
    return [folder / name for name in TRAIN_FILES], folder / TEST_FILE, classes


def cifar10(
    context: DatasetContext,
    *,
    root: str = "data",
    transforms: list[Transform] = [],  # noqa: B006 (options are validated copies, never mutated)
    val_size: Annotated[int, Field(ge=0)] | Annotated[float, Field(ge=0, lt=1)] = 0,
) -> LoadedData:
    """CIFAR-10's binary version: 50,000 training and 10,000 test 32×32 colour images, 10 classes.

    ``root`` is relative to the pipeline file; the files are looked for in ``<root>/cifar-10-batches-bin``.
    ``transforms`` as for ``image_folder`` (the CIFAR recipe: ``[{ name = "random_crop", padding = 4 },
    "horizontal_flip", { name = "normalize", mean = [0.4914, 0.4822, 0.4465], std = [0.2470, 0.2435, 0.2616] }]``).
    ``val_size`` carves a validation split (a count or a fraction) from the training images with the run's seed.
    """
    import torch

    from pipeline_core import LoadedData, StreamedSplit

    problem = order_problem(list(transforms))
    if problem:
        raise ConfigError(f"data.{problem}")
    pipeline = Pipeline(list(transforms))
    folder = Path(os.path.normpath(root if Path(root).is_absolute() else context.base_dir / root)) / FOLDER
    train_files, test_file, classes = _files(folder)
    height, width = pipeline.output_size(*SHAPE[1:])
    shape = (3, height, width)
    deterministic = pipeline.deterministic_transform()
    train, test = Records(train_files, deterministic), Records([test_file], deterministic)
    train_labels, test_labels = train.labels(), test.labels()
    if int(max(train_labels.max(), test_labels.max())) >= len(classes):
        raise ConfigError(f"{folder}: a record's label is {int(max(train_labels.max(), test_labels.max()))}, but there are {len(classes)} classes")
    held_out = val_size if isinstance(val_size, int) else round(val_size * len(train))
    if held_out >= len(train):
        raise ConfigError(f"data.val_size: {val_size} leaves no CIFAR-10 training images (there are {len(train)})")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(context.seed))
    augment = pipeline.augment(height, width)
    splits: dict[str, StreamedSplit] = {"test": StreamedSplit(test, test_labels, shape, name="test")}
    rows = order[held_out:].sort().values
    splits["train"] = StreamedSplit(_Subset(train, rows), train_labels[rows], shape, augment=augment, name="train")
    if held_out:
        rows = order[:held_out].sort().values
        splits["validation"] = StreamedSplit(_Subset(train, rows), train_labels[rows], shape, name="validation")
    spec = DataSpec("multiclass", shape, len(classes), classes, input_dtype="uint8", image=ImageSpec(pipeline.image_steps()))
    return LoadedData(spec, splits, pipeline.scaling(3), description=f"CIFAR-10 (binary version) from {folder}")


class _Subset:
    """Rows ``rows`` of ``items``, in that order."""

    def __init__(self, items: Records, rows: torch.Tensor) -> None:
        self.items, self.rows = items, rows.numpy()

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.items[int(self.rows[index])]


@hookimpl
def register_datasets(register: Register) -> None:
    register("cifar10", cifar10)
