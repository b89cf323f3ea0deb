"""Every shipped pipeline runs end to end with few epochs: the tutorials' workloads as pipelines.

MNIST pipelines run on small files in MNIST's IDX format that the test writes (there is no internet
here); the full-length figures are measured by ``benchmarks/workloads.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline_core.cli import cli
from pipeline_core.pipeline.runner import load_pipeline, run_pipeline
from pipeline_core_plugins.datasets.idx import write_mnist

from helpers import PIPELINES

SHORT = {
    "iris": ("train.epochs=3",),
    "moons": ("train.epochs=50",),
    "moons_sweep": ("train.epochs=50",),  # `pipeline run` of a sweep's file: one run with the values as written
    "spirals": ("train.epochs=50",),
    "regression": ("train.epochs=20",),
    "digits": ("train.epochs=2",),
    "penguins": ("train.epochs=5",),  # the shipped table, NA cells and strings as they come
}


def _digit_images(count: int, seed: int):
    """Images whose label is drawn as a bright row band, so a few epochs learn something real."""
    generator = np.random.default_rng(seed)
    labels = generator.integers(0, 10, count).astype(np.uint8)
    images = generator.integers(0, 40, (count, 28, 28)).astype(np.uint8)
    for image, label in zip(images, labels, strict=True):
        image[2 + 2 * label : 4 + 2 * label, 4:24] = 250
    return images, labels


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mnist")
    write_mnist(root, _digit_images(3000, 0), _digit_images(300, 1), gzipped=True)
    return root


def test_every_pipeline_file_is_covered():
    shipped = {path.stem for path in PIPELINES.glob("*.toml")}
    # image_folder: tests/test_image_data.py runs it on PNG files it writes;
    # mnist_cnn: tests/test_image_models.py trains and exports it on IDX files it writes
    assert shipped == set(SHORT) | {"mnist", "mnist_small", "mnist_relu"} | {"image_folder", "mnist_cnn"}


@pytest.mark.parametrize("name", sorted(SHORT))
def test_pipeline_runs(name, tmp_path):
    config, host = load_pipeline(PIPELINES / f"{name}.toml", SHORT[name])
    run = run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    assert all(entry["passed"] for entry in run.export_report.values())
    assert (run.run_dir / "bundle" / "manifest.json").exists()
    metrics = run.metrics["test"]
    if run.data.spec.task == "regression":
        assert {"loss", "mse", "mae", "r2"} <= set(metrics)
        assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]
    else:
        assert {"loss", "accuracy", "f1", "confusion_matrix"} <= set(metrics)
        matrix = np.array(metrics["confusion_matrix"])
        assert matrix.sum() == len(run.data.splits["test"])
        assert np.trace(matrix) / matrix.sum() == pytest.approx(metrics["accuracy"])


@pytest.mark.parametrize("name", ["mnist", "mnist_small", "mnist_relu"])
def test_mnist_pipelines_on_idx_files(name, mnist_root, tmp_path):
    # the tutorials' learning rates need many epochs; a larger one shows in 3 epochs that images and labels line up
    overrides = (f'data.root="{mnist_root}"', "train.epochs=3", "train.optimizer.lr=0.5")
    if name != "mnist":
        overrides += ("data.val_size=100",)
    config, host = load_pipeline(PIPELINES / f"{name}.toml", overrides)
    run = run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    assert run.metrics["test"]["accuracy"] > 0.5  # the band pattern is learnable; chance is 0.1
    assert all(entry["passed"] for entry in run.export_report.values())
    metadata = json.loads((run.run_dir / "bundle" / "metadata.json").read_text())
    assert metadata["input"] == {"name": "input", "shape": ["batch", 1, 28, 28], "dtype": "uint8"}
    if name != "mnist":
        assert "val_accuracy" in run.history[-1]
        assert len(run.data.splits["validation"]) == 100


def test_mnist_bundle_predicts_raw_pixels(mnist_root, tmp_path):
    config, host = load_pipeline(PIPELINES / "mnist_relu.toml", (f'data.root="{mnist_root}"', "train.epochs=3", "data.val_size=0"))
    run = run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    images, labels = _digit_images(20, 7)
    np.save(tmp_path / "digits.npy", images)
    result = CliRunner().invoke(cli, ["predict", str(run.run_dir), "--input", str(tmp_path / "digits.npy")])
    assert result.exit_code == 0, result.output
    predicted = [int(line.split(",")[0]) for line in result.output.strip().splitlines()[1:]]
    assert np.mean(np.array(predicted) == labels) > 0.5
    np.save(tmp_path / "floats.npy", images / 3.7)
    bad = CliRunner().invoke(cli, ["predict", str(run.run_dir), "--input", str(tmp_path / "floats.npy")])
    assert bad.exit_code == 2 and "the model takes uint8 inputs; values must be whole numbers in [0, 255]" in bad.output


def test_binary_and_regression_bundles_predict(tmp_path):
    for name, overrides in (("moons", ("train.epochs=200",)), ("regression", ("train.epochs=5",))):
        config, host = load_pipeline(PIPELINES / f"{name}.toml", overrides)
        run = run_pipeline(config, host, out=tmp_path / name, quiet=True)
        rows = run.data.splits["test"].inputs[:3].numpy()
        np.save(tmp_path / f"{name}.npy", rows)
        result = CliRunner().invoke(cli, ["predict", str(run.run_dir), "--input", str(tmp_path / f"{name}.npy"), "--output", str(tmp_path / f"{name}.json")])
        assert result.exit_code == 0, result.output
        records = json.loads((tmp_path / f"{name}.json").read_text())
        if name == "moons":
            assert set(records[0]) == {"label", "probability_0", "probability_1"}
            assert records[0]["probability_0"] + records[0]["probability_1"] == pytest.approx(1.0)
        else:
            assert set(records[0]) == {f"prediction_{i}" for i in range(10)}
