"""What a run produced, typed: metric values and what training actually did.

Torch-free, so the command line's summaries and past-run listings read results without importing
torch, and every place that shows metrics agrees on which of them are single numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: A metric is a number, or a matrix such as a confusion matrix (a list of lists).
MetricValue = float | list[list[int]] | list[list[float]]


def scalars(values: Mapping[str, Any]) -> dict[str, float]:
    """The single-number metrics of ``values``: what goes into history rows, summary tables, trackers."""
    return {name: value for name, value in values.items() if isinstance(value, (int, float)) and not isinstance(value, bool)}


def scalars_by_split(metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """:func:`scalars` of each split of a run's metrics (``{"test": {"accuracy": ...}, ...}``)."""
    return {split: scalars(values) for split, values in metrics.items()}


@dataclass(frozen=True)
class TrainingSummary:
    """What training actually did, as opposed to what was configured: the model card and the ONNX
    metadata state these (early stopping and resumed runs make them differ from ``train.epochs``)."""

    epochs_configured: int
    epochs_run: int
    steps: int | None  # None: unknown (a run recorded before training.json existed)
    stopped_early: bool = False
    best_epoch: int = 0  # with early stopping and restore_best: the epoch whose weights were kept
    monitor: str = ""  # what early stopping watched
    resumed: bool = False  # continued from a checkpoint at least once

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingSummary:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})
