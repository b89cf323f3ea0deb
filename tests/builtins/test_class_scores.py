"""The metrics' precision, recall and F1 are computed from class counts instead of by scikit-learn
(its input checks cost more than a small model's epoch): every value must still be scikit-learn's,
to the last bit, so a history column or metrics.json reads the same as before."""

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from pipeline_core_plugins.class_scores import precision_recall_f1


def _cases():
    rng = np.random.default_rng(35)
    yield np.array([1]), np.array([1])  # one row
    yield np.array([0, 0, 0]), np.array([1, 1, 1])  # every prediction wrong, a class never true
    yield np.array([0, 1, 2, 2]), np.array([0, 0, 0, 0])  # classes never predicted
    yield np.array([3, 3, 5]), np.array([3, 7, 5])  # labels with gaps, one only predicted
    for _ in range(120):
        classes, rows = int(rng.integers(2, 8)), int(rng.integers(1, 400))
        true = rng.integers(0, classes, rows)
        predicted = np.where(rng.random(rows) < rng.random(), true, rng.integers(0, classes, rows))
        if rng.random() < 0.15:
            predicted[:] = rng.integers(0, classes)  # a collapsed model: one class for every row
        yield true, predicted


@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
def test_scores_are_scikit_learns_to_the_last_bit(average):
    compared = 0
    for true, predicted in _cases():
        expected = precision_recall_fscore_support(true, predicted, average=average, zero_division=0)[:3]
        assert precision_recall_f1(true, predicted, average) == expected, (average, true, predicted)
        compared += 1
    assert compared == 124
