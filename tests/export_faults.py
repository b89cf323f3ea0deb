"""Export bugs the export check must catch, made on purpose from a trained model.

Each fault returns the eager model to compare against and the model that is actually exported; the
exported file is written and loaded back by the real ONNX exporter, exactly as the export stage does.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from pipeline_core import ExportInfo, LoadedModel
from pipeline_core_plugins.exporters.onnx import onnx_exporter


class SingleRowPath(nn.Module):
    """Takes another path for a one-row batch (here it scales its output by 1.001); tracing at batch 2
    freezes the batch-2 path, so the exported file disagrees with eager PyTorch at batch 1."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        outputs = self.model(inputs)
        if inputs.shape[0] != 1:
            return outputs
        return tuple(o * 1.001 for o in outputs) if isinstance(outputs, tuple) else outputs * 1.001


class WithoutPreprocessing(nn.Module):
    """The network alone: the file takes raw inputs but skips the scaling the model was trained behind."""

    def __init__(self, deployable: nn.Module) -> None:
        super().__init__()
        self.deployable = copy.deepcopy(deployable)
        self.deployable.model.preprocess = Cast()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        return self.deployable(inputs)


class Cast(nn.Module):
    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs.to(torch.float32)


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    return [module for module in model.modules() if isinstance(module, nn.Linear)]


def perturbed(deployable: nn.Module, layer: int, which: str = "largest", relative: float = 1e-3) -> nn.Module:
    """A copy with one weight of Linear layer ``layer`` scaled by ``1 + relative``: its largest-magnitude
    weight, or one picked at random (seeded)."""
    twin = copy.deepcopy(deployable)
    weight = linear_layers(twin)[layer].weight
    with torch.no_grad():
        flat = weight.view(-1)
        index = int(flat.abs().argmax()) if which == "largest" else int(torch.randint(len(flat), (1,), generator=torch.Generator().manual_seed(0)))
        flat[index] *= 1 + relative
    return twin


def swapped_classes(deployable: nn.Module, first: int = 3, second: int = 5) -> nn.Module:
    """A copy whose output layer lists two classes in each other's place."""
    twin = copy.deepcopy(deployable)
    last = linear_layers(twin)[-1]
    order = list(range(last.out_features))
    order[first], order[second] = second, first
    with torch.no_grad():
        last.weight.copy_(last.weight[order])
        last.bias.copy_(last.bias[order])
    return twin


def export_onnx(model: nn.Module, example: torch.Tensor, info: ExportInfo, folder: Path, exporter: str = "dynamo") -> LoadedModel:
    """Write ``model`` with the real ONNX exporter and load the file back with onnxruntime."""
    onnx = onnx_exporter(exporter=exporter)  # type: ignore[arg-type]
    path = folder / f"{id(model)}.onnx"
    onnx.export(model.eval(), example, path, info)
    return onnx.load(path, torch.device("cpu"))


#: name → (eager model to compare with, model actually exported, ONNX exporter) from the trained deployable
FAULTS: dict[str, Callable[[nn.Module], tuple[nn.Module, nn.Module, str]]] = {
    "batch-dependent branch": lambda d: (SingleRowPath(d), SingleRowPath(d), "torchscript"),
    "preprocessing left out": lambda d: (d, WithoutPreprocessing(d), "dynamo"),
    "first-layer weight ×1.001 (largest)": lambda d: (d, perturbed(d, 0), "dynamo"),
    "first-layer weight ×1.001 (random)": lambda d: (d, perturbed(d, 0, "random"), "dynamo"),
    "last-layer weight ×1.001 (largest)": lambda d: (d, perturbed(d, -1), "dynamo"),
    "swapped classes 3 and 5": lambda d: (d, swapped_classes(d), "dynamo"),
}
