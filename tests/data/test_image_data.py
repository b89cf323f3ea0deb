"""Image datasets and data bigger than memory, on real PNG and JPEG files written by the tests:
the image_folder dataset (layouts, seeded stratified splits, declarative transforms, augmentation on
training only), bad folders refused before training with the files named, the streaming path (the
same weights as in memory, exact resume after SIGKILL and SIGTERM, bounded memory), streamed
evaluation and export checks, a third party's own streamed split, Fashion-MNIST and CIFAR-10's
binary files."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline_core import (
    ConfigError,
    DatasetContext,
    DataSpec,
    LoadedData,
    PluginError,
    RunFailed,
    ScaleImages,
    Split,
    StreamedSplit,
    hookimpl,
    model_outputs,
)
from pipeline_core.config.data_section import DataLoading, parse_size
from pipeline_core.engine import place_splits
from pipeline_core.pipeline.runner import load_pipeline, run_pipeline
from pipeline_core.testing import build_host
from pipeline_core_plugins.datasets.cifar10 import RECORD, cifar10
from pipeline_core_plugins.datasets.idx import write_mnist
from pipeline_core_plugins.datasets.mnist import FASHION_CLASSES, fashion_mnist

from helpers import ROOT, invoke, run_file, wait_for_checkpoint
from image_folders import CLASSES, image_array, truncate, write_image, write_image_folder

TRAIN_ONLY = '["load_data", "build_model", "train"]'

IMAGES = """
[pipeline]
name = "images"
seed = 1
stages = ["load_data", "build_model", "train", "evaluate"]

[data]
name = "image_folder"
root = "images"
test_size = 0.25
workers = 2
transforms = [
    { name = "resize", size = [16, 16] },
    { name = "random_crop", padding = 2 },
    "horizontal_flip",
    { name = "normalize", mean = [0.5, 0.5, 0.5], std = [0.25, 0.25, 0.25] },
]

[model]
name = "mlp"
hidden_sizes = [16]

[train]
epochs = 3
batch_size = 8

[train.optimizer]
name = "adam"
lr = 0.01

[train.loss]
name = "cross_entropy"
"""


def _pipeline(folder: Path, text: str = IMAGES, **replacements: str) -> Path:
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new)
    path = folder / "pipeline.toml"
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path



def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "weights.pt", weights_only=True)


def _identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)



# -- preprocessing in the graph -----------------------------------------------------------------


def test_scale_images_per_channel_and_in_float64():
    pixels = torch.tensor([[[[0]], [[255]]]], dtype=torch.uint8)  # one image, two channels, 1×1
    scale = ScaleImages([0.5, 0.25], [0.5, 0.25])
    assert torch.allclose(scale(pixels), torch.tensor([[[[-1.0]], [[3.0]]]]))
    assert scale(pixels).dtype == torch.float32
    twin = copy.deepcopy(scale).double()  # the export check's exact twin computes in float64
    assert twin(pixels).dtype == torch.float64 and torch.allclose(twin(pixels).float(), scale(pixels))
    assert torch.allclose(ScaleImages()(pixels), torch.tensor([[[[0.0]], [[1.0]]]]))
    assert set(ScaleImages(0.1, 0.3).state_dict()) == {"scale", "shift"}  # MNIST's weights keep loading
    with pytest.raises(ValueError, match="give one per channel"):
        ScaleImages([0.1, 0.2], [0.3, 0.4, 0.5])
    with pytest.raises(ValueError, match="std must be positive"):
        ScaleImages(0.0, [0.2, 0.0])


# -- the image_folder dataset -------------------------------------------------------------------


def test_image_folder_is_split_by_class_with_the_seed_and_decoded_exactly(tmp_path):
    write_image_folder(tmp_path / "images", per_class=12, suffix=".png")
    path = _pipeline(tmp_path, IMAGES.replace("test_size = 0.25", "test_size = 0.25\nval_size = 0.25"))
    first = run_file(path, tmp_path / "a", 'pipeline.stages=["load_data"]').data
    again = run_file(path, tmp_path / "b", 'pipeline.stages=["load_data"]').data
    other = run_file(path, tmp_path / "c", 'pipeline.stages=["load_data"]', "pipeline.seed=2").data
    assert isinstance(first, LoadedData) and first.loading["load"] == "memory"
    assert {name: len(split) for name, split in first.splits.items()} == {"train": 18, "test": 9, "validation": 9}
    for name in ("train", "test", "validation"):
        counts = first.splits[name].targets.bincount().tolist()
        assert counts == [len(first.splits[name]) // 3] * 3  # stratified: each class in proportion
        assert torch.equal(first.splits[name].inputs, again.splits[name].inputs)  # the seed decides the split
    assert not torch.equal(first.splits["test"].inputs, other.splits["test"].inputs)
    spec = first.spec
    assert spec.input_shape == (3, 16, 16) and spec.input_dtype == torch.uint8 and spec.classes == CLASSES
    assert spec.image is not None and spec.image.resize == ({"op": "resize", "size": [16, 16], "interpolation": "bilinear"},)
    assert isinstance(first.preprocess, ScaleImages)

    # decoded by torchvision, then resized: compare one image with Pillow's pixels resized the same way
    from torchvision.transforms import v2

    data = run_file(_pipeline(tmp_path, IMAGES.replace('{ name = "resize", size = [16, 16] },', "")), tmp_path / "d",
                  'pipeline.stages=["load_data"]', "data.test_size=0.5").data
    stored = torch.cat([data.splits[name].inputs for name in ("train", "test")])
    files = sorted((tmp_path / "images").glob("*/*.png"))
    pixels = torch.stack([torch.from_numpy(np.array(Image.open(file))).permute(2, 0, 1) for file in files])
    assert sorted(map(bytes, stored.reshape(len(stored), -1).numpy())) == sorted(map(bytes, pixels.reshape(len(pixels), -1).numpy()))
    assert v2.Resize([16, 16], antialias=True)(pixels[0]).shape == (3, 16, 16)


def test_train_and_test_folders_and_jpeg(tmp_path):
    write_image_folder(tmp_path / "images" / "train", per_class=6, suffix=".jpg")
    write_image_folder(tmp_path / "images" / "test", per_class=2, suffix=".jpeg", seed=1)
    write_image_folder(tmp_path / "images" / "val", per_class=1, suffix=".png", seed=2)
    data = run_file(_pipeline(tmp_path), tmp_path / "run", 'pipeline.stages=["load_data"]').data
    assert {name: len(split) for name, split in data.splits.items()} == {"train": 18, "test": 6, "validation": 3}
    assert data.splits["test"].targets.tolist() == [0, 0, 1, 1, 2, 2]
    # a class folder in test/ that train/ lacks is refused
    write_image_folder(tmp_path / "images" / "test", per_class=1, classes=("hexagon",))
    with pytest.raises(ConfigError, match="class folder.s. hexagon that .* does not have"):
        run_file(_pipeline(tmp_path), tmp_path / "run2", 'pipeline.stages=["load_data"]')


def test_augmentation_applies_to_training_batches_only(tmp_path):
    write_image_folder(tmp_path / "images", per_class=8)
    run = run_file(_pipeline(tmp_path), tmp_path / "run", 'pipeline.stages=["load_data"]')
    train = run.data.splits["train"]
    assert train.augment is not None and run.data.splits["test"].augment is None
    from pipeline_core.data.streaming import augment_rows, item_seed

    augmented = augment_rows(train.inputs, range(len(train)), train.augment, lambda row: item_seed(1, 1, row))
    assert augmented.shape == train.inputs.shape  # augmentations keep the size the model expects
    assert not torch.equal(augmented, train.inputs)  # shifted and flipped
    assert torch.equal(augmented, augment_rows(train.inputs, range(len(train)), train.augment, lambda row: item_seed(1, 1, row)))
    state = torch.get_rng_state()
    augment_rows(train.inputs, range(len(train)), train.augment, lambda row: item_seed(1, 2, row))
    assert torch.equal(torch.get_rng_state(), state)  # training's own draws (dropout) are untouched
    # evaluation sees the stored, unaugmented images: the same predictions twice
    model = torch.nn.Sequential(ScaleImages(), torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 3))
    assert torch.equal(model_outputs(model, train), model_outputs(model, train.inputs))


EVERY_STEP = """transforms = [
    { name = "resize", size = [20, 18] },
    { name = "center_crop", size = 16 },
    { name = "random_resized_crop", scale = [0.5, 1.0] },
    { name = "random_crop", padding = 2, padding_mode = "reflect" },
    { name = "horizontal_flip", p = 1.0 },
    { name = "vertical_flip", p = 1.0 },
    { name = "rotation", degrees = [-30, 30], fill = 7 },
    { name = "color_jitter", brightness = 0.4, contrast = 0.4, saturation = 0.4, hue = 0.1 },
    { name = "normalize", mean = 0.5, std = 0.25 },
]"""


@pytest.mark.parametrize("mode, channels", [("RGB", 3), ("L", 1)])
def test_every_transform_step_runs_and_augmentations_keep_the_size(tmp_path, mode, channels):
    """Each step the transform list offers, on real colour and grayscale files: the deterministic
    steps set the model's input size, every augmentation keeps it (uint8, the same shape), and
    normalize becomes the model's scaling."""
    write_image_folder(tmp_path / "images", per_class=4, size=(30, 40), mode=mode)
    start, end = IMAGES.index("transforms = ["), IMAGES.index("]\n", IMAGES.index('name = "normalize"')) + 1
    path = _pipeline(tmp_path, IMAGES[:start] + EVERY_STEP + IMAGES[end:])
    data = run_file(path, tmp_path / "run", 'pipeline.stages=["load_data"]').data
    train = data.splits["train"]
    assert data.spec.input_shape == (channels, 16, 16) and train.inputs.dtype == torch.uint8
    assert [step["op"] for step in data.spec.image.resize] == ["resize", "center_crop"]
    from pipeline_core.data.streaming import augment_rows, item_seed

    names = [type(step).__name__ for step in train.augment.transforms]
    assert names == ["RandomResizedCrop", "RandomCrop", "RandomHorizontalFlip", "RandomVerticalFlip", "RandomRotation", "ColorJitter"]
    augmented = augment_rows(train.inputs, range(len(train)), train.augment, lambda row: item_seed(1, 1, row))
    assert augmented.shape == train.inputs.shape and augmented.dtype == torch.uint8
    assert all(not torch.equal(a, b) for a, b in zip(augmented, train.inputs, strict=True))
    assert torch.allclose(data.preprocess(torch.full((1, channels, 1, 1), 255, dtype=torch.uint8)), torch.full((1, channels, 1, 1), 2.0))


def test_the_transform_list_is_validated_with_lines_keys_and_suggestions(tmp_path):
    write_image_folder(tmp_path / "images", per_class=4)
    cases = {
        '"horizontal_flip"': ('"horizontal_flp"', ":14: data.transforms[2]: unknown name 'horizontal_flp'; did you mean 'horizontal_flip'?"),
        "padding = 2 }": ("paddin = 2 }", ":13: data.transforms[1].paddin: unknown key; did you mean 'padding'?"),
        "size = [16, 16] }": ('size = "big" }', ":12: data.transforms[0].size: expected int | list[int], got 'big' (str)"),
    }
    for old, (new, expected) in cases.items():
        result = invoke("validate", _pipeline(tmp_path, IMAGES.replace(old, new)))
        assert result.exit_code == 2 and expected in result.output, result.output
    result = invoke("validate", _pipeline(tmp_path, IMAGES.replace("workers = 2", "worker = 2")))
    assert result.exit_code == 2 and "data.worker: unknown key; did you mean 'workers'?" in result.output
    # the order is checked when the data is loaded: deterministic steps first, normalize last
    swapped = IMAGES.replace('{ name = "resize", size = [16, 16] },\n    { name = "random_crop", padding = 2 },',
                             '{ name = "random_crop", padding = 2 },\n    { name = "resize", size = [16, 16] },')
    result = invoke("run", _pipeline(tmp_path, swapped), "--out", tmp_path / "run", "-q")
    assert result.exit_code == 2 and "data.transforms[1] (resize): a deterministic step after an augmentation" in result.output
    normalized_first = IMAGES.replace('{ name = "resize", size = [16, 16] },', '{ name = "normalize", mean = 0.5, std = 0.2 },', 1)
    result = invoke("run", _pipeline(tmp_path, normalized_first), "--out", tmp_path / "run2", "-q")
    assert result.exit_code == 2 and "normalize must be the last step" in result.output
    wrong_channels = IMAGES.replace("mean = [0.5, 0.5, 0.5]", "mean = [0.5, 0.5]")
    result = invoke("run", _pipeline(tmp_path, wrong_channels), "--out", tmp_path / "run3", "-q")
    assert result.exit_code == 2 and "normalize mean has 2 values for 3-channel images" in result.output


def _refused(tmp_path: Path, *expected: str, text: str = IMAGES) -> str:
    out = Path(tempfile.mkdtemp(dir=tmp_path))
    result = invoke("run", _pipeline(tmp_path, text), "--out", out, "-q")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not (out / "weights.pt").exists()
    for part in expected:
        assert part in result.output, result.output
    return result.output


def test_a_missing_root_or_a_folder_without_images_is_refused(tmp_path):
    _refused(tmp_path, "data.root: folder not found:", str(tmp_path / "images"))
    (tmp_path / "images").mkdir()
    _refused(tmp_path, "data.root: no images:", "has no class subfolders")
    write_image(tmp_path / "images" / "loose.png", image_array(0, (8, 8), "RGB", np.random.default_rng(0)))
    _refused(tmp_path, "it holds 1 image(s) but no class folders")


def test_an_empty_class_folder_is_refused(tmp_path):
    write_image_folder(tmp_path / "images", per_class=4)
    (tmp_path / "images" / "empty").mkdir()
    (tmp_path / "images" / "empty" / "notes.txt").write_text("no pictures here")
    _refused(tmp_path, "data.root: empty class folder(s)", str(tmp_path / "images" / "empty"))


def test_corrupt_and_truncated_files_are_named_before_training(tmp_path):
    write_image_folder(tmp_path / "images", per_class=4)
    write_image_folder(tmp_path / "images", per_class=2, suffix=".jpg", seed=3)
    (tmp_path / "images" / "circle" / "000.png").write_bytes(b"this is not an image")
    truncate(tmp_path / "images" / "square" / "001.png")  # the header reads; the image data is cut
    truncate(tmp_path / "images" / "triangle" / "000.jpg", keep=0.3)  # cut inside the header
    photo = write_image(tmp_path / "images" / "triangle" / "photo.jpg", image_array(2, (160, 200), "RGB", np.random.default_rng(4)))
    truncate(photo, keep=0.8)  # a large JPEG cut short: its header reads, its end marker is gone
    output = _refused(tmp_path, "4 corrupt or unreadable image file(s)", "circle/000.png: not a readable image",
                      "square/001.png: cannot be decoded", "triangle/000.jpg: not a readable image",
                      "triangle/photo.jpg: cannot be decoded", "truncated or corrupt")
    assert "Replace or remove them" in output


def test_damage_inside_a_file_is_found_by_verify_decode_or_when_loading(tmp_path):
    """Bytes flipped inside a PNG's image data: the header and end marker read, the pixels do not."""
    write_image_folder(tmp_path / "images", per_class=6, size=(40, 40))
    victim = tmp_path / "images" / "triangle" / "002.png"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 16] = bytes(16)
    victim.write_bytes(bytes(data))
    _refused(tmp_path, "1 corrupt or unreadable image file(s)", "triangle/002.png: cannot be decoded",
             text=IMAGES.replace("workers = 2", 'workers = 2\nverify = "decode"'))
    _refused(tmp_path, f"{victim}: cannot decode the image", text=IMAGES.replace("workers = 2", 'workers = 2\nload = "memory"'))


def test_mixed_sizes_without_a_resize_are_refused(tmp_path):
    write_image_folder(tmp_path / "images", per_class=4, size=(20, 24))
    write_image(tmp_path / "images" / "circle" / "big.png", image_array(0, (30, 30), "RGB", np.random.default_rng(1)))
    no_resize = IMAGES.replace('{ name = "resize", size = [16, 16] },', "")
    _refused(tmp_path, "data.transforms: the images have 2 different sizes", "20×24: 12 file(s)", "30×30: 1 file(s), e.g. circle/big.png",
             'transforms = [{ name = "resize", size = [20, 24] }]', text=no_resize)
    # a resize of the shorter side keeps the aspect ratio, so it does not make them one size either; a crop does
    shorter = IMAGES.replace("size = [16, 16] }", "size = 16 }")
    _refused(tmp_path, "the images have 2 different sizes after the transforms", text=shorter)
    cropped = IMAGES.replace('size = [16, 16] },', 'size = 16 },\n    { name = "center_crop", size = 16 },')
    assert run_file(_pipeline(tmp_path, cropped), tmp_path / "ok", 'pipeline.stages=["load_data"]').data.spec.input_shape == (3, 16, 16)


def test_grayscale_and_colour_files_are_refused_under_auto_and_converted_on_request(tmp_path):
    write_image_folder(tmp_path / "images", per_class=4)
    write_image(tmp_path / "images" / "square" / "gray.png", image_array(1, (20, 24), "L", np.random.default_rng(2)), "L")
    _refused(tmp_path, "data.mode: the images mix grayscale (1 files) and colour (12 files)", "square/gray.png",
             'mode = "rgb"', text=IMAGES.replace("workers = 2", 'workers = 2\nmode = "auto"'))
    rgb = run_file(_pipeline(tmp_path, IMAGES.replace("workers = 2", 'workers = 2\nmode = "rgb"')), tmp_path / "rgb", 'pipeline.stages=["load_data"]')
    assert rgb.data.spec.input_shape == (3, 16, 16)
    gray = run_file(_pipeline(tmp_path, IMAGES.replace("workers = 2", 'workers = 2\nmode = "gray"').replace("[0.5, 0.5, 0.5]", "0.5")
                          .replace("[0.25, 0.25, 0.25]", "0.25")), tmp_path / "gray", 'pipeline.stages=["load_data"]')
    assert gray.data.spec.input_shape == (1, 16, 16) and gray.data.splits["train"].inputs.shape[1] == 1


def test_all_grayscale_images_give_one_channel(tmp_path):
    write_image_folder(tmp_path / "images", per_class=4, mode="L")
    text = IMAGES.replace("[0.5, 0.5, 0.5]", "[0.5]").replace("[0.25, 0.25, 0.25]", "[0.25]")
    run = run_file(_pipeline(tmp_path, text), tmp_path / "run")
    assert run.data.spec.input_shape == (1, 16, 16) and run.metrics["test"]["accuracy"] >= 0.0


# -- memory or stream ---------------------------------------------------------------------------


def test_sizes_and_the_automatic_choice(tmp_path):
    assert parse_size("2GiB") == 2 * 2**30 and parse_size("512MB") == 512 * 10**6 and parse_size("1000") == 1000
    with pytest.raises(ValueError, match="a size such as"):
        parse_size("lots")
    write_image_folder(tmp_path / "images", per_class=8)
    path = _pipeline(tmp_path)
    decoded = 24 * 3 * 16 * 16  # every split, decoded
    fits = run_file(path, tmp_path / "fits", 'pipeline.stages=["load_data"]', f"data.memory_limit={decoded}")
    exceeds = run_file(path, tmp_path / "exceeds", 'pipeline.stages=["load_data"]', f"data.memory_limit={decoded - 1}")
    assert isinstance(fits.data.splits["train"], Split) and fits.data.loading["load"] == "memory"
    assert isinstance(exceeds.data.splits["train"], StreamedSplit) and exceeds.data.loading["load"] == "stream"
    record = json.loads((tmp_path / "exceeds" / "data.json").read_text())
    assert record["decoded_bytes"] == decoded and record["memory_limit_bytes"] == decoded - 1 and record["workers"] == 2
    assert "exceeds the memory limit" in record["reason"]
    assert isinstance(run_file(path, tmp_path / "forced", 'pipeline.stages=["load_data"]', 'data.load="stream"').data.splits["test"], StreamedSplit)


def test_streaming_and_memory_train_the_same_weights(tmp_path):
    """Same order, same per-row augmentation seeds, same decode: the two paths are bit-identical."""
    write_image_folder(tmp_path / "images", per_class=12)
    path = _pipeline(tmp_path, IMAGES.replace("hidden_sizes = [16]", "hidden_sizes = [16]\ndropout = 0.2"))
    memory = run_file(path, tmp_path / "memory", 'data.load="memory"')
    streamed = run_file(path, tmp_path / "stream", 'data.load="stream"')
    in_process = run_file(path, tmp_path / "in_process", 'data.load="stream"', "data.workers=0")
    assert isinstance(streamed.data.splits["train"], StreamedSplit)
    assert _identical(_weights(memory.run_dir), _weights(streamed.run_dir))
    assert _identical(_weights(memory.run_dir), _weights(in_process.run_dir))
    assert memory.metrics == streamed.metrics  # evaluation batch by batch gives the same metrics


def test_a_streamed_split_is_evaluated_and_export_checked_in_bounded_batches(tmp_path):
    write_image_folder(tmp_path / "images", per_class=12)
    path = _pipeline(tmp_path, IMAGES.replace('"evaluate"]', '"evaluate", "export"]'))
    run = run_file(path, tmp_path / "run", 'data.load="stream"', "data.memory_limit=16384", "train.epochs=1")
    test = run.data.splits["test"]
    assert isinstance(test, StreamedSplit) and len(test) == 9
    assert all(entry["passed"] for entry in run.export_report.values())
    rows = 16384 // 4 // (3 * 16 * 16)  # a quarter of the memory limit, in decoded rows
    assert {entry["checked_rows"] for entry in run.export_report.values()} == {rows}
    assert len(test.head()) == rows and len(test.head(100)) == len(test)
    assert test.select([4, 1]).targets.tolist() == test.targets[[4, 1]].tolist()
    assert json.loads((run.run_dir / "bundle" / "metadata.json").read_text())["input"]["dtype"] == "uint8"
    assert (run.run_dir / "plots" / "samples.png").exists() and (run.run_dir / "plots" / "confusion_matrix.png").exists()


def test_a_file_that_breaks_mid_epoch_is_named(tmp_path):
    """A file that passed the scan and is damaged while streaming stops the run with its path."""
    write_image_folder(tmp_path / "images", per_class=12)
    victim = tmp_path / "images" / "square" / "005.png"

    class Damage:
        @hookimpl
        def before_stage(self, run, stage):
            if stage == "train":
                victim.write_bytes(b"overwritten while training")

    config, host = load_pipeline(_pipeline(tmp_path), ('data.load="stream"', f"pipeline.stages={TRAIN_ONLY}"))
    host.manager.register(Damage(), "damage")
    with pytest.raises(ConfigError) as caught:
        run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    assert f"{victim}: cannot decode the image" in str(caught.value) and "split 'train', row" in str(caught.value)
    result = invoke("run", tmp_path / "pipeline.toml", "--out", tmp_path / "run2", "--set", 'data.load="stream"', "-q")
    assert result.exit_code == 2 and "005.png" in result.output and "Traceback" not in result.output


# -- streaming under faults: resume stays exact ---------------------------------------------------

RESUMABLE = IMAGES.replace("epochs = 3", "epochs = 40\ncheckpoint_every = 1").replace(
    'stages = ["load_data", "build_model", "train", "evaluate"]', f"stages = {TRAIN_ONLY}"
).replace("hidden_sizes = [16]", "hidden_sizes = [16]\ndropout = 0.2").replace("workers = 2", 'workers = 2\nload = "stream"')


def _command(*args: object) -> list[str]:
    return [sys.executable, "-m", "pipeline_core", *map(str, args)]


@pytest.fixture(scope="module")
def streamed_reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("streamed")
    write_image_folder(folder / "images", per_class=16)
    path = _pipeline(folder, RESUMABLE)
    done = subprocess.run(_command("run", path, "--out", folder / "run", "-q"), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert json.loads((folder / "run" / "data.json").read_text())["load"] == "stream"
    return path, _weights(folder / "run")


def test_streaming_sigkill_then_resume_is_bit_identical(streamed_reference, tmp_path):
    path, expected = streamed_reference
    run_dir = tmp_path / "run"
    kills = 0
    process = subprocess.Popen(_command("run", path, "--out", run_dir, "-q"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while kills < 2:
        if not wait_for_checkpoint(process, run_dir, timeout=180):
            break
        time.sleep(0.3 + 0.4 * kills)
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        if json.loads((run_dir / "status.json").read_text())["status"] == "succeeded":
            break
        kills += 1
        process = subprocess.Popen(_command("run", run_dir, "--resume", "-q"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.wait(timeout=600) == 0, process.stderr.read().decode()
    assert kills >= 1, "the run finished too quickly to be killed; lengthen it"
    assert _identical(_weights(run_dir), expected)


def test_streaming_sigterm_mid_epoch_then_resume_is_bit_identical(streamed_reference, tmp_path):
    path, expected = streamed_reference
    run_dir = tmp_path / "run"
    process = subprocess.Popen(_command("run", path, "--out", run_dir, "-q"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for_checkpoint(process, run_dir, timeout=180)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == 143, stderr
    from pipeline_core.run import checkpoint

    assert checkpoint.load(checkpoint.latest(run_dir))["partial"] is not None  # stopped inside an epoch
    resumed = subprocess.run(_command("run", run_dir, "--resume", "-q"), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert _identical(_weights(run_dir), expected)


# -- bounded memory -----------------------------------------------------------------------------

MEASURE = """
import gc, json, resource, sys
import pipeline_core.cli

def run(args):
    sys.argv = ["pipeline", "run", *args]
    try:
        pipeline_core.cli.main()
    except SystemExit as exit_:
        return exit_.code
    return 0

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

argv = list(sys.argv)
split = argv.index("--")
warm = run(argv[1:split])  # a warm-up run on a small folder: every import and one-time set-up
gc.collect()
baseline = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")  # peak RSS (VmHWM) starts again from here
code = run(argv[split + 1:])
peak = status("VmHWM")
workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # every worker process's peak, warm-up included
print(json.dumps({"warm": warm, "code": code, "baseline": baseline, "growth": peak - baseline, "workers_growth": workers - baseline}))
"""
CAP = 24 * 2**20


def _peak_growth(folder: Path, path: Path, load: str) -> dict[str, int]:
    (folder / "measure.py").write_text(MEASURE, encoding="utf-8")
    common = ("-q", "--set", f'data.load="{load}"', "--set", f'data.memory_limit="{CAP}"')
    done = subprocess.run(
        [sys.executable, str(folder / "measure.py"), str(path), "--out", str(folder / f"warm_{load}"), *common, "--set", 'data.root="small"',
         "--", str(path), "--out", str(folder / f"run_{load}"), *common],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["warm"] == 0 and result["code"] == 0, done.stderr
    return result


def test_a_folder_larger_than_the_memory_cap_trains_in_bounded_memory(tmp_path):
    """2,400 small PNG files resized to 3×128×128 decode to 112.5 MiB, over four times the 24 MiB cap:
    streamed, the training process grows by less than the cap; in memory it grows by more than the data."""
    write_image_folder(tmp_path / "images", per_class=800, size=(16, 16))
    write_image_folder(tmp_path / "small", per_class=10, size=(16, 16))
    text = IMAGES.replace("size = [16, 16]", "size = [128, 128]").replace(
        '    { name = "random_crop", padding = 2 },\n', ""
    ).replace('    { name = "normalize", mean = [0.5, 0.5, 0.5], std = [0.25, 0.25, 0.25] },\n', "").replace(
        "hidden_sizes = [16]", "hidden_sizes = [4]").replace("epochs = 3", "epochs = 1").replace("test_size = 0.25", "test_size = 0.1")
    path = _pipeline(tmp_path, text.replace('"train", "evaluate"]', '"train"]'))
    decoded = 2400 * 3 * 128 * 128
    assert decoded > 4 * CAP
    streamed = _peak_growth(tmp_path, path, "auto")
    assert json.loads((tmp_path / "run_auto" / "data.json").read_text())["load"] == "stream"  # chosen by size
    in_memory = _peak_growth(tmp_path, path, "memory")
    assert in_memory["growth"] > decoded, in_memory  # the cap would be exceeded without streaming
    assert streamed["growth"] < CAP, streamed
    assert streamed["workers_growth"] < CAP, streamed


# -- a third party's own streamed split ----------------------------------------------------------


class Squares:
    """A plugin's items: row ``i`` computed on demand (a stand-in for records read from a large file)."""

    def __len__(self) -> int:
        return 60

    def __getitem__(self, index: int) -> torch.Tensor:
        if index == 13 and os.environ.get("BREAK_ROW_13"):
            raise ConfigError("records.bin: record 13 is damaged")
        if index == 7 and os.environ.get("KILL_ROW_7") and torch.utils.data.get_worker_info() is not None:
            os.kill(os.getpid(), signal.SIGKILL)  # a native decoder crashing in a worker
        return torch.full((2,), float(index % 3), dtype=torch.float32) + torch.tensor([0.1 * (index % 5), 0.0])


class StreamingPlugin:
    @hookimpl
    def register_datasets(self, register):
        def squares(context: DatasetContext) -> LoadedData:
            targets = torch.tensor([i % 3 for i in range(60)])
            split = StreamedSplit(Squares(), targets, (2,), torch.float32)
            spec = DataSpec("multiclass", (2,), 3, ("a", "b", "c"))
            return LoadedData(spec, {"train": split, "test": StreamedSplit(Squares(), targets, (2,), torch.float32)})

        register("squares", squares)


def test_a_third_party_dataset_streams_through_the_public_api(tmp_path, monkeypatch):
    from pipeline_core.testing import run_with_plugins as run_small
    from pipeline_core.testing import small_pipeline

    pipeline = small_pipeline(data={"name": "squares", "load": "stream", "workers": 2}, train={"epochs": 30, "batch_size": 12})
    run = run_small(pipeline, tmp_path / "a", plugins=[StreamingPlugin()])
    assert isinstance(run.data.splits["train"], StreamedSplit) and run.metrics["test"]["accuracy"] == 1.0
    assert all(entry["passed"] for entry in run.export_report.values())
    in_memory = run_small(small_pipeline(data={"name": "squares"}, train={"epochs": 30, "batch_size": 12}), tmp_path / "b",
                          plugins=[StreamingPlugin()])
    assert isinstance(in_memory.data.splits["train"], Split)  # 60 rows fit: loaded whole
    assert _identical(_weights(run.run_dir), _weights(in_memory.run_dir))
    monkeypatch.setenv("BREAK_ROW_13", "1")
    with pytest.raises(ConfigError, match="split 'train', row 13: records.bin: record 13 is damaged"):
        run_small(pipeline, tmp_path / "c", plugins=[StreamingPlugin()])
    monkeypatch.delenv("BREAK_ROW_13")
    monkeypatch.setenv("KILL_ROW_7", "1")
    with pytest.raises(RunFailed, match="a worker process decoding split 'train' died .*with .data. workers = 0"):
        run_small(pipeline, tmp_path / "d", plugins=[StreamingPlugin()])


class WorkerDiesAtTheLoss:
    """torch's SIGCHLD handler raises a dead worker's error at whatever line the main process runs:
    here, as if it fired inside the loss of the first training step."""

    @hookimpl
    def register_losses(self, register):
        def dying():
            def loss(outputs, targets):
                raise RuntimeError("DataLoader worker (pid 4419) is killed by signal: Killed. ")
            return loss
        register("dying", dying)


@pytest.mark.parametrize("message", [
    "DataLoader worker (pid 4419) is killed by signal: Killed. ",
    "DataLoader worker (pid(s) 4419, 4420) exited unexpectedly",
    "DataLoader worker (pid 4419) is killed by signal SIGKILL",  # worker_deaths.dead_worker's, after a broken connection
])
def test_a_dead_workers_error_is_a_failed_run_wherever_torch_raises_it(message):
    from pipeline_core.data.worker_deaths import worker_death

    death = worker_death(RuntimeError(message))
    assert isinstance(death, RunFailed) and message.strip() in str(death) and "workers = 0" in str(death)
    assert worker_death(RuntimeError("shape mismatch in DataLoader worker output")) is None
    assert worker_death(ValueError(message)) is None


def test_a_dead_worker_reported_outside_the_batch_loop_fails_the_run(tmp_path):
    from pipeline_core.testing import run_with_plugins as run_small
    from pipeline_core.testing import small_pipeline

    pipeline = small_pipeline(train={"epochs": 1, "loss": {"name": "dying"}})
    with pytest.raises(RunFailed, match=r"a worker process died \(DataLoader worker \(pid 4419\) is killed"):
        run_small(pipeline, tmp_path, plugins=[WorkerDiesAtTheLoss()])
    status = json.loads(next(tmp_path.rglob("status.json")).read_text())
    assert status["status"] == "failed" and status["stage"] == "train"


def test_place_splits_leaves_tensor_splits_alone():
    split = Split(torch.zeros(4, 2), torch.tensor([0, 1, 0, 1]))
    data = LoadedData(DataSpec("multiclass", (2,), 2), {"train": split, "test": split})
    assert place_splits(data, DataLoading(load="stream"), torch.device("cpu")) is data


def test_dataset_options_may_not_take_the_host_loading_keys():
    class Clashing:
        @hookimpl
        def register_datasets(self, register):
            def clash(context: DatasetContext, *, workers: int = 1) -> LoadedData:
                raise AssertionError("never called")

            register("clash", clash)

    with pytest.raises(PluginError, match="declares option.s. 'workers', which the host reads"):
        build_host(given=[Clashing()])


# -- Fashion-MNIST and CIFAR-10 -----------------------------------------------------------------


def test_fashion_mnist_reads_its_idx_files(tmp_path):
    generator = np.random.default_rng(0)

    def split(count: int) -> tuple[np.ndarray, np.ndarray]:
        return generator.integers(0, 256, (count, 28, 28), dtype=np.uint8), generator.integers(0, 10, count, dtype=np.uint8)

    train, test = split(40), split(10)
    write_mnist(tmp_path, train, test, gzipped=True, dataset="FashionMNIST")
    data = fashion_mnist(DatasetContext(0, tmp_path), root=".", val_size=8, normalize=True)
    assert data.spec.classes == FASHION_CLASSES and data.spec.input_shape == (1, 28, 28)
    assert {name: len(split) for name, split in data.splits.items()} == {"test": 10, "validation": 8, "train": 32}
    assert np.array_equal(data.splits["test"].inputs[:, 0].numpy(), test[0])
    assert torch.allclose(data.preprocess.shift, torch.tensor(-0.2860 / 0.3530))
    with pytest.raises(ConfigError, match="Fashion-MNIST files not found: looked in .*FashionMNIST/raw"):
        fashion_mnist(DatasetContext(0, tmp_path / "elsewhere"))


def _cifar_files(folder: Path, records: int = 6) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    generator = np.random.default_rng(0)
    written = {}
    (folder / "cifar-10-batches-bin").mkdir(parents=True)
    for name in [f"data_batch_{n}.bin" for n in range(1, 6)] + ["test_batch.bin"]:
        labels = generator.integers(0, 10, records, dtype=np.uint8)
        pixels = generator.integers(0, 256, (records, 3 * 32 * 32), dtype=np.uint8)
        np.concatenate([labels[:, None], pixels], axis=1).tofile(folder / "cifar-10-batches-bin" / name)
        written[name] = (labels, pixels)
    return written


def test_cifar10_reads_the_binary_version(tmp_path):
    written = _cifar_files(tmp_path)
    data = cifar10(DatasetContext(0, tmp_path), root=".", val_size=5)
    assert {name: len(split) for name, split in data.splits.items()} == {"test": 6, "train": 25, "validation": 5}
    test = data.splits["test"].load()
    labels, pixels = written["test_batch.bin"]
    assert torch.equal(test.inputs.reshape(6, -1), torch.from_numpy(pixels)) and test.targets.tolist() == labels.tolist()
    assert data.spec.input_shape == (3, 32, 32) and data.spec.classes[0] == "airplane"
    # every training record lands in exactly one of train and validation
    rows = torch.cat([data.splits[name].load().inputs for name in ("train", "validation")]).reshape(30, -1)
    every = np.concatenate([written[f"data_batch_{n}.bin"][1] for n in range(1, 6)])
    assert sorted(map(bytes, rows.numpy())) == sorted(map(bytes, every))


def test_cifar10_refuses_the_pickles_and_truncated_batches(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(ConfigError, match="python version: its files are pickles"):
        cifar10(DatasetContext(0, tmp_path), root=".")
    _cifar_files(tmp_path)
    batch = tmp_path / "cifar-10-batches-bin" / "data_batch_3.bin"
    batch.write_bytes(batch.read_bytes()[: RECORD * 2 + 100])
    with pytest.raises(ConfigError, match="data_batch_3.bin: 6246 bytes is not a whole number of 3073-byte CIFAR-10 records"):
        cifar10(DatasetContext(0, tmp_path), root=".")


# -- the shipped pipeline -----------------------------------------------------------------------


def test_the_image_folder_pipeline_runs_on_a_folder_of_pngs(tmp_path):
    write_image_folder(tmp_path / "photos", per_class=14, size=(40, 48))
    config, host = load_pipeline(ROOT / "pipelines" / "image_folder.toml", (f'data.root="{tmp_path / "photos"}"', "train.epochs=2"))
    run = run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    assert run.data.spec.input_shape == (3, 64, 64)
    assert all(entry["passed"] for entry in run.export_report.values())
    metadata = json.loads((run.run_dir / "bundle" / "metadata.json").read_text())
    assert metadata["input"]["shape"] == ["batch", 3, 64, 64] and metadata["input"]["dtype"] == "uint8"


def test_errors_in_list_elements_point_at_their_own_lines():
    from pipeline_core.config.toml_lines import key_lines, line_of

    text = textwrap.dedent('''
        [data]
        transforms = [
            { name = "resize", size = [32, 32] },   # "]" in a comment
            "horizontal_flip", "x[",
            { name = "rotation", degrees = 5 },
        ]
        root = "x"

        [[stages.extra]]
        a = 1
        [[stages.extra]]
        b = 2
    ''').lstrip()
    lines = key_lines(text)
    assert line_of(lines, ("data", "transforms", 0, "size")) == 3
    assert line_of(lines, ("data", "transforms", 2)) == 4  # two elements on one line
    assert line_of(lines, ("data", "transforms", 3, "degrees")) == 5
    assert line_of(lines, ("data", "root")) == 7
    assert line_of(lines, ("stages", "extra", 1, "b")) == 12 and line_of(lines, ("stages", "extra", 0)) == 9
