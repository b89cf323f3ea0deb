"""What a ``scheduler`` component is given and returns, and the history columns it may watch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pipeline_core.errors import RunFailed


@dataclass(frozen=True)
class LRSchedule:
    """What a ``scheduler`` component returns: a torch LR scheduler, whether it steps after every
    optimizer step or every epoch, and for plateau schedulers the history column it watches."""

    scheduler: Any
    interval: Literal["step", "epoch"] = "epoch"
    monitor: str | None = None


@dataclass(frozen=True)
class TrainingPlan:
    """What a scheduler needs to know about the run ahead: epochs and optimizer steps per epoch."""

    epochs: int
    steps_per_epoch: int

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


def monitored(row: dict[str, float], name: str, option: str) -> float:
    """The value of history column ``name`` in an epoch's ``row``; ``option`` (the setting that
    named it) and the columns there are go into the error when the row has no such column."""
    if name not in row:
        available = ", ".join(key for key in row if key not in ("epoch", "seconds"))
        raise RunFailed(f"{option} is {name!r}, which is not in the epoch's history (available: {available})")
    return row[name]
