"""The run's ONNX model in MLflow's own format (the ``onnx`` flavour, with a signature and an input
example taken from the data), so ``mlflow.pyfunc.load_model`` predicts with it; registered, when
``register_as`` names a model, with the sealed bundle's manifest hash as a version tag, so a
registry version leads back to exactly one bundle (``pipeline-deploy pull`` checks it)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline_core_plugins.trackers.mlflow_runs import TAG_PREFIX, TrackedRun

#: the model's name inside the MLflow run, and where the sealed bundle goes among the run's artifacts
MODEL_NAME = "model"
BUNDLE_ARTIFACT = "bundle"
#: a registry version's tag holding the sha256 of the bundle's manifest.json
MANIFEST_TAG = TAG_PREFIX + "bundle_manifest_sha256"
#: a registry version's tag naming the run artifact that holds its bundle
BUNDLE_TAG = TAG_PREFIX + "bundle_artifact"
EXAMPLE_ROWS = 5


@dataclass(frozen=True)
class LoggedModel:
    """What was logged: the model's URI, and its registry version when it was registered."""

    uri: str
    manifest_sha256: str
    registered: tuple[str, str] | None = None  # (name, version)


def manifest_sha256(bundle: Path) -> str:
    """The sha256 of the bundle's ``manifest.json`` bytes: the manifest lists every file's hash, so
    this one hash names the whole bundle (the deploy side's ``Bundle.manifest_sha256``)."""
    return hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()


def _signature(model_file: Path, example: np.ndarray | None) -> tuple[Any, np.ndarray | None]:
    """The signature read from the model's answers to ``example`` (rows of the data), or none when
    the model does not take one array (the example is then left out too)."""
    import onnxruntime
    from mlflow.models import infer_signature

    session = onnxruntime.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    if example is None or len(inputs) != 1:
        return None, None
    example = example.astype(np.float32) if inputs[0].type == "tensor(float)" else example
    answers = session.run(None, {inputs[0].name: example})
    names = [output.name for output in session.get_outputs()]
    outputs = answers[0] if len(answers) == 1 else dict(zip(names, answers, strict=True))
    return infer_signature(example, outputs), example


def log_model(tracked: TrackedRun, bundle: Path, example: np.ndarray | None, register_as: str) -> LoggedModel:
    """Log ``bundle/model.onnx`` as the run's MLflow model (and register it), the bundle beside it."""
    import mlflow
    import mlflow.onnx
    import onnx

    model_file = bundle / "model.onnx"
    sha = manifest_sha256(bundle)
    tracked.log_files(bundle.parent, [BUNDLE_ARTIFACT])
    signature, example = _signature(model_file, example)
    mlflow.set_tracking_uri(tracked.uri)
    with mlflow.start_run(run_id=tracked.run_id):
        info = mlflow.onnx.log_model(
            onnx.load(str(model_file)), name=MODEL_NAME, signature=signature, input_example=example,
            registered_model_name=register_as or None, tags={MANIFEST_TAG: sha}, onnx_execution_providers=["CPUExecutionProvider"],
        )
    registered = None
    if register_as:
        version = str(info.registered_model_version)
        tracked.client.set_model_version_tag(register_as, version, MANIFEST_TAG, sha)
        tracked.client.set_model_version_tag(register_as, version, BUNDLE_TAG, BUNDLE_ARTIFACT)
        registered = (register_as, version)
    return LoggedModel(info.model_uri, sha, registered)


def example_rows(inputs: Any) -> np.ndarray | None:
    """The first rows of a split's inputs as a NumPy array, or None when they are not one tensor (a streamed split, several inputs)."""
    try:
        return np.asarray(inputs[:EXAMPLE_ROWS].detach().cpu().numpy())
    except (AttributeError, TypeError):
        return None
