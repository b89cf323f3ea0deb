"""Metrics against values worked out by hand."""

from __future__ import annotations

import pytest
import torch

from pipeline_core import Predictions, RunFailed
from pipeline_core_plugins.metrics import accuracy, confusion_matrix, f1, mae, mse, precision, r2, recall

# true classes 0 0 1 1 2 2, predicted 0 1 1 1 2 0
LOGITS = torch.eye(3)[[0, 1, 1, 1, 2, 0]]
MULTI = Predictions(LOGITS, torch.tensor([0, 0, 1, 1, 2, 2]), "multiclass")
BINARY = Predictions(torch.tensor([[2.0], [-1.0], [0.5], [-3.0]]), torch.tensor([[1.0], [1.0], [0.0], [0.0]]), "binary")
REGRESSION = Predictions(torch.tensor([[1.0], [2.0], [4.0]]), torch.tensor([[1.0], [3.0], [2.0]]), "regression")


def test_classification_metrics():
    assert accuracy(MULTI) == pytest.approx(4 / 6)
    # per class precision 1/2, 2/3, 1/1; recall 1/2, 2/2, 1/2
    assert precision(MULTI) == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert recall(MULTI) == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    per_class_f1 = [2 * p * r / (p + r) for p, r in [(1 / 2, 1 / 2), (2 / 3, 1), (1, 1 / 2)]]
    assert f1(MULTI) == pytest.approx(sum(per_class_f1) / 3)
    assert confusion_matrix(MULTI) == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert precision(MULTI, average="micro") == pytest.approx(4 / 6)


def test_binary_uses_the_sign_of_the_logit():
    assert accuracy(BINARY) == pytest.approx(2 / 4)  # predicted 1 0 1 0, true 1 1 0 0
    assert confusion_matrix(BINARY) == [[1, 1], [1, 1]]


def test_regression_metrics():
    assert mse(REGRESSION) == pytest.approx((0 + 1 + 4) / 3)
    assert mae(REGRESSION) == pytest.approx((0 + 1 + 2) / 3)
    mean = 2.0
    assert r2(REGRESSION) == pytest.approx(1 - 5 / ((1 - mean) ** 2 + (3 - mean) ** 2 + (2 - mean) ** 2))


def test_a_metric_on_the_wrong_task_says_what_to_use():
    with pytest.raises(RunFailed, match="metric 'f1' needs a classification task, but this data is regression; use mse"):
        f1(REGRESSION)
    with pytest.raises(RunFailed, match="metric 'r2' needs a regression task, but this data is multiclass"):
        r2(MULTI)
