"""Small folders of real PNG and JPEG files for the image-data tests, written with Pillow.

Each class has its own dominant colour (or brightness, in grayscale) plus noise, so a small model
learns them in a few epochs, and every file is a real encoded image that torchvision decodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("circle", "square", "triangle")


def image_array(label: int, size: tuple[int, int], mode: str, generator: np.random.Generator) -> np.ndarray:
    """An (H, W[, 3]) uint8 picture of class ``label``: noise over the class's colour."""
    height, width = size
    noise = generator.integers(0, 60, (height, width, 3), dtype=np.uint8)
    noise[..., label % 3] += 150
    return noise.mean(axis=2).astype(np.uint8) if mode == "L" else noise


def write_image(path: Path, array: np.ndarray, mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=None).convert(mode).save(path)
    return path


def write_image_folder(
    root: Path,
    per_class: int = 10,
    size: tuple[int, int] = (20, 24),
    mode: str = "RGB",
    classes: tuple[str, ...] = CLASSES,
    suffix: str = ".png",
    seed: int = 0,
) -> Path:
    """``root/<class>/<n><suffix>`` for each class: ``per_class`` images of ``size`` (H, W) in Pillow ``mode``."""
    generator = np.random.default_rng(seed)
    for label, name in enumerate(classes):
        for index in range(per_class):
            write_image(root / name / f"{index:03d}{suffix}", image_array(label, size, mode, generator), mode)
    return root


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file to ``keep`` of its bytes, as an interrupted download leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path
