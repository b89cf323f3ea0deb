"""Predictions on a whole split, and the configured metrics computed from them."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from pipeline_core.config import ComponentConfig
from pipeline_core.data import Predictions, Split, Task
from pipeline_core.registry import Registry

#: Rows per forward pass when predicting a whole split (bounds memory on large splits).
PREDICT_CHUNK = 8192


@torch.no_grad()
def predict(model: nn.Module, inputs: torch.Tensor, chunk: int = PREDICT_CHUNK) -> torch.Tensor:
    """Eval-mode outputs for all ``inputs`` (the model's train/eval mode is restored afterwards)."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(inputs[start : start + chunk]) for start in range(0, len(inputs), chunk)])
    finally:
        model.train(was_training)


def compute_metrics(
    registry: Registry,
    metrics: list[ComponentConfig],
    model: nn.Module,
    split: Split,
    task: Task,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
) -> dict[str, float]:
    """``{metric name: value}`` for ``model`` on ``split``."""
    predictions = Predictions(predict(model, split.inputs), split.targets, task, loss_fn)
    values: dict[str, float] = {}
    for metric in metrics:
        fn: Any = registry.get("metric", metric.name).factory
        values[metric.name] = float(fn(predictions, **metric.options))
    return values
