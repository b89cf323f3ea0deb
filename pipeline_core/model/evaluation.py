"""A model's outputs on a whole split, the configured metrics computed from them, and the registered
plots, which the evaluate stage draws.

A tensor split runs through the model in chunks of :data:`OUTPUTS_CHUNK` rows; a streamed split batch
by batch as its workers decode it, so evaluating it never holds more than a batch of inputs."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pipeline_core._moved import renamed_names
from pipeline_core.components.registry import Registry
from pipeline_core.config.common import ComponentConfig
from pipeline_core.data.loaded import Predictions, Split, Task
from pipeline_core.data.streaming import StreamedSplit
from pipeline_core.errors import RunFailed
from pipeline_core.run.results import MetricValue

if TYPE_CHECKING:
    from pipeline_core.run.context import RunContext

#: Rows per forward pass when running a model over a whole split (bounds memory on large splits).
OUTPUTS_CHUNK = 8192
#: The metrics of a pipeline whose ``[evaluate]`` names none, by task.
DEFAULT_METRICS: dict[str, tuple[str, ...]] = {
    "multiclass": ("loss", "accuracy", "f1", "confusion_matrix"),
    "binary": ("loss", "accuracy", "f1", "confusion_matrix"),
    "regression": ("loss", "mse", "mae", "r2"),
}

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def model_outputs(model: nn.Module, inputs: torch.Tensor | Split | StreamedSplit, chunk: int = OUTPUTS_CHUNK) -> torch.Tensor:
    """Eval-mode outputs for all ``inputs`` (the model's train/eval mode is restored afterwards):
    a tensor, or a split's inputs (a streamed split's batches go to the model's device as they come)."""
    was_training = model.training
    model.eval()
    try:
        if isinstance(inputs, StreamedSplit):
            device = next((p.device for p in model.parameters()), torch.device("cpu"))
            outputs = [model(batch.to(device, non_blocking=inputs.loader.pin_memory)) for batch in inputs.batches()]
            return torch.cat(outputs) if outputs else torch.empty(0)
        if isinstance(inputs, Split):
            inputs = inputs.inputs
        return torch.cat([model(inputs[start : start + chunk]) for start in range(0, len(inputs), chunk)])
    finally:
        model.train(was_training)


@dataclass(frozen=True)
class Evaluator:
    """The metrics a run computes, ready to score a model on any split: those ``[evaluate]`` names
    (or the task's defaults), with the run's loss for the ``loss`` metric."""

    registry: Registry
    metrics: tuple[ComponentConfig, ...]
    task: Task
    loss_fn: Loss | None = None

    @classmethod
    def for_run(cls, run: RunContext, task: Task) -> Evaluator:
        """The run's metrics for data of ``task``, with a fresh instance of its ``[train.loss]`` (on its device)."""
        chosen = run.config.evaluate.metrics or [ComponentConfig("metric", name) for name in DEFAULT_METRICS[task]]
        loss = run.create(run.loss_config(task)) if run.config.train is not None else None
        loss_fn = loss.to(run.device) if isinstance(loss, nn.Module) else loss
        return cls(run.host.registry, tuple(chosen), task, loss_fn)

    def __call__(self, model: nn.Module, split: Split | StreamedSplit, skip: Collection[str] = ()) -> dict[str, MetricValue]:
        """``{metric name: value}`` for ``model`` on ``split`` (unaugmented; a streamed split batch by
        batch), without the metrics named in ``skip``."""
        outputs = model_outputs(model, split)
        return self.score(outputs, split.targets.to(outputs.device), skip)

    def score(self, outputs: torch.Tensor, targets: torch.Tensor, skip: Collection[str] = ()) -> dict[str, MetricValue]:
        """``{metric name: value}`` for a model's raw ``outputs`` on a split with ``targets`` (without
        the metrics named in ``skip``): how the same metrics are computed for a model that is not a
        PyTorch module (an ONNX variant)."""
        predictions = Predictions(outputs, targets, self.task, self.loss_fn)
        values: dict[str, MetricValue] = {}
        for metric in self.metrics:
            if metric.name in skip:
                continue
            fn: Any = self.registry.get("metric", metric.name).factory
            value = fn(predictions, **metric.options)
            if isinstance(value, list):
                values[metric.name] = value
            elif isinstance(value, (int, float)) or (isinstance(value, torch.Tensor) and value.numel() == 1):
                values[metric.name] = float(value)
            else:
                raise RunFailed(f"metric {metric.name!r} returned {type(value).__name__}; a metric returns a number or a matrix (list of lists)")
        return values


def draw_plots(run: RunContext) -> None:
    """Draw every registered plot (``register_plots``) of the run, in the order the plugins registered
    them: each is called with the run and adds what applies to it to ``run.plots``. The evaluate
    stage calls this once its metrics are written; a stage of your own that evaluates may too."""
    for plot in run.host.registry.of_kind("plot"):
        plot.factory(run)


#: until the next release, ``predict`` (now :func:`model_outputs`) and ``PREDICT_CHUNK``, with a DeprecationWarning
__getattr__ = renamed_names(__name__)
