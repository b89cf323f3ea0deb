"""Exporters: round trips, embedded metadata, the ONNX fallback path, signatures, failures caught."""

from __future__ import annotations

import json
import textwrap
import zipfile

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from pipeline_core import ConfigError, DataSpec, ExportInfo, RunFailed
from pipeline_core.engine import Tolerance, deployable, verify
from pipeline_core.pipeline.runner import load_pipeline, run_pipeline
from pipeline_core_plugins.exporters.onnx import onnx_exporter
from pipeline_core_plugins.exporters.torch_export import torch_export
from pipeline_core_plugins.exporters.torchscript import torchscript

from helpers import IRIS_FAST

SPEC = DataSpec("multiclass", (4,), 3, classes=("a", "b", "c"), feature_names=("w", "x", "y", "z"))
INFO = ExportInfo(SPEC, "unit", "features", ("scores", "probabilities"), True,
                  {"pipeline": "unit", "outputs": [{"name": "scores"}, {"name": "probabilities"}], "classes": ["a", "b", "c"]})


def _model() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    net.train()
    net(torch.randn(16, 4))  # move the BatchNorm running statistics away from their defaults
    return deployable(net, "multiclass", probabilities=True)


@pytest.mark.parametrize("factory, options", [
    (onnx_exporter, {}),
    (onnx_exporter, {"exporter": "torchscript"}),
    (torchscript, {}),
    (torchscript, {"method": "trace"}),
    (torch_export, {}),
])
def test_round_trip_matches_eager_at_every_batch_size(tmp_path, factory, options):
    model = _model()
    exporter = factory(**options)
    path = tmp_path / exporter.filename
    exporter.export(model, torch.randn(2, 4), path, INFO)
    loaded = exporter.load(path, torch.device("cpu"))
    inputs = torch.randn(50, 4)
    report = verify(loaded, model, inputs, INFO, [1, 2, 7], Tolerance())
    assert report["passed"], report["problems"]
    assert {b["batch_size"] for b in report["batches"]} == {1, 2, 7, 50}
    assert set(report["outputs"]) == {"scores", "probabilities"}
    assert report["class_agreement"] == 1.0
    outputs = loaded(inputs.numpy())
    np.testing.assert_allclose(outputs["probabilities"].sum(axis=1), 1.0, rtol=1e-5)


def test_onnx_file_carries_metadata_names_and_a_dynamic_batch(tmp_path):
    exporter = onnx_exporter()
    details = exporter.export(_model(), torch.randn(2, 4), tmp_path / "m.onnx", INFO)
    assert details["exporter"] == "dynamo"
    proto = onnx.load(str(tmp_path / "m.onnx"))
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["pipeline"] == "unit"
    assert json.loads(props["classes"]) == ["a", "b", "c"]
    assert [i.name for i in proto.graph.input] == ["features"]
    assert [o.name for o in proto.graph.output] == ["scores", "probabilities"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch axis
    signature = exporter.load(tmp_path / "m.onnx", torch.device("cpu")).signature
    assert signature["input"]["name"] == "features" and isinstance(signature["input"]["shape"][0], str)


@pytest.mark.parametrize("factory", [torchscript, torch_export])
def test_torch_formats_embed_the_metadata(tmp_path, factory):
    exporter = factory()
    exporter.export(_model(), torch.randn(2, 4), tmp_path / exporter.filename, INFO)
    with zipfile.ZipFile(tmp_path / exporter.filename) as archive:
        embedded = [name for name in archive.namelist() if name.endswith("metadata.json")]
        assert embedded, archive.namelist()
        assert json.loads(archive.read(embedded[0]))["classes"] == ["a", "b", "c"]


def test_signature_with_wrong_names_or_fixed_batch_is_reported():
    class Fake:
        providers = ["fake"]
        signature = {"input": {"name": "x", "shape": [4, 4]}, "outputs": [{"name": "out", "shape": [4, 3]}]}

        def __call__(self, inputs):
            model = _model()
            with torch.no_grad():
                scores, probabilities = model(torch.from_numpy(inputs))
            return {"scores": scores.numpy(), "probabilities": probabilities.numpy()}

    report = verify(Fake(), _model(), torch.randn(8, 4), INFO, [1])
    assert not report["passed"]
    assert "input is named 'x', expected 'features'" in report["problems"]
    assert "outputs are named ['out'], expected ['scores', 'probabilities']" in report["problems"]
    assert "'x' has a fixed batch size 4; a dynamic batch axis was asked for" in report["problems"]


def test_a_shape_mismatch_is_reported():
    class Truncating:
        providers, signature = ["fake"], {}

        def __call__(self, inputs):
            with torch.no_grad():
                scores, probabilities = _model()(torch.from_numpy(inputs))
            return {"scores": scores.numpy()[:1], "probabilities": probabilities.numpy()}

    report = verify(Truncating(), _model(), torch.randn(8, 4), INFO, [2])
    assert "batch 2: 'scores' has shape (1, 3), eager PyTorch gives (2, 3)" in report["problems"]


BRANCHY_PLUGIN = '''
from torch import nn
from pipeline_core import DataSpec, hookimpl

class Branchy(nn.Module):
    """A data-dependent branch: torch.export refuses it, tracing keeps the branch the data takes."""

    def __init__(self, spec):
        super().__init__()
        self.linear = nn.Linear(spec.input_shape[0], spec.num_outputs)

    def forward(self, x):
        out = self.linear(x)
        if x.sum() > -1e9:
            return out
        return out * 2

def branchy(spec: DataSpec) -> nn.Module:
    return Branchy(spec)

@hookimpl
def register_models(register):
    register("branchy", branchy)
'''


def _branchy(write_pipeline, tmp_path, formats: str):
    (tmp_path / "branchy.py").write_text(textwrap.dedent(BRANCHY_PLUGIN))
    text = IRIS_FAST.replace("seed = 3", 'seed = 3\nplugins = ["branchy.py"]').replace(
        'name = "mlp"\nhidden_sizes = [16, 8]\nbatch_norm = [true, false]', 'name = "branchy"'
    ) + f"\n[export]\nformats = {formats}\n"
    return load_pipeline(write_pipeline(text))


def test_onnx_falls_back_to_the_torchscript_exporter_and_records_it(write_pipeline, tmp_path):
    config, host = _branchy(write_pipeline, tmp_path, '["onnx"]')
    run = run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    report = run.export_report["onnx"]
    assert report["exporter"] == "torchscript"
    assert "TorchExportError" in report["dynamo_error"] or "export" in report["dynamo_error"].lower()
    assert report["passed"]


def test_a_format_that_cannot_express_the_model_fails_the_run_cleanly(write_pipeline, tmp_path):
    config, host = _branchy(write_pipeline, tmp_path, '["torch_export", "torchscript"]')
    with pytest.raises(RunFailed, match="export check failed: torch_export: export failed: "):
        run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    report = json.loads((tmp_path / "run" / "export_report.json").read_text())
    assert report["torch_export"]["passed"] is False
    assert report["torchscript"]["passed"] is True  # the other format was still exported and checked


def test_fixed_batch_export_is_checked_at_its_size(write_pipeline, tmp_path):
    config, host = load_pipeline(write_pipeline(), ("export.dynamic_batch=false", 'export.formats=["onnx"]'))
    run = run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    report = run.export_report["onnx"]
    assert report["passed"]
    assert report["signature"]["input"]["shape"] == [2, 4]
    assert [b["batch_size"] for b in report["batches"]] == [2]
    # predict runs it two rows per call, and says so when the rows cannot be split that way
    from pipeline_core_deploy import predict

    bundle = predict.open_bundle(run.run_dir)
    rows = run.data.splits["test"].inputs[:4].numpy()
    assert bundle.batch_independent is None and bundle.run(rows)["logits"].shape == (4, 3)
    with pytest.raises(predict.DeployError, match="takes exactly 2 rows per call .* 3 rows are not a multiple of 2"):
        bundle.run(rows[:3])


def test_without_probabilities_there_is_one_output(write_pipeline, tmp_path):
    config, host = load_pipeline(write_pipeline(), ("export.probabilities=false", 'export.output_name="scores"'))
    run = run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    assert [o["name"] for o in run.export_report["onnx"]["signature"]["outputs"]] == ["scores"]
    assert all(entry["passed"] for entry in run.export_report.values())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_device_without_a_gpu_is_a_clear_error(write_pipeline, tmp_path):
    config, host = load_pipeline(write_pipeline(), ('pipeline.device="cuda"',))
    with pytest.raises(ConfigError, match="pipeline.device is 'cuda' but no CUDA device is available here"):
        run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_run_checks_onnx_on_the_gpu(write_pipeline, tmp_path):
    config, host = load_pipeline(write_pipeline(), ('pipeline.device="cuda"',))
    run = run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    assert run.export_report["onnx"]["providers"][0] == "CUDAExecutionProvider"
    assert all(entry["passed"] for entry in run.export_report.values())
