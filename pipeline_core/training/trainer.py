"""The trainer: epochs of the batch loop with validation, the learning-rate schedule, early stopping
and checkpoints around them, resumable to the bit.

:meth:`Trainer.state_dict` captures everything that influences what happens next (weights, optimizer,
scheduler, scaler, every RNG, the position inside an epoch), and a run continued from it ends with the
same weights as one that was never stopped. Each concern has its own module: the batch loop
(:mod:`.batches`), optimizer steps (:mod:`.steps`), early stopping (:mod:`.early_stopping`), when to
checkpoint (:mod:`.checkpointing`) and data-parallel wrapping (:mod:`.parallel`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from pipeline_core.config.train_section import TrainSection
from pipeline_core.data.loaded import Split, Task
from pipeline_core.data.streaming import StreamedSplit
from pipeline_core.errors import Interrupted, RunFailed
from pipeline_core.run.checkpoint import capture_rng, restore_rng
from pipeline_core.run.distributed import SINGLE, Distributed
from pipeline_core.run.results import TrainingSummary
from pipeline_core.run.signals import StopRequest
from pipeline_core.training.batches import BatchLoop, EpochOutcome
from pipeline_core.training.checkpointing import CheckpointPolicy
from pipeline_core.training.early_stopping import EarlyStopping
from pipeline_core.training.feeds import feed_for
from pipeline_core.training.parallel import training_forward
from pipeline_core.training.schedule import LRSchedule
from pipeline_core.training.steps import OptimizerSteps

Row = dict[str, float]


class Trainer:
    """Fits a model in place as ``settings`` (the validated ``[train]`` section) says. Construct,
    optionally :meth:`resume`, then :meth:`fit`.

    ``seed`` seeds the shuffling; ``validate(model)`` returns the metrics of a validation split (they
    become ``val_<name>`` columns); ``on_epoch_end(epoch, row)`` sees each history row; ``checkpoint(payload)``
    writes a checkpoint and returns its name (``None``: no checkpoints)."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        train: Split | StreamedSplit,
        settings: TrainSection,
        task: Task,
        seed: int,
        *,
        device: torch.device | None = None,
        schedule: LRSchedule | None = None,
        validate: Callable[[nn.Module], dict[str, float]] | None = None,
        on_epoch_end: Callable[[int, Row], None] | None = None,
        checkpoint: Callable[[dict[str, Any]], str] | None = None,
        distributed: Distributed = SINGLE,
    ) -> None:
        if device is None:
            device = train.inputs.device if isinstance(train, Split) else torch.device("cpu")
        self.feed = feed_for(train, device, seed)
        self.device, self.settings, self.distributed = device, settings, distributed
        self.model = model
        self.modules = list(model.modules())  # to see cheaply whether a hook left a part in eval mode
        self.generator = torch.Generator().manual_seed(seed)
        self.steps = OptimizerSteps(model, optimizer, schedule, settings, device)
        self.batches = BatchLoop(training_forward(model, settings, device, distributed), loss_fn, self.feed, settings, task, self.steps, distributed)
        self.early_stopping = EarlyStopping(settings.early_stopping)
        self.checkpoints = CheckpointPolicy(checkpoint, settings.checkpoint_every, settings.checkpoint_seconds)
        self.validate, self.on_epoch_end = validate, on_epoch_end
        self.stop = StopRequest()
        self.epoch = 0  # epochs completed
        self.history: list[Row] = []
        self.nothing_carried = torch.zeros(4, dtype=torch.float64, device=device)  # read, never written
        self.partial: dict[str, Any] | None = None  # an epoch stopped part-way: its order, position, totals
        self.resumed = False

    # -- checkpoint state --------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly from here (tensors and plain values only)."""
        steps = self.steps.state_dict()
        return {
            "epoch": self.epoch,
            "step": self.steps.count,
            "model": self.model.state_dict(),
            "optimizer": steps["optimizer"],
            "scheduler": steps["scheduler"],
            "scaler": steps["scaler"],
            "rng": capture_rng(self.generator),
            "history": self.history,
            "early_stopping": self.early_stopping.state_dict(),
            "partial": self.partial,
        }

    def load_state_dict(self, payload: dict[str, Any]) -> None:
        device = self.device
        self.model.load_state_dict(payload["model"])
        self.steps.load_state_dict(payload)
        restore_rng(payload["rng"], self.generator)
        self.early_stopping.load_state_dict(payload["early_stopping"])
        self.epoch, self.steps.count, self.history = payload["epoch"], payload["step"], list(payload["history"])
        partial = payload["partial"]
        if partial is not None:
            partial = {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in partial.items()}
        self.partial = partial

    def resume(self, payload: dict[str, Any] | None, checkpoint: str) -> None:
        """Continue from a checkpoint's ``payload`` (``None``: start afresh); ``checkpoint`` names it in messages."""
        self.checkpoints.last = checkpoint
        if payload is not None:
            self.load_state_dict(payload)
            self.resumed = True

    # -- the loop ----------------------------------------------------------------------------

    def fit(self, stop: StopRequest | None = None) -> TrainingSummary:
        """Train until the last epoch or an early stop; raises :class:`RunFailed` on a non-finite loss
        and :class:`Interrupted` (after checkpointing) when ``stop`` was requested by a signal."""
        self.stop = stop or self.stop
        try:
            while self.epoch < self.settings.epochs and not self.early_stopping.stopped:
                self._epoch()
        finally:
            self.feed.close()
        self.early_stopping.restore(self.model)
        rule = self.settings.early_stopping
        return TrainingSummary(
            self.settings.epochs, self.epoch, self.steps.count, self.early_stopping.stopped, self.early_stopping.best_epoch,
            rule.monitor if rule else "", self.resumed,
        )

    def _epoch(self) -> None:
        epoch = self.epoch + 1
        started = time.perf_counter()
        order, first, carried = self._start()
        if not all(module.training for module in self.modules):  # train() walks every module: only when needed
            self.model.train()
        outcome = self.batches.run(order, first, carried, self.stop, epoch)
        if outcome.stopped_at is not None:
            self._interrupt(epoch, order, outcome)
        row = self._row(epoch, outcome, started)
        self.steps.end_epoch(row)
        self.epoch = epoch
        self.history.append(row)
        self.early_stopping.update(row, self.model)
        if self.on_epoch_end is not None:
            self.on_epoch_end(epoch, row)
        if self.checkpoints.due(epoch, final=epoch == self.settings.epochs or self.early_stopping.stopped):
            self.checkpoints.save(self.state_dict)

    def _start(self) -> tuple[torch.Tensor | None, int, torch.Tensor]:
        """The epoch's order, the row it starts from and what earlier parts of it added up to (an
        epoch a signal stopped part-way continues; only rank 0 carries its totals into the reduction)."""
        device = self.device
        carried = self.nothing_carried
        if self.partial is None:
            order = torch.randperm(len(self.feed), generator=self.generator).to(device) if self.settings.shuffle else None
            return order, 0, carried
        partial, self.partial = self.partial, None
        if self.distributed.is_main:
            carried = partial["totals"].to(device=device, dtype=torch.float64)
        return partial["order"], partial["next_start"], carried

    def _row(self, epoch: int, outcome: EpochOutcome, started: float) -> Row:
        """The epoch's history row: losses, accuracy, validation metrics, learning rate, seconds."""
        train_loss = outcome.loss
        if not math.isfinite(train_loss):
            where, value = outcome.first_bad_step()
            raise RunFailed(
                f"training diverged: the loss became {value} at epoch {epoch}, {where}; "
                f"last good checkpoint: {self.checkpoints.last}"
            )
        row: Row = {"epoch": epoch, "train_loss": train_loss}
        if outcome.classified:
            row["train_accuracy"] = outcome.accuracy
        if self.validate is not None and self.settings.validates(epoch):
            row.update({f"val_{name}": value for name, value in self.validate(self.model).items()})
        row["lr"] = self.steps.lr
        row["seconds"] = time.perf_counter() - started
        return row

    def _interrupt(self, epoch: int, order: torch.Tensor | None, outcome: EpochOutcome) -> None:
        self.partial = {
            "epoch": epoch,
            "order": order if order is not None else torch.arange(len(self.feed), device=self.device),
            "next_start": outcome.stopped_at,
            "totals": outcome.totals.cpu(),  # loss sum, correct, rows, batches of the part already run (all ranks)
        }
        self.checkpoints.save(self.state_dict)
        raise Interrupted(
            f"stopped by {self.stop.name} in epoch {epoch} after step {self.steps.count}; checkpoint: "
            f"{self.checkpoints.last}. Continue with --resume.",
            self.stop.signal or 2,
        )
