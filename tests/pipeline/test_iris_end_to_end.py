"""An end-to-end iris run with few epochs: the run folder contract, export checks, reproducibility.

The small iris pipeline as written is run once for the module (:func:`iris_run`); the tests that only
read a run of it share that one."""

from __future__ import annotations

import csv
import json
import textwrap
import tomllib

import pytest
import torch

from pipeline_core import RunContext
from pipeline_core.pipeline.runner import load_pipeline, run_pipeline
from pipeline_core.run.artifacts import sha256

from helpers import IRIS_FAST, run_file

REQUIRED_FILES = {
    "config.toml", "metrics.json", "history.csv", "weights.pt", "export_report.json", "manifest.json",
    "bundle/model.onnx", "bundle/model.torchscript.pt", "bundle/model.pt2", "bundle/metadata.json",
    "bundle/MODEL_CARD.md", "bundle/predict.py", "bundle/manifest.json",
}


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory: pytest.TempPathFactory) -> RunContext:
    """IRIS_FAST (3 epochs) run once into ``<folder>/run`` from ``<folder>/pipeline.toml``. Read it only."""
    folder = tmp_path_factory.mktemp("iris")
    path = folder / "pipeline.toml"
    path.write_text(textwrap.dedent(IRIS_FAST).lstrip(), encoding="utf-8")
    threads = torch.get_num_threads()
    run = run_file(path, folder / "run")
    torch.set_num_threads(threads)  # a run sets torch's thread count; keep it from leaking into later tests
    return run


def test_run_folder_holds_the_contract(iris_run):
    folder = iris_run.run_dir
    assert REQUIRED_FILES <= {p.relative_to(folder).as_posix() for p in folder.rglob("*")}

    metrics = json.loads((folder / "metrics.json").read_text())
    assert set(metrics["test"]) == {"loss", "accuracy", "f1", "confusion_matrix"}  # the classification defaults
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    assert metrics["test"]["accuracy"] > 1 / 3  # three epochs of Adam beat chance on iris

    with open(folder / "history.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    assert {"train_loss", "train_accuracy", "lr", "seconds"} <= set(rows[0])

    report = json.loads((folder / "export_report.json").read_text())
    assert set(report) == {"onnx", "torchscript", "torch_export"}
    for entry in report.values():
        assert entry["passed"] is True
        assert entry["max_abs_diff"] <= 1e-4
        assert entry["class_agreement"] == 1.0
        assert {b["batch_size"] for b in entry["batches"]} == {1, 2, 7, 38}
    assert report["onnx"]["providers"] == ["CPUExecutionProvider"]
    assert report["onnx"]["exporter"] in {"dynamo", "torchscript"}

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["seed"] == 3
    assert "torch" in manifest["versions"]
    listed = set(manifest["files"])
    assert REQUIRED_FILES - {"manifest.json"} <= listed
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == sha256(folder / name)

    resolved = tomllib.loads((folder / "config.toml").read_text())
    assert resolved["train"]["optimizer"] == {
        "name": "adam", "lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False,
    }
    assert resolved["data"]["test_size"] == 0.25  # defaults are written out


def test_weights_reload_safely_and_reproduce_the_metrics(iris_run):
    run = iris_run
    state = torch.load(run.run_dir / "weights.pt", weights_only=True)
    assert state.keys() == run.model.state_dict().keys()
    assert "preprocess.mean" in state  # standardization statistics travel with the weights


def test_same_seed_same_metrics_and_other_seed_differs(iris_run, tmp_path):
    path = iris_run.run_dir.parent / "pipeline.toml"  # the file iris_run ran, run twice more
    first = iris_run.metrics
    second = run_file(path, tmp_path / "b").metrics
    other = run_file(path, tmp_path / "c", "pipeline.seed=4").metrics
    assert first == second
    assert other != first


def test_default_run_folder_and_latest_link(write_pipeline, tmp_path):
    config, host = load_pipeline(write_pipeline())
    run = run_pipeline(config, host, artifacts_root=tmp_path / "artifacts", quiet=True)
    assert run.run_dir.parent == tmp_path / "artifacts" / "iris_fast"
    latest = tmp_path / "artifacts" / "iris_fast" / "latest"
    assert latest.resolve() == run.run_dir.resolve()


def test_validation_split_is_scored_every_epoch(write_pipeline, tmp_path):
    run = run_file(write_pipeline(), tmp_path / "run", "data.val_size=0.2")
    sizes = {name: len(split) for name, split in run.data.splits.items()}
    assert sizes == {"train": 82, "validation": 30, "test": 38}
    assert all({"val_loss", "val_accuracy"} <= set(row) for row in run.history)
    assert set(run.metrics) == {"test", "train", "validation"}
    # the test split is scored once, at evaluate: it never appears in the history
    assert not any(key.startswith("test") for row in run.history for key in row)


def test_standardization_uses_training_statistics_only(iris_run):
    run = iris_run
    train_inputs = run.data.splits["train"].inputs
    assert torch.allclose(run.model.preprocess.mean, train_inputs.mean(dim=0))
    standardized = run.model.preprocess(train_inputs)
    assert torch.allclose(standardized.mean(dim=0), torch.zeros(4), atol=1e-5)
