"""The training loop: the hot path, and the place where runs die.

Every supported dataset fits in memory, so the split lives on the training device, is permuted once
per epoch and sliced into batches; a DataLoader's per-item fetching and collation would cost more than
the small models compute. Losses and predictions stay on the device and are read once per epoch, so
the loop never waits on a host sync per step. Small models on the CPU are dominated by per-operation
overhead, not arithmetic, so the thread count is chosen on purpose (:func:`choose_threads`).

The loop is also resumable to the bit: :meth:`Trainer.state_dict` captures everything that influences
what happens next (weights, optimizer, scheduler, scaler, every RNG, the position inside an epoch),
and a run continued from it ends with the same weights as one that was never stopped.
"""

from __future__ import annotations

import contextlib
import copy
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from pipeline_core.checkpoint import capture_rng, restore_rng
from pipeline_core.data import Split, Task
from pipeline_core.distributed import SINGLE, Distributed
from pipeline_core.errors import ConfigError, Interrupted, RunFailed
from pipeline_core.signals import StopRequest

#: Below this much work per step (parameters × rows per batch) a CPU model trains fastest on one
#: thread: per-operation overhead dominates and a second thread only adds synchronization. Measured
#: on the project's 2-core machine: the iris MLP at batch 4 (46k) ran 15% faster on one thread than
#: on two; a 64-128-64-10 MLP at batch 32 (550k) ran 35% faster on two.
SMALL_STEP_WORK = 150_000
#: torch's own choice at start-up (one per physical core, or OMP_NUM_THREADS), before any run changed it
DEFAULT_THREADS = torch.get_num_threads()

Precision = Literal["32", "bf16", "fp16"]


def choose_threads(model: nn.Module, device: torch.device, requested: int | str, rows_per_step: int, processes: int = 1) -> int:
    """Set and return torch's intra-op thread count: ``requested``, or 1 for a small CPU step, or the
    cores shared out among the ``processes`` training on this machine."""
    if isinstance(requested, int):
        threads = requested
    elif device.type == "cpu" and sum(p.numel() for p in model.parameters()) * rows_per_step < SMALL_STEP_WORK:
        threads = 1
    else:
        threads = max(1, DEFAULT_THREADS // processes)
    torch.set_num_threads(threads)
    return threads


@dataclass(frozen=True)
class LoopSettings:
    """How to iterate and step: epochs, batch size (``None`` = the whole split), shuffling,
    gradient accumulation and clipping, and the autocast precision."""

    epochs: int
    batch_size: int | None
    shuffle: bool = True
    drop_last: bool = False
    accumulate: int = 1
    clip_grad_norm: float | None = None
    precision: Precision = "32"

    def batch_bounds(self, count: int) -> tuple[int, int]:
        """The batch size and the row where the last batch ends (``drop_last`` drops a short tail)."""
        size = self.batch_size or count
        return size, count - count % size if self.drop_last and count > size else count

    def steps_per_epoch(self, count: int) -> int:
        size, end = self.batch_bounds(count)
        return math.ceil(math.ceil(end / size) / self.accumulate)


@dataclass(frozen=True)
class EarlyStopping:
    """Stop when ``monitor`` (a history column such as ``val_loss``) has not improved by more than
    ``min_delta`` for ``patience`` epochs; optionally put the best epoch's weights back."""

    monitor: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    patience: int = 10
    min_delta: float = 0.0
    restore_best: bool = True

    def improved(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        return value < best - self.min_delta if self.mode == "min" else value > best + self.min_delta


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


@dataclass
class TrainState:
    """The loop's own progress, saved in every checkpoint."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    history: list[dict[str, float]] = field(default_factory=list)
    best_value: float | None = None
    best_epoch: int = 0
    best_weights: dict[str, torch.Tensor] | None = None
    bad_epochs: int = 0
    stopped_early: bool = False
    partial: dict[str, Any] | None = None  # an epoch stopped part-way: its order, position, losses


def _predicted(outputs: torch.Tensor, task: Task) -> torch.Tensor | None:
    if task == "multiclass":
        return outputs.argmax(dim=1)
    if task == "binary":
        return (outputs > 0).view(-1)
    return None


class Trainer:
    """Fits a model in place. Construct, optionally :meth:`load_state_dict`, then :meth:`fit`."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        train: Split,
        settings: LoopSettings,
        task: Task,
        generator: torch.Generator,
        *,
        forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
        schedule: LRSchedule | None = None,
        validate: Callable[[nn.Module], dict[str, float]] | None = None,
        early_stopping: EarlyStopping | None = None,
        on_epoch_end: Callable[[int, dict[str, float]], None] = lambda epoch, row: None,
        checkpoint: Callable[[dict[str, Any]], str] | None = None,
        checkpoint_every: int = 0,
        checkpoint_seconds: float = 60.0,
        stop: StopRequest | None = None,
        distributed: Distributed = SINGLE,
    ) -> None:
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.forward = forward or model
        self.train, self.settings, self.task, self.generator = train, settings, task, generator
        self.schedule, self.validate, self.early_stopping = schedule, validate, early_stopping
        self.on_epoch_end, self.checkpoint = on_epoch_end, checkpoint
        self.checkpoint_every, self.checkpoint_seconds = checkpoint_every, checkpoint_seconds
        self.checkpointed_at = time.monotonic()
        self.stop = stop or StopRequest()
        self.distributed = distributed
        self.state = TrainState()
        size, end = settings.batch_bounds(len(train))
        last = end % size or size
        if distributed.enabled and min(size, last) < distributed.world_size:
            raise ConfigError(
                f"train.batch_size {size} leaves a batch of {min(size, last)} row(s) for {distributed.world_size} processes; "
                "every process needs at least one row of each batch (raise batch_size, or set drop_last = true)"
            )
        self.last_checkpoint = "none yet"
        device = train.inputs.device
        self.scaler = torch.amp.GradScaler(device.type) if settings.precision == "fp16" else None
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(settings.precision)
        self.autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext

    # -- checkpoint state --------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly from here (tensors and plain values only)."""
        state = self.state
        return {
            "epoch": state.epoch,
            "step": state.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.scheduler.state_dict() if self.schedule else None,
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "rng": capture_rng(self.generator),
            "history": state.history,
            "early_stopping": {
                "best_value": state.best_value, "best_epoch": state.best_epoch, "best_weights": state.best_weights,
                "bad_epochs": state.bad_epochs, "stopped_early": state.stopped_early,
            },
            "partial": state.partial,
        }

    def load_state_dict(self, payload: dict[str, Any]) -> None:
        device = self.train.inputs.device
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        if self.schedule and payload["scheduler"] is not None:
            self.schedule.scheduler.load_state_dict(payload["scheduler"])
        if self.scaler and payload["scaler"] is not None:
            self.scaler.load_state_dict(payload["scaler"])
        restore_rng(payload["rng"], self.generator)
        stopping = payload["early_stopping"]
        partial = payload["partial"]
        if partial is not None:
            partial = {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in partial.items()}
        self.state = TrainState(
            payload["epoch"], payload["step"], list(payload["history"]), stopping["best_value"], stopping["best_epoch"],
            stopping["best_weights"], stopping["bad_epochs"], stopping["stopped_early"], partial,
        )

    def _save(self) -> None:
        if self.checkpoint is not None:
            self.last_checkpoint = self.checkpoint(self.state_dict())
            self.checkpointed_at = time.monotonic()

    # -- the loop ----------------------------------------------------------------------------

    def fit(self) -> TrainState:
        """Train until the last epoch or an early stop; raises :class:`RunFailed` on a non-finite loss
        and :class:`Interrupted` (after checkpointing) when a stop was requested by a signal."""
        while self.state.epoch < self.settings.epochs and not self.state.stopped_early:
            self._epoch()
        if self.state.stopped_early and self.early_stopping and self.early_stopping.restore_best and self.state.best_weights:
            self.model.load_state_dict(self.state.best_weights)
        return self.state

    def _epoch(self) -> None:
        settings, state, ranks = self.settings, self.state, self.distributed
        epoch = state.epoch + 1
        started = time.perf_counter()
        inputs, targets = self.train.inputs, self.train.targets
        device = inputs.device
        count = len(self.train)
        size, end = settings.batch_bounds(count)

        # What earlier parts of this epoch contributed (an epoch a signal stopped part-way): loss
        # sum, correct predictions, rows and batches. Only rank 0 carries them into the reduction.
        carried = torch.zeros(4, dtype=torch.float64, device=device)
        if state.partial is not None:
            order, first = state.partial["order"], state.partial["next_start"]
            if ranks.is_main:
                carried = state.partial["totals"].to(device=device, dtype=torch.float64)
            state.partial = None
        else:
            order = torch.randperm(count, generator=self.generator).to(device) if settings.shuffle else None
            first = 0
        epoch_inputs, epoch_targets = (inputs[order], targets[order]) if order is not None else (inputs, targets)
        summed = self.sum_reduction

        losses: list[torch.Tensor] = []
        weights: list[float] = []
        predictions: list[torch.Tensor] = []
        rows: list[tuple[int, int]] = []  # this rank's rows of each batch, as positions in the epoch order
        self.model.train()
        accumulate, pending = settings.accumulate, 0
        for start in range(first, end, size):
            batch = min(size, end - start)
            low, high = ranks.bounds(batch)
            batch_inputs = epoch_inputs[start + low : start + high]
            batch_targets = epoch_targets[start + low : start + high]
            final = pending + 1 == accumulate or start + size >= end
            with self._no_sync(final), self.autocast():
                outputs = self.forward(batch_inputs)
                loss = self.loss_fn(outputs, batch_targets)
            # DDP averages gradients over ranks: weight each rank's loss by its share of the global batch
            scale = (ranks.world_size if summed else (high - low) * ranks.world_size / batch) / accumulate
            scaled = loss * scale if scale != 1.0 else loss
            with self._no_sync(final):
                (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            losses.append(loss.detach())
            weights.append(1.0 if summed else float(high - low))
            rows.append((start + low, start + high))
            predicted = _predicted(outputs.detach(), self.task)
            if predicted is not None:
                predictions.append(predicted)
            pending += 1
            if final:
                self._step()
                pending = 0
                if self.stop.requested and not ranks.enabled:
                    self._interrupt(epoch, order, start + size, self._totals(losses, weights, predictions, rows, order, carried))
        # One reduction (and host sync) per epoch: loss and, for classifiers, accuracy over every rank.
        totals = ranks.sum(self._totals(losses, weights, predictions, rows, order, carried))
        if ranks.enabled and ranks.any(self.stop.requested, device):  # several processes stop together, at an epoch's end
            self.stop.signal = self.stop.signal or signal.SIGTERM
            self._interrupt(epoch, order, end, totals if ranks.is_main else torch.zeros_like(totals))
        train_loss = float(totals[0] / (totals[3] if summed else totals[2]))
        if not math.isfinite(train_loss):
            stacked = torch.stack(losses).float()
            bad = (~torch.isfinite(stacked)).nonzero()
            where = f"step {int(bad[0, 0]) + 1} of {len(stacked)}" if len(bad) else "a step of another rank"
            value = float(stacked[int(bad[0, 0])]) if len(bad) else train_loss
            raise RunFailed(
                f"training diverged: the loss became {value} at epoch {epoch}, {where}; "
                f"last good checkpoint: {self.last_checkpoint}"
            )
        row: dict[str, float] = {"epoch": epoch, "train_loss": train_loss}
        if predictions:
            row["train_accuracy"] = float(totals[1] / totals[2])
        if self.validate is not None:
            row.update({f"val_{name}": value for name, value in self.validate(self.model).items()})
        row["lr"] = float(self.optimizer.param_groups[0]["lr"])
        row["seconds"] = time.perf_counter() - started
        if self.schedule and self.schedule.interval == "epoch":
            if self.schedule.monitor:
                self.schedule.scheduler.step(self._monitored(row, self.schedule.monitor, "scheduler.monitor"))
            else:
                self.schedule.scheduler.step()
        state.epoch = epoch
        state.history.append(row)
        self._early_stopping(row)
        self.on_epoch_end(epoch, row)
        due = time.monotonic() - self.checkpointed_at >= self.checkpoint_seconds
        if due or epoch == settings.epochs or state.stopped_early or (self.checkpoint_every and epoch % self.checkpoint_every == 0):
            self._save()

    @property
    def sum_reduction(self) -> bool:
        """Whether the loss sums over rows (``reduction = "sum"``) instead of averaging them."""
        return getattr(self.loss_fn, "reduction", "mean") == "sum"

    def _no_sync(self, final: bool) -> Any:
        """DDP's gradient all-reduce is needed only on the micro-batch that ends an accumulation."""
        if final or not hasattr(self.forward, "no_sync"):
            return contextlib.nullcontext()
        return self.forward.no_sync()

    def _totals(
        self,
        losses: list[torch.Tensor],
        weights: list[float],
        predictions: list[torch.Tensor],
        rows: list[tuple[int, int]],
        order: torch.Tensor | None,
        carried: torch.Tensor,
    ) -> torch.Tensor:
        """This rank's (loss sum, correct predictions, rows, batches) so far this epoch, plus ``carried``."""
        device = carried.device
        totals = carried.clone()
        if losses:
            totals[0] += (torch.stack(losses).double() * torch.tensor(weights, dtype=torch.float64, device=device)).sum()
            totals[2] += sum(high - low for low, high in rows)
            totals[3] += len(losses) if self.distributed.is_main else 0
        if predictions:
            positions = torch.cat([torch.arange(low, high, device=device) for low, high in rows])
            truth = self.train.targets.view(-1).long()
            seen = truth[order[positions]] if order is not None else truth[positions]
            totals[1] += (torch.cat(predictions).long() == seen).sum()
        return totals

    def _step(self) -> None:
        if self.settings.clip_grad_norm is not None:
            if self.scaler:
                self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.clip_grad_norm)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.step += 1
        if self.schedule and self.schedule.interval == "step":
            self.schedule.scheduler.step()

    def _interrupt(self, epoch: int, order: torch.Tensor | None, next_start: int, totals: torch.Tensor) -> None:
        device = self.train.inputs.device
        self.state.partial = {
            "epoch": epoch,
            "order": order if order is not None else torch.arange(len(self.train), device=device),
            "next_start": next_start,
            "totals": totals.cpu(),  # loss sum, correct, rows, batches of the part already run (all ranks)
        }
        self._save()
        raise Interrupted(
            f"stopped by {self.stop.name} in epoch {epoch} after step {self.state.step}; checkpoint: "
            f"{self.last_checkpoint}. Continue with --resume.",
            self.stop.signal or 2,
        )

    @staticmethod
    def _monitored(row: dict[str, float], name: str, option: str) -> float:
        if name not in row:
            available = ", ".join(key for key in row if key not in ("epoch", "seconds"))
            raise RunFailed(f"{option} is {name!r}, which is not in the epoch's history (available: {available})")
        return row[name]

    def _early_stopping(self, row: dict[str, float]) -> None:
        rule, state = self.early_stopping, self.state
        if rule is None:
            return
        value = self._monitored(row, rule.monitor, "early_stopping.monitor")
        if rule.improved(value, state.best_value):
            state.best_value, state.best_epoch, state.bad_epochs = value, int(row["epoch"]), 0
            if rule.restore_best:
                state.best_weights = copy.deepcopy(self.model.state_dict())
        else:
            state.bad_epochs += 1
            state.stopped_early = state.bad_epochs >= rule.patience
