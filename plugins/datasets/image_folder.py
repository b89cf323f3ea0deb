"""A folder of labelled images (torchvision's ImageFolder layout) as a streamed dataset.

``root/<class>/<image>.png`` (or ``.jpg``): one subfolder per class, split into train, validation
and test with the run's seed, stratified by class. Or ``root/train/<class>/…`` and
``root/test/<class>/…`` (and optionally ``val``, ``valid`` or ``validation``) for splits made in
advance; a split without a folder is carved from ``train`` by its fraction.

Every file is checked before anything trains (header, completeness, colour mode, size after the
deterministic transforms) and each problem is reported with the files concerned. The splits are
:class:`pipeline_core.StreamedSplit`\\ s of files decoded with Pillow, so the host decodes them
once into memory when they fit ``[data] memory_limit`` and streams them through worker processes when
they do not.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from pipeline_core import ConfigError, DatasetContext, DataSpec, ImageSpec, Register, hookimpl
from pipeline_core_plugins.datasets import image_files
from pipeline_core_plugins.datasets.image_transforms import Pipeline, Transform, order_problem

if TYPE_CHECKING:
    import torch

    from pipeline_core import LoadedData

SPLIT_FOLDERS = {"train": ("train",), "test": ("test",), "validation": ("val", "valid", "validation")}
TestFraction = Annotated[float, Field(ge=0, lt=1)]
ValFraction = Annotated[float, Field(ge=0, lt=1)]


def _split_folders(root: Path, layout: str) -> dict[str, Path]:
    """``{split: folder}`` for the ``splits`` layout (``auto``: when ``root`` has train/ and test/ or
    val/ folders and nothing else); empty for the ``classes`` layout."""
    if not root.is_dir():
        raise ConfigError(f"data.root: folder not found: {root} (relative paths start at the pipeline file's folder)")
    names = {entry.name for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith(".")}
    known = {name for names_ in SPLIT_FOLDERS.values() for name in names_}
    if layout == "classes" or (layout == "auto" and not ("train" in names and names <= known and len(names) > 1)):
        return {}
    if "train" not in names:
        raise ConfigError(f"data.layout: 'splits' needs a train/ folder in {root} (found: {', '.join(sorted(names)) or 'no folders'})")
    folders = {"train": root / "train"}
    for split in ("test", "validation"):
        present = [name for name in SPLIT_FOLDERS[split] if name in names]
        if len(present) > 1:
            raise ConfigError(f"data.root: {root} has {', '.join(present)} folders; keep one {split} folder")
        if present:
            folders[split] = root / present[0]
    return folders


def _stratified(labels: torch.Tensor, fraction: float, seed: int, salt: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices (kept, taken): ``fraction`` of each class taken at random (rounded, seeded)."""
    import torch

    generator = torch.Generator().manual_seed(seed * 1_000_003 + salt)
    kept, taken = [], []
    for label in labels.unique(sorted=True):
        rows = (labels == label).nonzero().view(-1)
        rows = rows[torch.randperm(len(rows), generator=generator)]
        count = round(fraction * len(rows))
        taken.append(rows[:count])
        kept.append(rows[count:])
    return torch.cat(kept).sort().values, torch.cat(taken).sort().values


def _labelled_files(folders: dict[str, Path]) -> tuple[tuple[str, ...], dict[str, list[Path]], dict[str, torch.Tensor]]:
    """The classes (the training folder's class folders), and each split's files with their labels."""
    import torch

    by_split = {split: image_files.class_folders(folder, "data.root") for split, folder in folders.items()}
    classes = tuple(by_split["train"])
    if len(classes) < 2:
        raise ConfigError(f"data.root: {folders['train']} has {len(classes)} class folder ({', '.join(classes)}); a classifier needs at least two")
    files: dict[str, list[Path]] = {}
    labels: dict[str, torch.Tensor] = {}
    for split, found in by_split.items():
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise ConfigError(f"data.root: {folders[split]} has class folder(s) {', '.join(unknown)} that {folders['train']} does not have")
        files[split] = [path for name in found for path in found[name]]
        labels[split] = torch.tensor([classes.index(name) for name in found for _ in found[name]], dtype=torch.int64)
    return classes, files, labels


def _carve_splits(files: dict[str, list[Path]], labels: dict[str, torch.Tensor], test_size: float, val_size: float, seed: int) -> None:
    """Take the test and validation splits that have no folder of their own from the training images,
    stratified and seeded (in place)."""
    carved_test = "test" not in files and test_size > 0
    for split, fraction, salt in (("test", test_size, 1), ("validation", val_size, 2)):
        if split in files or not fraction:
            continue
        # val_size is a share of the whole folder, like test_size: of what the test split left, a larger share
        share = fraction / (1 - test_size) if split == "validation" and carved_test else fraction
        if share >= 1:
            raise ConfigError(f"data.val_size: test_size {test_size} + val_size {val_size} leave no training images")
        kept, taken = _stratified(labels["train"], share, seed, salt)
        if not len(kept):
            raise ConfigError(f"data.{'test_size' if split == 'test' else 'val_size'}: {fraction} leaves no training images")
        files[split] = [files["train"][i] for i in taken.tolist()]
        labels[split] = labels["train"][taken]
        files["train"] = [files["train"][i] for i in kept.tolist()]
        labels["train"] = labels["train"][kept]


def image_folder(
    context: DatasetContext,
    *,
    root: str,
    transforms: list[Transform] = [],  # noqa: B006 (options are validated copies, never mutated)
    mode: Literal["auto", "gray", "rgb"] = "auto",
    layout: Literal["auto", "classes", "splits"] = "auto",
    test_size: TestFraction = 0.2,
    val_size: ValFraction = 0.0,
    verify: Literal["header", "decode"] = "header",
) -> LoadedData:
    """Images in class folders (PNG/JPEG), decoded with Pillow, transformed by torchvision, split with the run's seed.

    ``transforms``: resize/center_crop (every split), then augmentations (training only), then
    normalize (inside the model). ``mode``: ``auto`` (every image must be grayscale, or every image
    colour), ``gray`` or ``rgb`` (convert). ``layout``: ``classes`` (root/<class>/), ``splits``
    (root/train/<class>/, root/test/<class>/, optionally root/val/<class>/) or ``auto``. ``test_size`` and
    ``val_size``: fractions of each class carved from the training images when there is no such folder.
    ``verify``: ``header`` (read each file's header and end) or ``decode`` (decode every file once).
    """
    import torch

    from pipeline_core import LoadedData, StreamedSplit

    problem = order_problem(list(transforms))
    if problem:
        raise ConfigError(f"data.{problem}")
    pipeline = Pipeline(list(transforms))
    folder = Path(os.path.normpath(root if Path(root).is_absolute() else context.base_dir / root))
    folders = _split_folders(folder, layout) or {"train": folder}
    classes, files, labels = _labelled_files(folders)

    everything = [path for split in files for path in files[split]]
    headers = image_files.scan(everything, folder, decode=verify == "decode")
    color = image_files.choose_mode(everything, headers, mode, folder)
    sizes = [pipeline.output_size(header.height, header.width) for header in headers]
    height, width = image_files.common_size(everything, sizes, folder, resized=bool(pipeline.deterministic))
    channels = 1 if color == "gray" else 3
    shape = (channels, height, width)

    _carve_splits(files, labels, test_size, val_size, context.seed)
    if not len(files.get("test", [])):
        raise ConfigError(f"data.test_size: no test images ({folders['train']} has {len(files['train'])} images); raise test_size or add a test/ folder")

    deterministic = pipeline.deterministic_transform()
    splits = {
        split: StreamedSplit(
            image_files.ImageItems(folder, paths, color, deterministic, shape), labels[split], shape, torch.uint8,
            augment=pipeline.augment(height, width) if split == "train" else None, name=split,
        )
        for split, paths in files.items()
    }
    preprocess = pipeline.scaling(channels)
    spec = DataSpec("multiclass", shape, len(classes), classes, input_dtype="uint8", image=ImageSpec(pipeline.image_steps()))
    counts = ", ".join(f"{split} {len(paths)}" for split, paths in files.items())
    return LoadedData(spec, splits, preprocess, description=f"image folder {folder} ({len(classes)} classes, {color} {height}×{width}; {counts})")


@hookimpl
def register_datasets(register: Register) -> None:
    register("image_folder", image_folder)
