"""Image models on the deploy side, without torch: predict.py and ``pipeline serve`` take PNG and
JPEG files (one, a folder, a raw request body, base64 in JSON) as well as arrays, resize them as the
data pipeline did, and answer bad images with a clear error."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torchvision.transforms import v2

from pipeline_core.cli import cli
from pipeline_core.testing import run_pipeline, small_pipeline
from pipeline_core_deploy import predict

import image_plugin
from helpers import start

RESIZE = [{"op": "resize", "size": [36]}, {"op": "center_crop", "size": [32, 32]}]


def _bundle(folder: Path, channels: int, resize: list[dict]) -> Path:
    """A small convolutional model on the test's synthetic images, exported to ONNX and sealed."""
    pipeline = small_pipeline(
        pipeline={"name": f"squares{channels}", "seed": 0},
        data={"name": "synthetic_images", "channels": channels, "per_class": 8, "resize": resize},
        model={"name": "cnn", "channels": [4], "global_pool": "avg"},
        train={"epochs": 1, "batch_size": 16},
        export={"formats": ["onnx"]},
    )
    return run_pipeline(pipeline, folder, plugins=[image_plugin]).run_dir / "bundle"


@pytest.fixture(scope="module")
def gray(tmp_path_factory) -> Path:
    """1×32×32 images, no resize in the data pipeline."""
    return _bundle(tmp_path_factory.mktemp("gray"), 1, [])


@pytest.fixture(scope="module")
def colour(tmp_path_factory) -> Path:
    """3×32×32 images that the data pipeline resized (shorter side 36) and center-cropped to 32×32."""
    return _bundle(tmp_path_factory.mktemp("colour"), 3, RESIZE)


def _images(count: int, channels: int, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, channels, size, size), dtype=np.uint8)


def _png(pixels: np.ndarray, path: Path | None = None, fmt: str = "PNG") -> bytes:
    """(C, H, W) uint8 pixels as an encoded image (written to ``path`` when given)."""
    image = Image.fromarray(pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    if path is not None:
        path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def _records(path: Path) -> list[dict]:
    return json.loads(path.read_text())


def test_png_files_and_folders_predict_what_the_same_pixels_as_an_array_do(gray, tmp_path):
    pixels = _images(5, 1)
    folder = tmp_path / "images"
    folder.mkdir()
    for index, image in enumerate(pixels):
        _png(image, folder / f"img{index}.png")
    (folder / "notes.txt").write_text("not an image: ignored")
    np.save(tmp_path / "rows.npy", pixels)

    assert predict.predict(gray, tmp_path / "rows.npy", tmp_path / "arrays.json") == 5
    assert predict.predict(gray, folder, tmp_path / "folder.json") == 5
    arrays, files = _records(tmp_path / "arrays.json"), _records(tmp_path / "folder.json")
    assert [record.pop("file") for record in files] == [f"img{index}.png" for index in range(5)]
    assert files == arrays  # lossless PNG: the same pixels give the same predictions
    np.save(tmp_path / "floats.npy", pixels.astype(np.float32))  # raw 0-255 pixels as floats work as well
    assert predict.predict(gray, tmp_path / "floats.npy", tmp_path / "floats.json") == 5
    assert _records(tmp_path / "floats.json") == arrays

    assert predict.predict(gray, folder / "img3.png", tmp_path / "one.csv") == 1
    header, row = (tmp_path / "one.csv").read_text().splitlines()
    assert header.startswith("file,label,probability_top_left") and row.startswith(f"img3.png,{arrays[3]['label']},")


def test_the_data_pipelines_resize_is_redone_as_torchvision_did_it(colour, tmp_path):
    """A 50×40 photo, and one smaller than the crop: Pillow's steps give torchvision's pixels."""
    bundle = predict.open_bundle(colour)
    assert bundle.metadata["image"] == {"channels": 3, "height": 32, "width": 32, "resize": RESIZE}
    transform = v2.Compose([v2.Resize(36), v2.CenterCrop(32)])
    rng = np.random.default_rng(1)
    for height, width in ((50, 40), (20, 28), (32, 32)):
        photo = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        buffer = io.BytesIO()
        photo.save(buffer, format="PNG")
        expected = np.asarray(transform(photo)).transpose(2, 0, 1)
        decoded = predict.decode_image(buffer.getvalue(), bundle, "photo")
        np.testing.assert_array_equal(decoded, expected)
        # torchvision's resize of a uint8 tensor (antialiased to match PIL) rounds a little differently
        tensor = transform(torch.from_numpy(np.array(photo)).permute(2, 0, 1).contiguous()).numpy()
        assert np.abs(decoded.astype(int) - tensor.astype(int)).max() <= 1


def test_colour_jpeg_into_a_grayscale_model(gray, tmp_path):
    photo = _images(1, 3, size=64)[0]
    _png(photo, tmp_path / "photo.jpg", fmt="JPEG")
    row = predict.decode_image((tmp_path / "photo.jpg").read_bytes(), predict.open_bundle(gray), "photo.jpg")
    expected = np.asarray(Image.open(tmp_path / "photo.jpg").convert("L").resize((32, 32), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(row, expected[None])
    assert predict.predict(gray, tmp_path / "photo.jpg", tmp_path / "out.json") == 1


def test_the_bundles_own_predict_py_reads_images_without_torch(colour, tmp_path):
    _png(_images(1, 3)[0], tmp_path / "one.png")
    script = (f"import runpy, sys; sys.argv = ['predict.py', {str(colour)!r}, '--input', {str(tmp_path / 'one.png')!r}]\n"
              f"try:\n    runpy.run_path({str(colour / 'predict.py')!r}, run_name='__main__')\nexcept SystemExit as done:\n"
              "    assert not done.code, done.code\nassert 'torch' not in sys.modules, 'predict.py imported torch'\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("file,label,") and result.stdout.splitlines()[1].startswith("one.png,")


def _truncated(path: Path) -> None:
    path.write_bytes(_png(_images(1, 1)[0])[:120])


def _text(path: Path) -> None:
    path.write_text("hello, not pixels")


def _gif(path: Path) -> None:
    path.write_bytes(_png(_images(1, 1)[0], fmt="GIF"))


def _empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize("write, message", [
    (_truncated, "is not a readable PNG or JPEG image"),
    (_text, "is not a readable PNG or JPEG image (cannot identify image file"),
    (_gif, "is a GIF image; send PNG or JPEG"),
    (_empty, "is empty: expected a PNG or JPEG image"),
])
def test_bad_images_are_refused_with_the_file_named(gray, tmp_path, write, message):
    folder = tmp_path / "images"
    folder.mkdir()
    _png(_images(1, 1)[0], folder / "a_good.png")
    write(folder / "b_bad.png")
    result = CliRunner().invoke(cli, ["predict", str(gray), "--input", str(folder), "--output", str(tmp_path / "out.csv")])
    assert result.exit_code == 2, result.output
    assert f"error: {folder / 'b_bad.png'} {message}" in result.output.replace("\n", " ")
    assert "Traceback" not in result.output and not (tmp_path / "out.csv").exists()  # nothing half-written


def test_images_for_a_model_of_rows_or_an_empty_folder(gray, tmp_path):
    iris = run_pipeline(small_pipeline(train={"epochs": 1}, export={"formats": ["onnx"]}), tmp_path / "iris").run_dir / "bundle"
    _png(_images(1, 3)[0], tmp_path / "photo.png")
    result = CliRunner().invoke(cli, ["predict", str(iris), "--input", str(tmp_path / "photo.png")])
    assert result.exit_code == 2 and "this bundle's model takes rows of 4 float32 value(s) per row" in result.output
    assert "not images (its metadata.json has no 'image' entry)" in result.output
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(cli, ["predict", str(gray), "--input", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "holds no PNG or JPEG files" in result.output


def test_the_server_takes_image_bodies_and_base64_images(colour, tmp_path):
    photos = [np.asarray(Image.fromarray(p.transpose(1, 2, 0)).resize((45, 40))).transpose(2, 0, 1) for p in _images(3, 3)]
    folder = tmp_path / "photos"
    folder.mkdir()
    encoded = [_png(photo, folder / f"p{index}.png") for index, photo in enumerate(photos)]
    predict.predict(colour, folder, tmp_path / "expected.json")
    expected = [{key: value for key, value in record.items() if key != "file"} for record in _records(tmp_path / "expected.json")]

    server = start([str(colour)], tmp_path)
    try:
        url = f"{server.url}/v2/models/squares3/predict"
        metadata = httpx.get(f"{server.url}/v2/models/squares3").json()
        assert metadata["inputs"] == [{"name": "input", "datatype": "UINT8", "shape": [-1, 3, 32, 32]}]
        assert metadata["parameters"]["image"]["resize"] == RESIZE

        single = httpx.post(url, content=encoded[1], headers={"content-type": "image/png"})
        assert single.status_code == 200, single.text
        assert single.json()["predictions"] == [expected[1]]
        several = httpx.post(url, json={"instances": [{"b64": base64.b64encode(data).decode()} for data in encoded]})
        assert several.status_code == 200, several.text
        assert several.json()["predictions"] == expected

        broken = httpx.post(url, content=encoded[0][:100], headers={"content-type": "image/png"})
        assert broken.status_code == 400 and broken.json()["error"].startswith("request body is not a readable PNG or JPEG image")
        not_base64 = httpx.post(url, json=[{"b64": "***"}])
        assert not_base64.status_code == 400
        assert not_base64.json()["error"] == "request body: image 1: 'b64' must be a base64 string of a PNG or JPEG file"
        raw = httpx.post(f"{server.url}/v2/models/squares3/infer", json={"inputs": [
            {"name": "input", "shape": [1, 3, 32, 32], "datatype": "UINT8", "data": _images(1, 3).ravel().tolist()}]})
        assert raw.status_code == 200, raw.text  # raw NCHW uint8 pixels on the protocol's own endpoint
    finally:
        assert server.stop() == 0, server.output()
