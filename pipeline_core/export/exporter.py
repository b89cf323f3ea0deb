"""Exporters and the model they export.

An exporter writes a file and knows how to load it back for inference. The host reloads each file
from disk and checks it against the eager model (:mod:`pipeline_core.export.verification`); a file that
disagrees fails the export instead of reaching a deployer.
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

from pipeline_core.data.loaded import DataSpec, Task


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
