"""What an answer looks like: the model's outputs as one record per row, the class label and its
probabilities, or the predicted values (:func:`predictions`).

Why its own module: files and the server's ``…/predict`` endpoint write the same records, so a
label means the same wherever it is read.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline_core_deploy.bundle import Bundle

#: the key (JSON) or last column (CSV) naming a row's values outside the training range, when they are flagged
OUT_OF_RANGE = "out_of_range"


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _table(bundle: Bundle, outputs: dict[str, np.ndarray]) -> tuple[list[str], list[str] | None, np.ndarray]:
    """The predictions as columns: value column names, the labels (None for regression), the values."""
    raw = outputs[bundle.metadata["outputs"][0]["name"]]
    if bundle.task == "regression":
        values = raw.reshape(len(raw), -1)
        names = ["prediction"] if values.shape[1] == 1 else [f"prediction_{i}" for i in range(values.shape[1])]
        return names, None, values
    probabilities = outputs.get("probabilities")
    if bundle.task == "binary":
        positive = (probabilities if probabilities is not None else 1 / (1 + np.exp(-raw))).reshape(-1)
        probabilities = np.stack([1 - positive, positive], axis=1)
    elif probabilities is None:
        probabilities = _softmax(raw)
    classes = bundle.classes or [str(i) for i in range(probabilities.shape[1])]
    labels = [classes[i] for i in probabilities.argmax(axis=1).tolist()]
    return [f"probability_{c}" for c in classes], labels, probabilities


def predictions(bundle: Bundle, outputs: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """One record per row: the class label and its probabilities, or the predicted values."""
    names, labels, values = _table(bundle, outputs)
    rows = values.tolist()
    if labels is None:
        return [dict(zip(names, row, strict=True)) for row in rows]
    return [{"label": label, **dict(zip(names, row, strict=True))} for label, row in zip(labels, rows, strict=True)]
