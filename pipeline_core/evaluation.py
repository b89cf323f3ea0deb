"""Predictions on a whole split, and the configured metrics computed from them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from pipeline_core.config import ComponentConfig
from pipeline_core.data import Predictions, Split, Task
from pipeline_core.errors import RunFailed
from pipeline_core.registry import Registry

#: A metric is a number, or a matrix such as a confusion matrix.
MetricValue = float | list[list[int]] | list[list[float]]

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
) -> dict[str, MetricValue]:
    """``{metric name: value}`` for ``model`` on ``split``."""
    predictions = Predictions(predict(model, split.inputs), split.targets, task, loss_fn)
    values: dict[str, MetricValue] = {}
    for metric in metrics:
        fn: Any = registry.get("metric", metric.name).factory
        value = fn(predictions, **metric.options)
        if isinstance(value, list):
            values[metric.name] = value
        elif isinstance(value, (int, float)) or (isinstance(value, torch.Tensor) and value.numel() == 1):
            values[metric.name] = float(value)
        else:
            raise RunFailed(f"metric {metric.name!r} returned {type(value).__name__}; a metric returns a number or a matrix (list of lists)")
    return values


def scalars(values: dict[str, MetricValue]) -> dict[str, float]:
    """The single-number metrics (what goes into history rows and summary tables)."""
    return {name: value for name, value in values.items() if isinstance(value, float)}
