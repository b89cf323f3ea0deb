"""The example plugin's own tests, run against the installed distribution."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pipeline_core.testing import build_host, run_pipeline
from pipeline_handmade.focal import focal
from pipeline_handmade.relu import HandReLU

PIPELINE = Path(__file__).resolve().parent.parent / "pipeline.toml"


def test_hand_written_backward_matches_numerical_gradients():
    inputs = torch.randn(20, dtype=torch.float64, requires_grad=True)
    inputs.data[inputs.data.abs() < 1e-3] = 0.5  # keep away from the kink at 0
    assert torch.autograd.gradcheck(HandReLU.apply, (inputs,))


def test_focal_with_gamma_zero_is_weighted_cross_entropy():
    logits, targets = torch.randn(8, 1), torch.randint(0, 2, (8, 1)).float()
    expected = 0.5 * torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    assert torch.allclose(focal(gamma=0.0, alpha=0.5)(logits, targets), expected)


def test_found_through_its_entry_point():
    host = build_host()
    assert host.plugins["handmade"].source == "entry point"
    assert host.registry.get("model", "handmade_mlp").plugin == "handmade"


def test_pipeline_trains_and_every_export_passes(tmp_path):
    run = run_pipeline(PIPELINE, tmp_path, overrides=("train.epochs=40",))
    assert run.metrics["test"]["accuracy"] > 0.9
    assert {name: entry["passed"] for name, entry in run.export_report.items()} == {"onnx": True, "torchscript": True, "torch_export": True}
    assert set(json.loads((run.run_dir / "stage_seconds.json").read_text())) == {"load_data", "build_model", "train", "evaluate", "export"}
