"""The export check at real MNIST scale: every shipped MNIST pipeline's model passes on the whole
10,000-row test split, and real export bugs still fail.

The data is MNIST-size and MNIST-format (60,000 + 10,000 28×28 digits, see ``digit_images``), written
as IDX files and read through torchvision's real loader by the shipped pipeline files, trained for a
few epochs so that logits reach MNIST-like magnitudes. ``benchmarks/export_check.py`` prints the
margins (worst difference / tolerance) these tests assert on.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline_core import ExportInfo, RunContext
from pipeline_core.engine import Tolerance, deployable, measure_noise, verify
from pipeline_core.pipeline.runner import load_pipeline, run_pipeline

from digit_images import write_digit_mnist
from export_faults import FAULTS, export_onnx
from helpers import PIPELINES

#: the shipped MNIST pipelines, shortened: each family (sigmoid 784-512-256-10, sigmoid 784-20-10,
#: ReLU 784-128-64-10) trained long enough for MNIST-like logits, never the full tutorial length
QUICK = {
    "mnist": ("train.epochs=2", "train.optimizer.lr=0.05"),
    "mnist_small": ("train.epochs=3",),
    "mnist_relu": ("train.epochs=3",),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunContext]:
    root = tmp_path_factory.mktemp("digits")
    write_digit_mnist(root)
    finished = {}
    for name, overrides in QUICK.items():
        config, host = load_pipeline(PIPELINES / f"{name}.toml", (f'data.root="{root}"', *overrides))
        finished[name] = run_pipeline(config, host, out=root / name, quiet=True)
    return finished


@pytest.mark.parametrize("name", QUICK)
def test_every_mnist_family_passes_on_the_whole_test_split(runs, name):
    run = runs[name]
    assert run.metrics["test"]["accuracy"] > 0.6  # trained, so logits have real magnitudes
    for fmt, report in run.export_report.items():
        assert report["passed"], (fmt, report["problems"])
        assert report["checked_rows"] == 10_000
        assert 10_000 in [entry["batch_size"] for entry in report["batches"]]
        assert report["noise_reference"] == "float64 twin of the eager model"
        assert report["error_ratio"] < 1.0
        assert report["class_agreement"] == 1.0
    assert (run.run_dir / "bundle" / "manifest.json").is_file()


def _check_fault(run: RunContext, fault: str, folder: Path) -> dict:
    model = deployable(run.model.cpu(), "multiclass", probabilities=True)  # type: ignore[union-attr]
    inputs = run.data.splits["test"].inputs  # type: ignore[union-attr]
    info = ExportInfo(run.data.spec, run.config.name, "input", ("logits", "probabilities"), True)  # type: ignore[union-attr]
    eager, exported, exporter = FAULTS[fault](model)
    loaded = export_onnx(exported, inputs[:2], info, folder, exporter)
    noise = measure_noise(eager, inputs, info.output_names)
    return verify(loaded, eager, inputs, info, [1, 2, 7], Tolerance(), noise)


@pytest.mark.parametrize("fault", [
    "batch-dependent branch", "preprocessing left out", "last-layer weight ×1.001 (largest)", "swapped classes 3 and 5",
])
@pytest.mark.parametrize("name", QUICK)
def test_real_export_bugs_fail_the_check(runs, name, fault, tmp_path):
    report = _check_fault(runs[name], fault, tmp_path)
    assert not report["passed"]
    assert report["error_ratio"] > 2.0, report["problems"]  # not a near miss
    if fault == "batch-dependent branch":
        assert any(problem.startswith("batch 1: ") for problem in report["problems"])


@pytest.mark.parametrize("layer", ["first", "last"])
def test_a_perturbed_weight_fails_wherever_it_changes_outputs_beyond_rounding(runs, layer, tmp_path):
    """One weight ×1.001 moves the outputs of the trained ReLU net well beyond its rounding noise."""
    report = _check_fault(runs["mnist_relu"], f"{layer}-layer weight ×1.001 (largest)", tmp_path)
    assert not report["passed"]
    assert report["error_ratio"] > 2.0


def test_without_a_float64_twin_the_check_falls_back_to_magnitudes(tmp_path):
    class Float32Only(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(4, 3)

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            return self.linear(inputs.to(torch.float32)).float() + torch.ones(1, dtype=torch.float32)

    model = Float32Only().eval()
    noise = measure_noise(model, torch.randn(50, 4), ("logits",))
    assert noise.reference.startswith("float32 magnitudes (no float64 twin: RuntimeError")
    assert noise.columns["logits"].shape == (3,) and (noise.columns["logits"] > 0).all()
