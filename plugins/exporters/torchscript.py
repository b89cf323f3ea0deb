"""TorchScript export: ``torch.jit.script`` (keeps control flow), falling back to tracing.

TorchScript is deprecated upstream (``torch_export`` is where users are heading) but still what many
C++ deployments load; its deprecation warnings are silenced here because the user chose the format.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pipeline_core import Register, atomic_write, hookimpl

if TYPE_CHECKING:
    import torch
    from torch import nn

    from pipeline_core import ExportInfo, LoadedTorchModule


@dataclass
class TorchScriptExporter:
    method: Literal["auto", "script", "trace"] = "auto"
    filename: str = "model.torchscript.pt"

    def export(self, model: nn.Module, example: torch.Tensor, path: Path, info: ExportInfo) -> dict[str, Any]:
        import torch

        from pipeline_core import METADATA_FILE

        details: dict[str, Any] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            scripted = None
            if self.method in ("auto", "script"):
                try:
                    scripted = torch.jit.script(model)
                    details["method"] = "script"
                except Exception as error:
                    if self.method == "script":
                        raise
                    details["script_error"] = f"{type(error).__name__}: {error}"[:300]
            if scripted is None:
                scripted = torch.jit.trace(model, example)
                details["method"] = "trace"
            extra = {METADATA_FILE: info.metadata_json()}
            buffer = io.BytesIO()  # saved in memory: torch's file writer aborts the process on a full disk
            torch.jit.save(scripted, buffer, _extra_files=extra)
            atomic_write(path, lambda temp: temp.write_bytes(buffer.getvalue()))
        return details

    def load(self, path: Path, device: torch.device) -> LoadedTorchModule:
        import torch

        from pipeline_core import METADATA_FILE, LoadedTorchModule, output_names_from

        extra = {METADATA_FILE: ""}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), map_location=device, _extra_files=extra).eval()
        names = output_names_from(extra[METADATA_FILE])
        return LoadedTorchModule(module, device, names, [f"torch.jit ({device.type})"])


def torchscript(*, method: Literal["auto", "script", "trace"] = "auto") -> TorchScriptExporter:
    """TorchScript file runnable from C++ and Python without the model's source."""
    return TorchScriptExporter(method)


@hookimpl
def register_exporters(register: Register) -> None:
    register("torchscript", torchscript)
