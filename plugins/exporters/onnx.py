"""ONNX export through the torch.export-based exporter, with the TorchScript-based one as fallback.

Every file gets the run's metadata in its own ``metadata_props`` (so a deployer holding only the
``.onnx`` file knows its classes, features, metrics and provenance), passes ``onnx.checker`` with
``full_check``, and is run back through onnxruntime — on the GPU when the pipeline's device is CUDA.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from pipeline_core import Register, RunFailed, atomic_write, hookimpl

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from pipeline_core import ExportInfo

CUDA_PROVIDER, CPU_PROVIDER = "CUDAExecutionProvider", "CPUExecutionProvider"


def providers_for(device: torch.device) -> list[str]:
    """The providers to ask for: CUDA first on a CUDA device (it must be able to load), else the CPU."""
    import onnxruntime

    if device.type != "cuda":
        return [CPU_PROVIDER]
    available = onnxruntime.get_available_providers()
    if CUDA_PROVIDER not in available:
        raise RunFailed(
            f"pipeline.device is {str(device)!r} but this onnxruntime build has no CUDA provider "
            f"(it has {', '.join(available)}); install onnxruntime-gpu, or check on the CPU with device = 'cpu'"
        )
    return [CUDA_PROVIDER, CPU_PROVIDER]


def _shape(value: Any) -> list[int | str | None]:
    return [dim if isinstance(dim, (int, str)) else None for dim in (value.shape or [])]


def open_session(path: Path, device: torch.device) -> Any:
    """An onnxruntime session on ``device``; a CUDA request that silently fell back is an error."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    wanted = providers_for(device)
    # TF32 matmuls keep 10 mantissa bits: far outside float32 rounding, so the check runs in full float32
    providers = [(name, {"use_tf32": "0"}) if name == CUDA_PROVIDER else name for name in wanted]
    session = onnxruntime.InferenceSession(str(path), options, providers=providers)
    if wanted[0] == CUDA_PROVIDER and session.get_providers()[0] != CUDA_PROVIDER:
        raise RunFailed(
            f"onnxruntime could not start its CUDA provider for {path.name} (it ran {session.get_providers()}); "
            "check the CUDA and cuDNN libraries onnxruntime-gpu needs"
        )
    return session


@dataclass
class LoadedOnnx:
    session: Any
    providers: list[str]
    signature: dict[str, Any]

    def __call__(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        names = [output["name"] for output in self.signature["outputs"]]
        values = self.session.run(names, {self.signature["input"]["name"]: inputs})
        return dict(zip(names, values, strict=True))


@dataclass
class OnnxExporter:
    opset: int
    exporter: Literal["auto", "dynamo", "torchscript"]
    filename: str = "model.onnx"

    def _dynamo(self, model: nn.Module, example: torch.Tensor, path: Path, info: ExportInfo) -> None:
        import torch

        dynamic = ({0: torch.export.Dim("batch", min=1)},) if info.dynamic_batch else None
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model, (example,), dynamo=True, input_names=[info.input_name],
                output_names=list(info.output_names), dynamic_shapes=dynamic, opset_version=self.opset,
                verbose=False,
            )
        atomic_write(path, lambda temp: program.save(str(temp), external_data=False))

    def _torchscript(self, model: nn.Module, example: torch.Tensor, path: Path, info: ExportInfo) -> None:
        import torch

        names = [info.input_name, *info.output_names]
        axes = {name: {0: "batch"} for name in names} if info.dynamic_batch else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            atomic_write(path, lambda temp: torch.onnx.export(
                model, (example,), str(temp), dynamo=False, input_names=[info.input_name],
                output_names=list(info.output_names), dynamic_axes=axes, opset_version=self.opset,
            ))

    def export(self, model: nn.Module, example: torch.Tensor, path: Path, info: ExportInfo) -> dict[str, Any]:
        import onnx

        details: dict[str, Any] = {"opset": self.opset}
        if self.exporter in ("auto", "dynamo"):
            try:
                self._dynamo(model, example, path, info)
                details["exporter"] = "dynamo"
            except Exception as error:
                if self.exporter == "dynamo":
                    raise
                details["dynamo_error"] = f"{type(error).__name__}: {error}"[:500]
        if "exporter" not in details:
            self._torchscript(model, example, path, info)
            details["exporter"] = "torchscript"
        proto = onnx.load(str(path))
        onnx.helper.set_model_props(proto, {
            key: value if isinstance(value, str) else json.dumps(value) for key, value in info.metadata.items()
        })
        atomic_write(path, lambda temp: onnx.save_model(proto, str(temp)))
        onnx.checker.check_model(str(path), full_check=True)
        details["checker"] = "onnx.checker full_check passed"
        details["metadata_props"] = sorted(info.metadata)
        return details

    def load(self, path: Path, device: torch.device) -> LoadedOnnx:
        session = open_session(path, device)
        inputs, outputs = session.get_inputs(), session.get_outputs()
        signature = {
            "input": {"name": inputs[0].name, "shape": _shape(inputs[0])},
            "outputs": [{"name": o.name, "shape": _shape(o)} for o in outputs],
        }
        return LoadedOnnx(session, session.get_providers(), signature)


def onnx_exporter(
    *,
    opset: Annotated[int, Field(ge=13)] = 18,
    exporter: Literal["auto", "dynamo", "torchscript"] = "auto",
) -> OnnxExporter:
    """ONNX file for onnxruntime; ``exporter = "auto"`` tries torch.export first."""
    return OnnxExporter(opset, exporter)


@hookimpl
def register_exporters(register: Register) -> None:
    register("onnx", onnx_exporter)
