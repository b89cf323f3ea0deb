"""`pipeline export RUN`: a run whose export failed keeps its weights and is exported again without
training; the old bundle stays until a new one passed; only export settings may change.

The small iris pipeline is run twice for the whole module, once with an export check that cannot
pass (:func:`failed_once`) and once as written (:func:`finished_once`); a test that exports again or
edits the run folder works on its own copy of it."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import onnx
import pytest
import torch
from click.testing import Result

from helpers import IRIS_FAST, invoke

#: no tolerance at all: onnxruntime's float32 rounding differs from PyTorch's, so the check fails
IMPOSSIBLE = ("--set", "export.atol=0.0", "--set", "export.rtol=0.0", "--set", "export.noise_factor=0.0")
DEFAULTS = ("--set", "export.atol=1e-6", "--set", "export.rtol=1e-6", "--set", "export.noise_factor=4.0")


def _run_once(folder: Path, *options: str) -> tuple[Path, Result]:
    """``pipeline run`` of IRIS_FAST into ``<folder>/run``: the run folder and the command's result."""
    path = folder / "pipeline.toml"
    path.write_text(textwrap.dedent(IRIS_FAST).lstrip(), encoding="utf-8")
    threads = torch.get_num_threads()
    result = invoke("run", path, "--out", folder / "run", "--quiet", *options)
    torch.set_num_threads(threads)  # a run sets torch's thread count; keep it from leaking into later tests
    return folder / "run", result


@pytest.fixture(scope="module")
def failed_once(tmp_path_factory):
    """A run whose export check failed (exit 1): (its folder, the output). Read it only."""
    run_dir, result = _run_once(tmp_path_factory.mktemp("failed"), *IMPOSSIBLE)
    assert result.exit_code == 1, result.output
    return run_dir, result.output


@pytest.fixture(scope="module")
def finished_once(tmp_path_factory):
    """A run that passed its export checks and sealed its bundle. Read it only; :func:`finished_run` copies it."""
    run_dir, result = _run_once(tmp_path_factory.mktemp("finished"))
    assert result.exit_code == 0, result.output
    return run_dir


@pytest.fixture
def finished_run(finished_once, tmp_path) -> Path:
    """This test's own copy of :func:`finished_once`'s run folder, at ``tmp_path / "run"``."""
    return Path(shutil.copytree(finished_once, tmp_path / "run", symlinks=True))


def _status(run_dir):
    return json.loads((run_dir / "status.json").read_text())


def test_a_failed_export_keeps_the_training_and_names_the_command(failed_once):
    run_dir, output = failed_once
    assert "error: export check failed: onnx: batch 1: 'logits' differs from eager PyTorch" in output
    assert f"export them again with `pipeline export {run_dir}`" in output
    for name in ("weights.pt", "history.csv", "metrics.json", "training.json", "config.toml"):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "bundle").exists() and not (run_dir / "manifest.json").exists()
    assert (run_dir / "bundle.failed" / "model.onnx").is_file()  # the rejected files, for inspection
    assert not (run_dir / "bundle.failed" / "manifest.json").exists()
    assert _status(run_dir)["status"] == "failed" and _status(run_dir)["stage"] == "export"


def test_export_again_seals_a_bundle_without_training(failed_once, tmp_path):
    run_dir = Path(shutil.copytree(failed_once[0], tmp_path / "run", symlinks=True))
    weights = (run_dir / "weights.pt").read_bytes()
    history = (run_dir / "history.csv").read_text()
    result = invoke("export", run_dir, *DEFAULTS)
    assert result.exit_code == 0, result.output
    assert result.output.count("passed") == 3
    assert (run_dir / "weights.pt").read_bytes() == weights and (run_dir / "history.csv").read_text() == history
    assert _status(run_dir)["status"] == "succeeded" and "reexported" in _status(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert "bundle/model.onnx" in manifest["files"] and manifest["reexports"][0]["overrides"] == list(DEFAULTS[1::2])
    assert not (run_dir / "bundle.failed").exists()
    report = json.loads((run_dir / "export_report.json").read_text())
    assert all(entry["passed"] for entry in report.values())
    assert "noise_factor = 4.0" in (run_dir / "config.toml").read_text()  # the config now says what made the bundle
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([[5.1, 3.5, 1.4, 0.2]]))
    predicted = invoke("predict", run_dir, "--input", rows)
    assert predicted.exit_code == 0, predicted.output
    assert predicted.output.startswith("label,probability_setosa")


def test_a_failed_reexport_keeps_the_sealed_bundle(finished_run):
    run_dir = finished_run
    sealed = {path.name: path.read_bytes() for path in (run_dir / "bundle").iterdir()}
    run_manifest = (run_dir / "manifest.json").read_bytes()
    result = invoke("export", run_dir, *IMPOSSIBLE)
    assert result.exit_code == 1
    assert "the sealed bundle/ from before is unchanged" in result.output
    assert {path.name: path.read_bytes() for path in (run_dir / "bundle").iterdir()} == sealed
    assert (run_dir / "manifest.json").read_bytes() == run_manifest
    assert json.loads((run_dir / "bundle.failed" / "export_report.json").read_text())["onnx"]["passed"] is False
    assert _status(run_dir)["status"] == "succeeded"  # the run itself did not fail


def test_export_with_other_formats_and_opset(finished_run):
    run_dir = finished_run
    result = invoke("export", run_dir, "--set", 'export.formats=["onnx"]', "--set", "export.onnx.opset=17")
    assert result.exit_code == 0, result.output
    files = json.loads((run_dir / "bundle" / "manifest.json").read_text())["files"]
    assert "model.onnx" in files and "model.torchscript.pt" not in files and "model.pt2" not in files
    assert onnx.load(str(run_dir / "bundle" / "model.onnx")).opset_import[0].version == 17
    assert json.loads((run_dir / "export_report.json").read_text())["onnx"]["opset"] == 17


@pytest.mark.parametrize("setting", ["train.epochs=9", "model.hidden_sizes=[4]", "pipeline.seed=1"])
def test_only_export_settings_can_change(finished_run, setting):
    run_dir = finished_run
    result = invoke("export", run_dir, "--set", setting)
    assert result.exit_code == 2
    assert f"--set {setting}: `pipeline export` changes only the export settings" in result.output


def test_a_run_without_trained_weights_is_refused(finished_run, tmp_path):
    run_dir = finished_run
    (run_dir / "weights.pt").unlink()
    result = invoke("export", run_dir)
    assert result.exit_code == 2
    assert f"{run_dir} has no weights.pt: its training did not finish" in result.output
    assert f"pipeline run {run_dir} --resume" in result.output
    assert invoke("export", tmp_path / "nowhere").exit_code == 2


def test_the_card_and_the_onnx_metadata_state_the_epochs_actually_run(write_pipeline, tmp_path):
    text = IRIS_FAST.replace("epochs = 3", "epochs = 200").replace('[data]\nname = "iris"', '[data]\nname = "iris"\nval_size = 0.2') + (
        "\n[train.early_stopping]\nmonitor = \"val_loss\"\npatience = 3\n")
    run_dir = tmp_path / "run"
    assert invoke("run", write_pipeline(text), "--out", run_dir, "--quiet").exit_code == 0
    training = json.loads((run_dir / "training.json").read_text())
    assert training["stopped_early"] and training["epochs_run"] < 200 and training["epochs_configured"] == 200
    card = (run_dir / "bundle" / "MODEL_CARD.md").read_text()
    expected = (f"- Training: {training['epochs_run']} of 200 configured epochs, {training['steps']} optimizer steps; "
                f"stopped early on val_loss, weights from epoch {training['best_epoch']} (the best)")
    assert expected in card
    props = {p.key: p.value for p in onnx.load(str(run_dir / "bundle" / "model.onnx")).metadata_props}
    assert json.loads(props["training"])["epochs_run"] == training["epochs_run"]
    # a re-export states the same, read back from training.json
    assert invoke("export", run_dir).exit_code == 0
    assert expected in (run_dir / "bundle" / "MODEL_CARD.md").read_text()
