"""Metrics computed from a model's outputs on a whole split.

Classification metrics compare predicted and true classes (argmax, or logit > 0 for one logit);
precision, recall and F1 are macro averages. Regression metrics compare values. Each metric states
which tasks it applies to and says so when used on the wrong one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pipeline_core import Register, RunFailed, hookimpl

if TYPE_CHECKING:
    import numpy as np

    from pipeline_core import Predictions

Average = Literal["macro", "micro", "weighted"]


def _classes(predictions: Predictions, metric: str) -> tuple[np.ndarray, np.ndarray]:
    if predictions.task == "regression":
        raise RunFailed(f"metric {metric!r} needs a classification task, but this data is regression; use mse, mae or r2")
    return predictions.true_classes().cpu().numpy(), predictions.predicted_classes().cpu().numpy()


def _values(predictions: Predictions, metric: str) -> tuple[np.ndarray, np.ndarray]:
    if predictions.task != "regression":
        raise RunFailed(f"metric {metric!r} needs a regression task, but this data is {predictions.task}; use accuracy or f1")
    return predictions.targets.detach().cpu().numpy(), predictions.outputs.detach().cpu().numpy()


def accuracy(predictions: Predictions) -> float:
    """Fraction of rows whose predicted class is the true class."""
    if predictions.task == "regression":
        raise RunFailed("metric 'accuracy' needs a classification task, but this data is regression; use mse, mae or r2")
    return float((predictions.predicted_classes() == predictions.true_classes()).float().mean())


def loss(predictions: Predictions) -> float:
    """The training loss function evaluated on the split."""
    if predictions.loss_fn is None:
        raise RunFailed("metric 'loss' needs a loss: add a [train.loss] table")
    return float(predictions.loss_fn(predictions.outputs, predictions.targets))


def _scores(predictions: Predictions, metric: str, average: Average) -> tuple[float, float, float]:
    """Precision, recall and F1 as scikit-learn defines them (``zero_division=0``), computed from class
    counts (:mod:`.class_scores` says why); scikit-learn itself for an empty split (its error)."""
    from pipeline_core_plugins.class_scores import precision_recall_f1

    true, predicted = _classes(predictions, metric)
    if not len(true):
        from sklearn.metrics import precision_recall_fscore_support

        return precision_recall_fscore_support(true, predicted, average=average, zero_division=0)[:3]
    return precision_recall_f1(true, predicted, average)


def precision(predictions: Predictions, *, average: Average = "macro") -> float:
    """Precision: of the rows predicted as a class, the fraction that belong to it (averaged over classes)."""
    return _scores(predictions, "precision", average)[0]


def recall(predictions: Predictions, *, average: Average = "macro") -> float:
    """Recall: of the rows of a class, the fraction predicted as it (averaged over classes)."""
    return _scores(predictions, "recall", average)[1]


def f1(predictions: Predictions, *, average: Average = "macro") -> float:
    """F1: the harmonic mean of precision and recall (averaged over classes)."""
    return _scores(predictions, "f1", average)[2]


def confusion_matrix(predictions: Predictions) -> list[list[int]]:
    """Counts of (true class row, predicted class column) over every class of the task."""
    from sklearn.metrics import confusion_matrix as matrix

    true, predicted = _classes(predictions, "confusion_matrix")
    count = predictions.outputs.shape[1] if predictions.task == "multiclass" else 2
    return matrix(true, predicted, labels=list(range(count))).tolist()


def mse(predictions: Predictions) -> float:
    """Mean squared error over every value."""
    import numpy as np

    true, predicted = _values(predictions, "mse")
    return float(np.mean((true - predicted) ** 2))


def mae(predictions: Predictions) -> float:
    """Mean absolute error over every value."""
    import numpy as np

    true, predicted = _values(predictions, "mae")
    return float(np.mean(np.abs(true - predicted)))


def r2(predictions: Predictions) -> float:
    """Coefficient of determination, averaged uniformly over outputs (1 is perfect, 0 predicts the mean)."""
    from sklearn.metrics import r2_score

    true, predicted = _values(predictions, "r2")
    return float(r2_score(true, predicted))


@hookimpl
def register_metrics(register: Register) -> None:
    register("accuracy", accuracy)
    register("loss", loss)
    register("precision", precision)
    register("recall", recall)
    register("f1", f1)
    register("confusion_matrix", confusion_matrix)
    register("mse", mse)
    register("mae", mae)
    register("r2", r2)
