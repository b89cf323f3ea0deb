"""Metrics computed from a model's outputs on a whole split."""

from __future__ import annotations

from pipeline_core import Predictions, Register, RunFailed, hookimpl


def accuracy(predictions: Predictions) -> float:
    """Fraction of rows whose predicted class is the true class."""
    if predictions.task == "regression":
        raise RunFailed("metric 'accuracy' needs a classification task, but this data is regression")
    return float((predictions.predicted_classes() == predictions.true_classes()).float().mean())


def loss(predictions: Predictions) -> float:
    """The training loss function evaluated on the split."""
    if predictions.loss_fn is None:
        raise RunFailed("metric 'loss' needs a loss: add a [train.loss] table")
    return float(predictions.loss_fn(predictions.outputs, predictions.targets))


@hookimpl
def register_metrics(register: Register) -> None:
    register("accuracy", accuracy)
    register("loss", loss)
