"""ONNX export through the torch.export-based exporter, with the TorchScript-based one as fallback,
checked by ``onnx.checker`` and run back through onnxruntime."""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import onnx
import torch
from pydantic import Field
from torch import nn

from pipeline_core import Register, hookimpl
from pipeline_core.artifacts import atomic_write
from pipeline_core.export import ExportInfo

CUDA_PROVIDER, CPU_PROVIDER = "CUDAExecutionProvider", "CPUExecutionProvider"


def providers_for(device: torch.device) -> list[str]:
    """Ask onnxruntime for CUDA only where it can load (a CUDA device exists and the build has it)."""
    import onnxruntime

    if device.type == "cuda" and torch.cuda.is_available() and CUDA_PROVIDER in onnxruntime.get_available_providers():
        return [CUDA_PROVIDER, CPU_PROVIDER]
    return [CPU_PROVIDER]


@dataclass
class LoadedOnnx:
    session: Any
    input_name: str
    providers: list[str]

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: inputs})[0]


@dataclass
class OnnxExporter:
    opset: int
    dynamic_batch: bool
    exporter: Literal["auto", "dynamo", "torchscript"]
    filename: str = "model.onnx"

    def _dynamo(self, model: nn.Module, example: torch.Tensor, path: Path, output: str) -> None:
        dynamic = ({0: torch.export.Dim("batch", min=1)},) if self.dynamic_batch else None
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model, (example,), dynamo=True, input_names=["input"], output_names=[output],
                dynamic_shapes=dynamic, opset_version=self.opset, verbose=False,
            )
        atomic_write(path, lambda temp: program.save(str(temp), external_data=False))

    def _torchscript(self, model: nn.Module, example: torch.Tensor, path: Path, output: str) -> None:
        axes = {"input": {0: "batch"}, output: {0: "batch"}} if self.dynamic_batch else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            atomic_write(path, lambda temp: torch.onnx.export(
                model, (example,), str(temp), dynamo=False, input_names=["input"], output_names=[output],
                dynamic_axes=axes, opset_version=self.opset,
            ))

    def export(self, model: nn.Module, example: torch.Tensor, path: Path, info: ExportInfo) -> dict[str, Any]:
        details: dict[str, Any] = {"opset": self.opset, "dynamic_batch": self.dynamic_batch}
        if self.exporter in ("auto", "dynamo"):
            try:
                self._dynamo(model, example, path, info.output_name)
                details["exporter"] = "dynamo"
            except Exception as error:
                if self.exporter == "dynamo":
                    raise
                details["dynamo_error"] = f"{type(error).__name__}: {error}"[:500]
        if "exporter" not in details:
            self._torchscript(model, example, path, info.output_name)
            details["exporter"] = "torchscript"
        onnx.checker.check_model(str(path), full_check=True)
        details["checker"] = "onnx.checker full_check passed"
        return details

    def load(self, path: Path, device: torch.device) -> LoadedOnnx:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(str(path), options, providers=providers_for(device))
        return LoadedOnnx(session, session.get_inputs()[0].name, session.get_providers())


def onnx_exporter(
    *,
    opset: Annotated[int, Field(ge=13)] = 18,
    dynamic_batch: bool = True,
    exporter: Literal["auto", "dynamo", "torchscript"] = "auto",
) -> OnnxExporter:
    """ONNX file for onnxruntime; ``exporter = "auto"`` tries torch.export first."""
    return OnnxExporter(opset, dynamic_batch, exporter)


@hookimpl
def register_exporters(register: Register) -> None:
    register("onnx", onnx_exporter)
