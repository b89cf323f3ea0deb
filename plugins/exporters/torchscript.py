"""TorchScript export: ``torch.jit.script`` (keeps control flow), falling back to tracing."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from pipeline_core import Register, hookimpl
from pipeline_core.artifacts import atomic_write
from pipeline_core.export import ExportInfo


@dataclass
class LoadedTorchScript:
    module: torch.jit.ScriptModule
    device: torch.device
    providers: list[str]

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.module(torch.from_numpy(inputs).to(self.device)).cpu().numpy()


@dataclass
class TorchScriptExporter:
    method: Literal["auto", "script", "trace"] = "auto"
    filename: str = "model.torchscript.pt"

    def export(self, model: nn.Module, example: torch.Tensor, path: Path, info: ExportInfo) -> dict[str, Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated upstream
            used, scripted = self.method, None
            if self.method in ("auto", "script"):
                try:
                    scripted, used = torch.jit.script(model), "script"
                except Exception:
                    if self.method == "script":
                        raise
            if scripted is None:
                scripted, used = torch.jit.trace(model, example), "trace"
            atomic_write(path, lambda temp: torch.jit.save(scripted, str(temp)))
        return {"method": used}

    def load(self, path: Path, device: torch.device) -> LoadedTorchScript:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), map_location=device).eval()
        return LoadedTorchScript(module, device, [f"torch.jit ({device.type})"])


def torchscript(*, method: Literal["auto", "script", "trace"] = "auto") -> TorchScriptExporter:
    """TorchScript file runnable from C++ and Python without the model's source."""
    return TorchScriptExporter(method)


@hookimpl
def register_exporters(register: Register) -> None:
    register("torchscript", torchscript)
