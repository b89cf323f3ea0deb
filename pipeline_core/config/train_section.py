"""``[train]``: how the loop iterates and steps, what it optimizes, how it checkpoints and stops
(``[train.early_stopping]``). The trainer takes the validated sections as they are."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import pydantic
from pydantic import Field

from pipeline_core.components.options import STRICT
from pipeline_core.config.common import MAXIMIZED, ComponentConfig, component, problem, problems

#: the prefix of the history columns scored on the validation split
VALIDATION_PREFIX = "val_"


class EarlyStoppingSection(pydantic.BaseModel):
    """``[train.early_stopping]``: stop when ``monitor`` (a history column) has not improved by more
    than ``min_delta`` for ``patience`` epochs; optionally put the best epoch's weights back."""

    model_config = STRICT
    monitor: str = "val_loss"
    mode: Literal["auto", "min", "max"] = "auto"  # auto: max for accuracy, f1, precision, recall, r2
    patience: Annotated[int, Field(ge=1)] = 10
    min_delta: Annotated[float, Field(ge=0)] = 0.0
    restore_best: bool = True

    @property
    def direction(self) -> Literal["min", "max"]:
        """``mode`` with ``auto`` resolved from the monitored column's name."""
        if self.mode != "auto":
            return self.mode
        return "max" if any(name in self.monitor for name in MAXIMIZED) else "min"

    def improved(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        return value < best - self.min_delta if self.direction == "min" else value > best + self.min_delta


class TrainSection(pydantic.BaseModel):
    """``[train]``: how the loop iterates and steps, what it optimizes, how it checkpoints and stops.
    The trainer takes this section as it is."""

    model_config = STRICT
    epochs: Annotated[int, Field(ge=1)]
    batch_size: Annotated[int, Field(ge=1)] | Literal["full"]
    shuffle: bool = True
    drop_last: bool = False
    accumulate_batches: Annotated[int, Field(ge=1)] = 1
    clip_grad_norm: Annotated[float, Field(gt=0)] | None = None
    precision: Literal["32", "bf16", "fp16"] = "32"
    compile: bool = False
    compile_backend: str = "inductor"
    strategy: Literal["single", "ddp"] = "single"  # ddp: DistributedDataParallel over several processes
    nproc_per_node: Annotated[int, Field(ge=1)] = 1  # processes `pipeline run` starts on this node for ddp
    sync_batchnorm: bool = False  # ddp on CUDA: BatchNorm statistics over the global batch (SyncBatchNorm)
    # a checkpoint every N epochs (0: none by count), and whenever this many seconds passed since the
    # last one; always one at the end. Short runs of fast epochs pay for one checkpoint, long runs lose
    # at most a minute of work.
    checkpoint_every: Annotated[int, Field(ge=0)] = 0
    checkpoint_seconds: Annotated[float, Field(gt=0)] = 60.0
    keep_checkpoints: Annotated[int, Field(ge=1)] = 2
    # without its table, the registered default optimizer, and the loss registered as the default of the data's task
    optimizer: Annotated[ComponentConfig | None, component("optimizer")] = None
    loss: Annotated[ComponentConfig | None, component("loss")] = None
    scheduler: Annotated[ComponentConfig | None, component("scheduler")] = None
    early_stopping: EarlyStoppingSection | None = None
    # epochs between passes over the validation split (the last epoch is always validated): a small
    # model trained full batch can spend as long validating as stepping. Other epochs' history rows
    # have no val_ columns, so nothing may watch one every epoch (early stopping, a plateau scheduler).
    validate_every: Annotated[int, Field(ge=1)] = 1

    @pydantic.model_validator(mode="after")
    def _watched_every_epoch(self) -> TrainSection:
        stopping = self.early_stopping
        if self.validate_every > 1 and stopping is not None and stopping.monitor.startswith(VALIDATION_PREFIX):
            raise problems([(("validate_every",), problem(
                f"early_stopping.monitor is {stopping.monitor!r}, measured every epoch for patience to count epochs; "
                f"validate_every = {self.validate_every} leaves it out of most epochs: set validate_every = 1, "
                "or monitor a training column such as 'train_loss'"
            ))], self)
        return self

    def validates(self, epoch: int) -> bool:
        """Whether ``epoch`` (1-based) is scored on the validation split."""
        return epoch % self.validate_every == 0 or epoch == self.epochs

    def batch_bounds(self, rows: int) -> tuple[int, int]:
        """The batch size for a split of ``rows`` rows (``"full"``: all of them) and the row where the
        last batch ends (``drop_last`` drops a short tail)."""
        size = rows if self.batch_size == "full" else self.batch_size
        return size, rows - rows % size if self.drop_last and rows > size else rows

    def steps_per_epoch(self, rows: int) -> int:
        """Optimizer steps an epoch takes over ``rows`` rows."""
        size, end = self.batch_bounds(rows)
        return math.ceil(math.ceil(end / size) / self.accumulate_batches)
