"""Image inputs for a bundle of an image model (``metadata.json`` has ``image``): PNG and JPEG
files, a folder of them, or base64 in JSON, decoded with Pillow and resized as the data pipeline did.

Why its own module: Pillow is imported only here, and only when an image is read, so a bundle of a
tabular model (and its ``predict.py``) never needs it.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np

from pipeline_core_deploy.bundle import Bundle
from pipeline_core_deploy.common import DeployError

#: image files a bundle whose metadata.json has an ``image`` entry takes, besides arrays
IMAGE_FORMATS = (".png", ".jpg", ".jpeg")
_IMAGE_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise DeployError("reading image files needs Pillow: pip install pillow") from None
    return Image


def is_image_input(path: Path) -> bool:
    """Whether ``path`` is an image file or a folder of them (else a file of rows)."""
    return path.is_dir() or path.suffix.lower() in IMAGE_FORMATS


def image_spec(bundle: Bundle, source: str) -> dict[str, Any]:
    """``metadata.json``'s ``image``: the channels, size and resize steps an image becomes an input row by."""
    spec = bundle.metadata.get("image")
    if not isinstance(spec, dict):
        raise DeployError(f"{source}: this bundle's model takes rows of {bundle.describe_input()}, not images "
                          "(its metadata.json has no 'image' entry)")
    return spec


def _resample(Image: Any, name: str) -> Any:
    return {"nearest": Image.Resampling.NEAREST, "bicubic": Image.Resampling.BICUBIC}.get(name, Image.Resampling.BILINEAR)


def _resized(Image: Any, picture: Any, steps: list[dict[str, Any]], height: int, width: int) -> Any:
    """``picture`` through the data pipeline's geometric steps, with torchvision's meaning (``resize``
    to [h, w], or the shorter side to [s] keeping the aspect ratio; ``center_crop``, padding with
    zeros where the image is smaller), then to (``width``, ``height``) if it is not there yet."""
    for step in steps:
        size, (w, h) = step["size"], picture.size
        if step["op"] == "resize":
            if len(size) == 1:
                short, long = (w, h) if w <= h else (h, w)
                new_short, new_long = size[0], int(size[0] * long / short)
                size = [new_long, new_short] if w <= h else [new_short, new_long]
            picture = picture.resize((size[1], size[0]), _resample(Image, step.get("interpolation", "bilinear")))
        elif step["op"] == "center_crop":
            crop_h, crop_w = size if len(size) == 2 else (size[0], size[0])
            top = int(round((h - crop_h) / 2.0)) if h >= crop_h else -((crop_h - h) // 2)
            left = int(round((w - crop_w) / 2.0)) if w >= crop_w else -((crop_w - w) // 2)
            picture = picture.crop((left, top, left + crop_w, top + crop_h))  # Pillow fills outside the image with zeros
    if picture.size != (width, height):
        picture = picture.resize((width, height), Image.Resampling.BILINEAR)
    return picture


def decode_image(data: bytes, bundle: Bundle, source: str) -> np.ndarray:
    """One PNG or JPEG image as the model's input row: decoded to the bundle's channels, resized as
    its data pipeline did, (C, H, W) pixels 0–255 in the model's input dtype. ``source`` names the
    image in every message (a file, or ``request body: image 2``)."""
    spec = image_spec(bundle, source)
    Image = _pillow()
    channels, height, width = spec["channels"], spec["height"], spec["width"]
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in ("PNG", "JPEG"):
                raise DeployError(f"{source} is a {image.format} image; send PNG or JPEG")
            image.load()  # decodes every pixel: a truncated or corrupt file fails here
            picture = image.convert(_IMAGE_MODES[channels])
    except DeployError:
        raise
    except Image.DecompressionBombError as error:
        raise DeployError(f"{source} is too large to decode safely ({error})") from None
    except Exception as error:  # Pillow raises UnidentifiedImageError, OSError, SyntaxError, ValueError for bad files
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise DeployError(f"{source} is not a readable PNG or JPEG image ({reason})") from None
    pixels = np.asarray(_resized(Image, picture, list(spec.get("resize", [])), height, width), dtype=np.uint8)
    pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
    return pixels.transpose(2, 0, 1).astype(bundle.input_dtype)


class ImageFiles:
    """The image files of ``path`` (one file, or every PNG and JPEG file of a folder, by name) as rows
    the model takes, decoded a slice at a time: a folder larger than memory streams through
    :func:`write_predictions`. ``names`` are the files, in row order."""

    def __init__(self, path: Path, bundle: Bundle) -> None:
        image_spec(bundle, str(path))
        if path.is_dir():
            self.files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_FORMATS and p.is_file() and not p.name.startswith("."))
            if not self.files:
                raise DeployError(f"{path} holds no PNG or JPEG files ({', '.join(IMAGE_FORMATS)})")
            self.names = [p.name for p in self.files]
        elif path.is_file():
            self.files, self.names = [path], [path.name]
        else:
            raise DeployError(f"input file not found: {path}")
        self.bundle = bundle

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, rows: slice) -> np.ndarray:
        return np.stack([decode_image(self._read(file), self.bundle, str(file)) for file in self.files[rows]])

    @staticmethod
    def _read(file: Path) -> bytes:
        try:
            data = file.read_bytes()
        except OSError as error:
            raise DeployError(f"cannot read {file}: {error.strerror or error}") from None
        if not data:
            raise DeployError(f"{file} is empty: expected a PNG or JPEG image")
        return data


def images_from_json(data: list[Any], bundle: Bundle, source: str) -> np.ndarray:
    """Rows from JSON items ``{"b64": "<base64 PNG or JPEG>"}`` (TensorFlow Serving's and KServe
    v1's convention for binary data in JSON), one image each."""
    rows = []
    for number, item in enumerate(data, start=1):
        where = f"{source}: image {number}"
        try:
            encoded = base64.b64decode(item["b64"], validate=True)
        except (TypeError, ValueError):
            raise DeployError(f"{where}: 'b64' must be a base64 string of a PNG or JPEG file") from None
        rows.append(decode_image(encoded, bundle, where))
    return np.stack(rows)
