"""A model summary like torchsummary/torchinfo: layers, output shapes, parameter counts, size.

Built on torchinfo, which runs one forward pass on example rows and records every module."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LayerRow:
    name: str
    depth: int
    output_shape: list[int]
    parameters: int


@dataclass(frozen=True)
class ModelSummary:
    text: str
    layers: list[LayerRow]
    total_parameters: int
    trainable_parameters: int
    size_bytes: int  # parameters and buffers


def summarize(model: nn.Module, example: torch.Tensor) -> ModelSummary:
    """Summarize ``model`` on ``example`` (a small batch of raw inputs), in eval mode."""
    import torchinfo

    was_training = model.training
    try:
        statistics = torchinfo.summary(
            model, input_data=example, verbose=0, mode="eval", device=example.device,
            col_names=("output_size", "num_params"), row_settings=("var_names",), depth=4,
        )
    finally:
        model.train(was_training)
    layers = [
        LayerRow(f"{row.var_name} ({row.class_name})", row.depth, list(row.output_size), int(row.num_params))
        for row in statistics.summary_list
    ]
    size = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    return ModelSummary(str(statistics), layers, int(statistics.total_params), int(statistics.trainable_params), size)
