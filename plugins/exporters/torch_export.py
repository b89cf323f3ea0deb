"""torch.export: an ``ExportedProgram`` saved as ``.pt2`` — the format PyTorch is moving to, which
AOTInductor and ExecuTorch build on."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline_core import Register, atomic_write, hookimpl

if TYPE_CHECKING:
    import torch
    from torch import nn

    from pipeline_core import ExportInfo, LoadedTorchModule


@dataclass
class TorchExportExporter:
    strict: bool = False
    filename: str = "model.pt2"

    def export(self, model: nn.Module, example: torch.Tensor, path: Path, info: ExportInfo) -> dict[str, Any]:
        import torch

        from pipeline_core import METADATA_FILE

        dynamic = ({0: torch.export.Dim("batch", min=1)},) if info.dynamic_batch else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.export(model, (example,), dynamic_shapes=dynamic, strict=self.strict)
        extra = {METADATA_FILE: info.metadata_json()}

        def save(temp: Path) -> None:
            buffer = io.BytesIO()
            torch.export.save(program, buffer, extra_files=extra)
            temp.write_bytes(buffer.getvalue())

        atomic_write(path, save)
        return {"strict": self.strict, "dynamic_batch": info.dynamic_batch}

    def load(self, path: Path, device: torch.device) -> LoadedTorchModule:
        import torch

        from pipeline_core import METADATA_FILE, LoadedTorchModule, output_names_from

        extra = {METADATA_FILE: ""}
        program = torch.export.load(str(path), extra_files=extra)
        module = program.module().to(device)
        names = output_names_from(extra[METADATA_FILE])
        return LoadedTorchModule(module, device, names, [f"torch.export ({device.type})"])


def torch_export(*, strict: bool = False) -> TorchExportExporter:
    """An ExportedProgram (.pt2) loadable with ``torch.export.load`` — no model source needed."""
    return TorchExportExporter(strict)


@hookimpl
def register_exporters(register: Register) -> None:
    register("torch_export", torch_export)
