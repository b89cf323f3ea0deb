"""Speed never costs an artifact: the shipped iris pipeline, run through the real ``pipeline`` console
script (as a user runs it, exit path included), leaves every file of its run folder in place, each
one complete and listed with its hash in the manifests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx

from pipeline_core.run.artifacts import sha256

from helpers import ROOT

PIPELINE = Path(sys.executable).with_name("pipeline")

#: Every file `pipeline run pipelines/iris.toml` writes (2 epochs of 28 steps: one checkpoint, at step 56).
EXPECTED = {
    "bundle/MODEL_CARD.md", "bundle/manifest.json", "bundle/metadata.json", "bundle/model.onnx",
    "bundle/model.pt2", "bundle/model.torchscript.pt", "bundle/predict.py",
    "checkpoints/latest.json", "checkpoints/step-000000056.pt", "checkpoints/step-000000056.json",
    "config.toml", "events.jsonl", "export_report.json", "history.csv", "manifest.json", "metrics.json",
    "plots/confusion_matrix.png", "plots/curves.png", "plots/index.json",
    "report.html", "run.json", "status.json", "training.json", "weights.pt",
}


def test_iris_run_keeps_every_artifact(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [str(PIPELINE), "run", str(ROOT / "pipelines" / "iris.toml"), "--set", "train.epochs=2", "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert f"run folder: {out}" in result.stdout

    written = {path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file()}
    assert written == EXPECTED
    assert json.loads((out / "status.json").read_text())["status"] == "succeeded"
    assert [event["stage"] for event in map(json.loads, (out / "events.jsonl").read_text().splitlines())
            if event["event"] == "stage_end"] == ["load_data", "build_model", "train", "evaluate", "export"]

    report = json.loads((out / "export_report.json").read_text())
    assert sorted(report) == ["onnx", "torch_export", "torchscript"]
    assert all(entry["passed"] for entry in report.values())
    onnx.checker.check_model(str(out / "bundle" / "model.onnx"), full_check=True)
    for plot in ("confusion_matrix.png", "curves.png"):
        assert (out / "plots" / plot).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "</html>" in (out / "report.html").read_text()

    for manifest, folder in ((out / "manifest.json", out), (out / "bundle" / "manifest.json", out / "bundle")):
        files = json.loads(manifest.read_text())["files"]
        for name, entry in files.items():
            assert entry["sha256"] == sha256(folder / name), f"{manifest}: {name}"
    bundle_files = set(json.loads((out / "bundle" / "manifest.json").read_text())["files"])
    assert bundle_files == {name.removeprefix("bundle/") for name in EXPECTED if name.startswith("bundle/")} - {"manifest.json"}
