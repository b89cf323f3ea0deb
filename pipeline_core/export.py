"""Exporters, the model they export, and the check every exported file must pass.

An exporter writes a file and knows how to load it back for inference. The host reloads each file
from disk, runs it on held-out inputs at several batch sizes and compares every output with the
eager model in eval mode; a file that disagrees fails the run instead of reaching a deployer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from pipeline_core.data import DataSpec, Task

PROBABILITIES = "probabilities"


class WithProbabilities(nn.Module):
    """A classifier that also returns its class probabilities (softmax, or sigmoid for one logit)."""

    def __init__(self, model: nn.Module, binary: bool) -> None:
        super().__init__()
        self.model = model
        self.binary = binary

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = self.model(inputs)
        if self.binary:
            return outputs, torch.sigmoid(outputs)
        return outputs, torch.softmax(outputs, dim=1)


def deployable(model: nn.Module, task: Task, probabilities: bool) -> nn.Module:
    """What is exported: the trained model (its preprocessing included) in eval mode, with a
    probabilities output next to the raw one when asked for and the task has classes."""
    if probabilities and task != "regression":
        return WithProbabilities(model, task == "binary").eval()
    return model.eval()


@dataclass(frozen=True)
class ExportInfo:
    """What an exporter needs besides the model: the data spec, the input and output names, and the
    metadata a deployer needs (pipeline, task, classes, feature names, input and outputs, test
    metrics, config hash, versions), JSON-ready. Exporters embed it in the file where the format
    allows (ONNX ``metadata_props``, an extra file in TorchScript and .pt2 archives)."""

    spec: DataSpec
    pipeline: str
    input_name: str = "input"
    output_names: tuple[str, ...] = ("logits",)
    dynamic_batch: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)

    def metadata_json(self) -> str:
        return json.dumps(self.metadata, sort_keys=True)


METADATA_FILE = "metadata.json"


def output_names_from(metadata_json: str) -> tuple[str, ...]:
    """The output names recorded in an embedded ``metadata.json`` (formats without named outputs)."""
    try:
        return tuple(output["name"] for output in json.loads(metadata_json)["outputs"])
    except (ValueError, KeyError, TypeError):
        raise ValueError("the file's embedded metadata.json does not name its outputs") from None


@runtime_checkable
class LoadedModel(Protocol):
    """An exported file loaded for inference: an input array in, ``{output name: array}`` out.

    ``providers`` says what actually ran it; ``signature`` is what the file itself declares about its
    input and outputs (``{"input": {"name", "shape"}, "outputs": [{"name", "shape"}, ...]}``), or
    ``{}`` for formats that declare nothing."""

    providers: list[str]
    signature: dict[str, Any]

    def __call__(self, inputs: np.ndarray) -> dict[str, np.ndarray]: ...


@runtime_checkable
class Exporter(Protocol):
    """What an ``exporter`` component returns: the file it writes, how it writes, how it loads back."""

    filename: str

    def export(self, model: nn.Module, example: torch.Tensor, path: Path, info: ExportInfo) -> dict[str, Any]:
        """Write ``model`` (see :func:`deployable`; eval mode, on the CPU) to ``path``; return
        details for the export report."""
        ...

    def load(self, path: Path, device: torch.device) -> LoadedModel:
        """Load ``path`` back for inference on ``device``."""
        ...


def named_outputs(outputs: Any, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """A tuple (or single tensor/array) of outputs, named in order: for formats without output names."""
    values = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    arrays = [v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v) for v in values]
    if len(arrays) != len(names):
        raise ValueError(f"the model returned {len(arrays)} outputs, expected {len(names)} ({', '.join(names)})")
    return dict(zip(names, arrays, strict=True))


@dataclass
class LoadedTorchModule:
    """A TorchScript or torch.export module loaded back: NumPy batch in, named outputs out."""

    module: Callable[[torch.Tensor], Any]
    device: torch.device
    output_names: tuple[str, ...]
    providers: list[str]
    signature: dict[str, Any] = field(default_factory=dict)

    def __call__(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            return named_outputs(self.module(torch.from_numpy(inputs).to(self.device)), self.output_names)


def _differences(got: np.ndarray, want: np.ndarray, atol: float) -> tuple[float, float]:
    difference = np.abs(got.astype(np.float64) - want.astype(np.float64))
    if difference.size == 0:
        return 0.0, 0.0
    # Relative to the reference, ignoring elements smaller than atol (where relative error is noise).
    scale = np.maximum(np.abs(want.astype(np.float64)), max(atol, 1e-12))
    return float(difference.max()), float((difference / scale).max())


def _signature_problems(signature: dict[str, Any], info: ExportInfo) -> list[str]:
    """The names, ranks and dynamic batch axis a file declares, against what was asked for."""
    if not signature:
        return []
    problems = []
    declared_input = signature["input"]
    if declared_input["name"] != info.input_name:
        problems.append(f"input is named {declared_input['name']!r}, expected {info.input_name!r}")
    names = tuple(output["name"] for output in signature["outputs"])
    if names != info.output_names:
        problems.append(f"outputs are named {list(names)}, expected {list(info.output_names)}")
    for entry in [declared_input, *signature["outputs"]]:
        batch = entry["shape"][0] if entry["shape"] else None
        if info.dynamic_batch and isinstance(batch, int):
            problems.append(f"{entry['name']!r} has a fixed batch size {batch}; a dynamic batch axis was asked for")
    expected_input = [None, *info.spec.input_shape]
    if len(declared_input["shape"]) != len(expected_input):
        problems.append(f"input has rank {len(declared_input['shape'])}, expected {len(expected_input)}")
    return problems


def verify(
    loaded: LoadedModel,
    reference: nn.Module,
    inputs: torch.Tensor,
    info: ExportInfo,
    batch_sizes: list[int],
    atol: float,
    rtol: float,
) -> dict[str, Any]:
    """Compare every output of ``loaded`` with eval-mode ``reference`` at each batch size and on the
    whole split: shapes, ``|got − eager| ≤ atol + rtol·|eager|`` element-wise, class agreement."""
    reference = reference.eval()
    sizes = sorted({min(size, len(inputs)) for size in batch_sizes} | {len(inputs)})
    problems = _signature_problems(loaded.signature, info)
    per_output = {name: {"max_abs_diff": 0.0, "max_rel_diff": 0.0} for name in info.output_names}
    checks = []
    full: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None
    for size in sizes:
        batch = inputs[:size]
        with torch.no_grad():
            want = named_outputs(reference(batch), info.output_names)
        got = loaded(batch.numpy())
        if set(got) != set(want):
            problems.append(f"batch {size}: outputs {sorted(got)}, expected {sorted(want)}")
            break
        entry: dict[str, Any] = {"batch_size": size, "close": True}
        for name in info.output_names:
            if got[name].shape != want[name].shape:
                problems.append(f"batch {size}: {name!r} has shape {got[name].shape}, eager PyTorch gives {want[name].shape}")
                entry["close"] = False
                continue
            abs_diff, rel_diff = _differences(got[name], want[name], atol)
            stats = per_output[name]
            stats["max_abs_diff"] = max(stats["max_abs_diff"], abs_diff)
            stats["max_rel_diff"] = max(stats["max_rel_diff"], rel_diff)
            if not np.allclose(got[name], want[name], atol=atol, rtol=rtol):
                entry["close"] = False
                problems.append(f"batch {size}: {name!r} max abs diff {abs_diff:.3g} exceeds atol {atol:g} + rtol {rtol:g}·|eager|")
        checks.append(entry)
        if size == len(inputs):
            full = (got, want)
    report: dict[str, Any] = {
        "max_abs_diff": max(s["max_abs_diff"] for s in per_output.values()),
        "max_rel_diff": max(s["max_rel_diff"] for s in per_output.values()),
        "outputs": per_output,
        "atol": atol,
        "rtol": rtol,
        "checked_rows": len(inputs),
        "batches": checks,
        "signature": loaded.signature,
    }
    if info.spec.task != "regression" and full is not None:
        got_raw, want_raw = full[0][info.output_names[0]], full[1][info.output_names[0]]
        if got_raw.shape == want_raw.shape:
            if info.spec.task == "multiclass":
                agreement = float((got_raw.argmax(axis=1) == want_raw.argmax(axis=1)).mean())
            else:
                agreement = float(((got_raw > 0) == (want_raw > 0)).mean())
            report["class_agreement"] = agreement
            if agreement < 1.0:
                problems.append(f"predicted classes differ from eager PyTorch on {(1 - agreement) * 100:.2f}% of the test split")
    report["passed"] = not problems
    report["problems"] = problems
    return report
