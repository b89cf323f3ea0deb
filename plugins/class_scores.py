"""Precision, recall and F1 of class predictions, computed from three class counts exactly as
scikit-learn's ``precision_recall_fscore_support`` computes them (``zero_division=0``; the labels
present in either array; macro, micro or weighted averages).

Why not call scikit-learn: its functions check their inputs at length, about 8 ms per call on this
project's machine, 13 times a make_moons epoch, and a run with a validation split scores it every
epoch. The arithmetic below is scikit-learn's, step for step (the same float64 divisions, its
``np.nanmean`` and ``np.average``), so the values are the same to the last bit;
``tests/builtins/test_class_scores.py`` holds them to scikit-learn's on thousands of random cases.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Average = Literal["macro", "micro", "weighted"]


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` in float64, 0 where the denominator is 0 (scikit-learn's ``_prf_divide``)."""
    zero = denominator == 0
    safe = np.asarray(denominator, dtype=np.float64).copy()
    safe[zero] = 1
    result = np.asarray(numerator, dtype=np.float64) / safe
    result[zero] = 0.0
    return result


def _average(values: np.ndarray, weights: np.ndarray | None) -> float:
    """scikit-learn's ``_nanaverage``: the mean, or the weighted mean, of the values that are not NaN."""
    missing = np.isnan(values)
    if np.all(missing):
        return float("nan")
    if weights is None:
        return float(np.nanmean(values))
    return float(np.average(values[~missing], weights=np.asarray(weights)[~missing]))


def precision_recall_f1(true: np.ndarray, predicted: np.ndarray, average: Average) -> tuple[float, float, float]:
    """The ``average`` of precision, recall and F1 over the classes in ``true`` or ``predicted``
    (1-D arrays of class indices, at least one row)."""
    labels = np.union1d(true, predicted)
    true_index, predicted_index = np.searchsorted(labels, true), np.searchsorted(labels, predicted)
    tp_sum = np.bincount(true_index[true == predicted], minlength=len(labels))
    pred_sum = np.bincount(predicted_index, minlength=len(labels))
    true_sum = np.bincount(true_index, minlength=len(labels))
    if average == "micro":
        tp_sum, pred_sum, true_sum = (np.reshape(np.sum(counts), (1,)) for counts in (tp_sum, pred_sum, true_sum))
    precision = _divide(tp_sum, pred_sum)
    recall = _divide(tp_sum, true_sum)
    f1 = _divide(2.0 * tp_sum.astype(np.float64), 1.0 * true_sum.astype(np.float64) + pred_sum.astype(np.float64))
    weights = true_sum if average == "weighted" else None
    return _average(precision, weights), _average(recall, weights), _average(f1, weights)
