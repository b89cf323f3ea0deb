"""Image files on disk: finding them in class folders, checking them before training, decoding them.

The scan opens every file's header (Pillow reads a few hundred bytes) for its size and colour mode,
and reads its last bytes for the end marker a complete PNG or JPEG has; a file whose header does not
parse, or whose end marker is missing and which does not decode either, is reported with its path
before anything trains.

Decoding is Pillow's (as torchvision's own ``ImageFolder`` loader), to uint8 (C, H, W), and the
transforms are torchvision's. Not ``torchvision.io.decode_image``: in torchvision 0.29 it crashes the
process with a segmentation fault on a PNG whose image data is damaged (libpng's "bad adaptive
filter value"; tests/data/test_image_data.py has such a file), where Pillow raises an error that names
the file; and torchvision 0.29 deprecates its decoders.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pipeline_core import ConfigError

if TYPE_CHECKING:  # torch loads with the first decoded image, not when the dataset registers
    import torch
    from torch import nn

SUFFIXES = (".png", ".jpg", ".jpeg")
#: Pillow modes whose pixels are one channel (with or without alpha); any other is colour.
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
#: formats torchvision decodes here, as Pillow names them (MPO: a JPEG with extra frames, from cameras)
FORMATS = ("PNG", "JPEG", "MPO")
END_MARKERS = {"PNG": b"IEND", "JPEG": b"\xff\xd9", "MPO": b"\xff\xd9"}
#: bytes at the end of a file searched for its end marker
TAIL = 64
#: files named per problem in an error message, at most
SHOWN = 5

Mode = Literal["gray", "rgb"]


@dataclass(frozen=True)
class Header:
    """What the scan learned of one file without decoding it."""

    height: int
    width: int
    gray: bool


def relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def examples(paths: list[Path], root: Path) -> str:
    """Up to :data:`SHOWN` paths, relative to ``root``, and how many more."""
    shown = ", ".join(relative(path, root) for path in paths[:SHOWN])
    return shown + (f" and {len(paths) - SHOWN} more" if len(paths) > SHOWN else "")


def images_in(folder: Path) -> list[Path]:
    """The PNG and JPEG files under ``folder`` (recursively, hidden files skipped), sorted."""
    found = []
    for directory, subfolders, files in os.walk(folder, followlinks=True):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        found += [Path(directory) / name for name in files if not name.startswith(".") and name.lower().endswith(SUFFIXES)]
    return sorted(found)


def class_folders(folder: Path, key: str) -> dict[str, list[Path]]:
    """``{class name: its image files}`` for the class subfolders of ``folder``; an empty class
    folder or a folder without class folders is an error naming ``key`` and the folder."""
    if not folder.is_dir():
        raise ConfigError(f"{key}: folder not found: {folder} (relative paths start at the pipeline file's folder)")
    names = sorted(entry.name for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    if not names:
        loose = images_in(folder)
        hint = f"; it holds {len(loose)} image(s) but no class folders" if loose else ""
        raise ConfigError(f"{key}: no images: {folder} has no class subfolders (expected {folder}/<class>/<image>.png){hint}")
    classes = {name: images_in(folder / name) for name in names}
    empty = [name for name, files in classes.items() if not files]
    if empty:
        raise ConfigError(
            f"{key}: empty class folder(s) {', '.join(str(folder / name) for name in empty)}: no {', '.join(SUFFIXES)} files; "
            "add images or remove the folder"
        )
    return classes


def _error_text(error: BaseException) -> str:
    """An exception's message without the C++ source location torchvision prefixes it with."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return re.sub(r"^[\w():<>~]+, \S+\.(?:cpp|h):\d+, ", "", text)


def read_header(path: Path) -> Header | str:
    """The file's size and mode, or why it is not a readable, complete PNG or JPEG."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            mode, kind = image.mode, image.format
    except Exception as error:  # Pillow raises several kinds for a file that is not a readable image
        return f"not a readable image ({_error_text(error)})"
    if kind not in FORMATS:
        return f"a {kind} file; only PNG and JPEG are read"
    with open(path, "rb") as stream:
        stream.seek(max(0, path.stat().st_size - TAIL))
        tail = stream.read()
    if END_MARKERS[kind] not in tail:  # truncated, or trailing data after the end: decoding tells which
        problem = decode_problem(path)
        if problem is not None:
            return problem
    return Header(height, width, mode in GRAY_MODES)


def decode(path: str, mode: Mode) -> torch.Tensor:
    """The image at ``path`` as uint8 (1 or 3, H, W): grayscale or RGB as ``mode`` says (palette,
    alpha and CMYK images converted; 16- and 32-bit grayscale scaled to 8 bits)."""
    import numpy as np
    import torch
    from PIL import Image

    with Image.open(path) as image:
        if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):  # more than 8 bits: keep the top 8
            image = image.point(lambda value: value * (1 / 256)).convert("L")
        pixels = np.array(image.convert("L" if mode == "gray" else "RGB"))  # one copy, writable
    tensor = torch.from_numpy(pixels)
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1)  # a view: the next step copies it


def decode_problem(path: Path) -> str | None:
    """Why the file cannot be decoded, or ``None`` when it can."""
    try:
        decode(str(path), "rgb")
    except Exception as error:
        return f"cannot be decoded ({_error_text(error)}): truncated or corrupt"
    return None


def scan(files: list[Path], root: Path, decode: bool = False) -> list[Header]:
    """Every file's header (and with ``decode``, a full decode); every unreadable file is named in one error."""
    headers, bad = [], []
    for path in files:
        found = read_header(path)
        if isinstance(found, Header) and decode:
            found = decode_problem(path) or found
        if isinstance(found, str):
            bad.append(f"{relative(path, root)}: {found}")
        else:
            headers.append(found)
    if bad:
        listing = "; ".join(bad[:SHOWN]) + (f"; and {len(bad) - SHOWN} more" if len(bad) > SHOWN else "")
        raise ConfigError(f"data.root: {len(bad)} corrupt or unreadable image file(s) under {root}: {listing}. Replace or remove them")
    return headers


def choose_mode(files: list[Path], headers: list[Header], mode: str, root: Path) -> Mode:
    """The colour mode to decode to: as set, or the one every file has (``auto``); mixed files under
    ``auto`` are an error naming the files of the rarer kind."""
    if mode != "auto":
        return mode  # type: ignore[return-value]
    gray = [path for path, header in zip(files, headers, strict=True) if header.gray]
    color = [path for path, header in zip(files, headers, strict=True) if not header.gray]
    if gray and color:
        rarer, kind = (gray, "grayscale") if len(gray) <= len(color) else (color, "colour")
        raise ConfigError(
            f"data.mode: the images mix grayscale ({len(gray)} files) and colour ({len(color)} files); the {kind} ones: "
            f"{examples(rarer, root)}. Set mode = \"rgb\" to decode every image as RGB, or mode = \"gray\" as grayscale"
        )
    return "gray" if gray else "rgb"


def common_size(files: list[Path], sizes: list[tuple[int, int]], root: Path, resized: bool) -> tuple[int, int]:
    """The one (height, width) every image has after the deterministic transforms, or an error
    naming the sizes found, files of each, and the transform that makes them one size."""
    counts = Counter(sizes)
    if len(counts) == 1:
        return sizes[0]
    by_size: dict[tuple[int, int], list[Path]] = {}
    for path, size in zip(files, sizes, strict=True):
        by_size.setdefault(size, []).append(path)
    listing = "; ".join(f"{h}×{w}: {count} file(s), e.g. {examples(by_size[(h, w)][:2], root)}" for (h, w), count in counts.most_common(4))
    (height, width), _ = counts.most_common(1)[0]
    after = " after the transforms" if resized else ""
    raise ConfigError(
        f"data.transforms: the images have {len(counts)} different sizes{after} ({listing}); a batch needs one size: "
        f"add a resize to one size first, e.g. transforms = [{{ name = \"resize\", size = [{height}, {width}] }}] "
        "(or resize the shorter side and center_crop)"
    )


class ImageItems:
    """``items[i]``: image ``i`` decoded to uint8 (C, H, W) and through the deterministic transforms.

    Paths are kept as one NumPy byte array relative to ``root``, not a list of Python strings: worker
    processes then share them without copying (reference counts never touch the pages)."""

    def __init__(self, root: Path, files: list[Path], mode: Mode, transform: nn.Module | None, shape: tuple[int, int, int]) -> None:
        import numpy as np

        self.root, self.mode, self.transform, self.shape = str(root), mode, transform, shape
        self.paths = np.array([os.fsencode(relative(path, root)) for path in files])

    def __len__(self) -> int:
        return len(self.paths)

    def path(self, index: int) -> str:
        return os.path.join(self.root, os.fsdecode(self.paths[index]))

    def __getitem__(self, index: int) -> torch.Tensor:
        path = self.path(index)
        try:
            image = decode(path, self.mode)
        except Exception as error:  # Pillow raises several kinds for a damaged file
            raise ConfigError(f"{path}: cannot decode the image ({_error_text(error)}); replace or remove the file") from None
        if self.transform is not None:
            image = self.transform(image)
        if tuple(image.shape) != self.shape:
            raise ConfigError(
                f"{path}: decoded to {tuple(image.shape)} after the transforms, but the images are {self.shape} "
                "(was the file replaced during the run?)"
            )
        return image
