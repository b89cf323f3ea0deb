"""Plots, the HTML report (rendered in a real headless Chromium), trackers, and the inspect, runs
and compare commands."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from pipeline_core.cli import cli
from pipeline_core.errors import PluginError
from pipeline_core.pipeline.runner import load_pipeline, run_pipeline
from pipeline_core_plugins.datasets.idx import write_mnist

from helpers import IRIS_FAST, PIPELINES, check_png, run_file


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("iris")
    path = folder / "pipeline.toml"
    path.write_text(IRIS_FAST.lstrip().replace('[data]\nname = "iris"', '[data]\nname = "iris"\nval_size = 0.2'))
    return run_file(path, folder / "run")


def test_curves_and_confusion_matrix_come_from_the_run(iris_run):
    index = json.loads((iris_run.run_dir / "plots" / "index.json").read_text())
    assert set(index) == {"curves", "confusion_matrix"}  # no boundary (4 features), no images, not regression
    for entry in index.values():
        check_png(iris_run.run_dir / entry["file"])
    curves = index["curves"]["data"]
    assert curves["epochs"] == [row["epoch"] for row in iris_run.history]
    assert curves["series"]["val_loss"] == [row["val_loss"] for row in iris_run.history]
    assert curves["series"]["train_accuracy"] == [row["train_accuracy"] for row in iris_run.history]
    assert index["confusion_matrix"]["data"]["matrix"] == iris_run.metrics["test"]["confusion_matrix"]
    assert index["confusion_matrix"]["data"]["classes"] == ["setosa", "versicolor", "virginica"]


def test_decision_boundary_for_two_features(tmp_path):
    run = run_file(PIPELINES / "moons.toml", tmp_path / "run", "train.epochs=100", 'pipeline.stages=["load_data", "build_model", "train", "evaluate"]')
    entry = json.loads((run.run_dir / "plots" / "index.json").read_text())["decision_boundary"]
    width, height = check_png(run.run_dir / entry["file"])
    assert width > 1.5 * height  # train and test side by side
    assert entry["data"]["points"] == {"train": 800, "test": 200}
    assert entry["data"]["region_classes"] == [0, 1]  # the boundary separates both classes


def test_predicted_vs_true_for_regression(tmp_path):
    run = run_file(PIPELINES / "regression.toml", tmp_path / "run", "train.epochs=5", 'pipeline.stages=["load_data", "build_model", "train", "evaluate"]')
    index = json.loads((run.run_dir / "plots" / "index.json").read_text())
    assert set(index) == {"curves", "predicted_vs_true"}
    check_png(run.run_dir / index["predicted_vs_true"]["file"])
    assert index["predicted_vs_true"]["data"]["points"] == 16 * 10  # every value of the test split


def test_sample_images_with_true_and_predicted_labels(tmp_path):
    rng = np.random.default_rng(0)
    def images(count):
        return rng.integers(0, 256, (count, 28, 28), dtype=np.uint8), rng.integers(0, 10, count, dtype=np.uint8)
    write_mnist(tmp_path / "mnist", images(200), images(40))
    run = run_file(PIPELINES / "mnist_relu.toml", tmp_path / "run", f'data.root="{tmp_path / "mnist"}"', "data.val_size=0",
               "train.epochs=1", 'pipeline.stages=["load_data", "build_model", "train", "evaluate"]')
    entry = json.loads((run.run_dir / "plots" / "index.json").read_text())["samples"]
    check_png(run.run_dir / entry["file"])
    test = run.data.splits["test"]
    assert entry["data"]["true"] == [str(int(t)) for t in test.targets[:16]]
    with torch.no_grad():
        predicted = run.model.eval()(test.inputs[:16]).argmax(dim=1)
    assert entry["data"]["predicted"] == [str(int(p)) for p in predicted]


def test_a_plot_can_be_switched_off(write_pipeline, tmp_path):
    text = IRIS_FAST.replace("seed = 3", 'seed = 3\ndisable_plugins = ["plugins.plots.confusion", "plugins.report"]')
    run = run_file(write_pipeline(text), tmp_path / "run")
    assert set(json.loads((run.run_dir / "plots" / "index.json").read_text())) == {"curves"}
    assert not (run.run_dir / "report.html").exists()
    assert "plugins.plots.confusion" not in run.host.plugins


def test_disabling_an_unknown_plugin_is_an_error(write_pipeline):
    text = IRIS_FAST.replace("seed = 3", 'seed = 3\ndisable_plugins = ["plugins.plots.confusoin"]')
    with pytest.raises(PluginError, match=r"pipeline.disable_plugins: no plugin named 'plugins.plots.confusoin'; did you mean 'plugins.plots.confusion'\?"):
        load_pipeline(write_pipeline(text))


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _blue_pixels(path: Path) -> int:
    """Pixels close to matplotlib's default line colour (#1f77b4): only the plots contain them."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    return int((np.abs(pixels - np.array([31, 119, 180])).sum(axis=2) < 40).sum())


def _screenshot(html: Path, png: Path, profile: Path) -> None:
    command = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
        f"--user-data-dir={profile}", "--window-size=1200,2400", f"--screenshot={png}", html.as_uri(),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=120)


def test_report_renders_in_a_real_browser_with_its_images(iris_run, tmp_path):
    if _chromium() is None:
        if os.environ.get("PIPELINE_CORE_REQUIRE_BROWSER"):
            pytest.fail("PIPELINE_CORE_REQUIRE_BROWSER is set but no chromium is installed")
        pytest.skip("chromium is not installed (apt-get install chromium); CI installs it")
    report = iris_run.run_dir / "report.html"
    html = report.read_text()
    assert html.count('src="data:image/png;base64,') == 2 and "http" not in html.split("<body>")[1].split("Generated by")[0]
    for needle in ("Metrics", "Export checks", "Model", "Configuration", "setosa", "Total params"):
        assert needle in html
    _screenshot(report, tmp_path / "report.png", tmp_path / "profile")
    width, height = check_png(tmp_path / "report.png")
    assert (width, height) == (1200, 2400)
    # the same page with its images removed: what remains of the blue is not the plots
    stripped = tmp_path / "stripped.html"
    stripped.write_text(html.replace("data:image/png;base64,", "data:image/png;base64,AAAA"))
    _screenshot(stripped, tmp_path / "stripped.png", tmp_path / "profile2")
    shown, without = _blue_pixels(tmp_path / "report.png"), _blue_pixels(tmp_path / "stripped.png")
    assert shown > 1000 and shown > 10 * (without + 1), (shown, without)


def test_events_jsonl_follows_the_run(iris_run):
    events = [json.loads(line) for line in (iris_run.run_dir / "events.jsonl").read_text().splitlines()]
    kinds = [event["event"] for event in events]
    assert kinds[0] == "pipeline_start" and kinds[-1] == "pipeline_end"
    assert kinds.count("epoch") == len(iris_run.history)
    assert [e["train_loss"] for e in events if e["event"] == "epoch"] == [row["train_loss"] for row in iris_run.history]
    assert events[-1]["metrics"]["test"]["accuracy"] == iris_run.metrics["test"]["accuracy"]


def test_tensorboard_tracker_writes_event_files(write_pipeline, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    text = IRIS_FAST.replace("seed = 3", 'seed = 3\nplugins = ["plugins.trackers.tensorboard"]')
    run = run_file(write_pipeline(text), tmp_path / "run")
    accumulator = EventAccumulator(str(run.run_dir / "tensorboard"))
    accumulator.Reload()
    losses = [event.value for event in accumulator.Scalars("train/loss")]
    assert losses == pytest.approx([row["train_loss"] for row in run.history])
    assert "final/test/accuracy" in accumulator.Tags()["scalars"]


def test_inspect_prints_the_model_without_training(tmp_path):
    result = CliRunner().invoke(cli, ["inspect", str(PIPELINES / "iris.toml")])
    assert result.exit_code == 0, result.output
    assert "iris: multiclass, input [4] float32, 3 output(s); test: 38 rows, train: 112 rows" in result.output
    assert "BatchNorm1d" in result.output and "[2, 128]" in result.output
    expected = 4 * 128 + 128 + 2 * 128 + 128 * 64 + 64 + 2 * 64 + 64 * 32 + 32 + 2 * 32 + 32 * 16 + 16 + 16 * 3 + 3
    assert f"parameters: {expected:,} ({expected:,} trainable)" in result.output


def test_runs_and_compare(write_pipeline, tmp_path):
    root = tmp_path / "artifacts"
    path = write_pipeline()
    first = run_pipeline(*load_pipeline(path), artifacts_root=root, quiet=True)
    second = run_pipeline(*load_pipeline(path, ("train.optimizer.lr=0.05", "pipeline.seed=9")), artifacts_root=root, quiet=True)
    listing = CliRunner().invoke(cli, ["runs", "iris_fast", "--artifacts", str(root)])
    assert listing.exit_code == 0, listing.output
    assert first.run_dir.name in listing.output and second.run_dir.name in listing.output
    assert listing.output.count("succeeded") == 2
    assert f"accuracy {first.metrics['test']['accuracy']:.4f}" in listing.output
    everything = CliRunner().invoke(cli, ["runs", "--artifacts", str(root)])
    assert everything.exit_code == 0 and "iris_fast/" in everything.output
    diff = CliRunner().invoke(cli, ["compare", str(first.run_dir), str(second.run_dir)])
    assert diff.exit_code == 0, diff.output
    assert "train.optimizer.lr" in diff.output and "0.01" in diff.output and "0.05" in diff.output
    assert "pipeline.seed" in diff.output
    change = second.metrics["test"]["loss"] - first.metrics["test"]["loss"]
    assert f"{change:+.4f}" in diff.output
    missing = CliRunner().invoke(cli, ["runs", "nothing", "--artifacts", str(root)])
    assert missing.exit_code == 2 and "no runs of 'nothing'" in missing.output
    (second.run_dir / "config.toml").write_text("[pipeline\nseed = ", encoding="utf-8")  # a damaged run folder
    damaged = CliRunner().invoke(cli, ["runs", "iris_fast", "--artifacts", str(root)])
    assert damaged.exit_code == 0 and "config.toml unreadable" in damaged.output and first.run_dir.name in damaged.output
    refused = CliRunner().invoke(cli, ["compare", str(first.run_dir), str(second.run_dir)])
    assert refused.exit_code == 2 and "config.toml cannot be read as TOML" in refused.output
    assert "Traceback" not in refused.output
