"""The training loop: the hot path.

Every supported dataset fits in memory, so batches are slices of a tensor that lives on the training
device and is shuffled once per epoch; a DataLoader's per-batch collation would cost more than the
tiny models compute. Losses and predictions are kept on the device and read once per epoch, so the
loop never waits on a host sync per step. Small models on the CPU are dominated by per-operation
overhead, not arithmetic, so the thread count is chosen on purpose (:func:`choose_threads`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from pipeline_core.data import Split, Task
from pipeline_core.errors import RunFailed

#: Below this much work per step (parameters × rows per batch) a CPU model trains fastest on one
#: thread: per-operation overhead dominates and a second thread only adds synchronization. Measured
#: on the project's 2-core machine: the iris MLP at batch 4 (46k) ran 15% faster on one thread than
#: on two; a 64-128-64-10 MLP at batch 32 (550k) ran 35% faster on two.
SMALL_STEP_WORK = 150_000
#: torch's own choice at start-up (one per physical core, or OMP_NUM_THREADS), before any run changed it
DEFAULT_THREADS = torch.get_num_threads()


def choose_threads(model: nn.Module, device: torch.device, requested: int | str, rows_per_step: int) -> int:
    """Set and return torch's intra-op thread count: ``requested``, or 1 for a small CPU step."""
    if isinstance(requested, int):
        threads = requested
    elif device.type == "cpu" and sum(p.numel() for p in model.parameters()) * rows_per_step < SMALL_STEP_WORK:
        threads = 1
    else:
        threads = DEFAULT_THREADS
    torch.set_num_threads(threads)
    return threads


@dataclass(frozen=True)
class LoopSettings:
    """How to iterate: epochs, batch size (``None`` = the whole split), shuffling."""

    epochs: int
    batch_size: int | None
    shuffle: bool = True
    drop_last: bool = False


def _predicted(outputs: torch.Tensor, task: Task) -> torch.Tensor | None:
    if task == "multiclass":
        return outputs.argmax(dim=1)
    if task == "binary":
        return (outputs > 0).view(-1)
    return None


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    train: Split,
    settings: LoopSettings,
    task: Task,
    generator: torch.Generator,
    on_epoch_end: Callable[[int, dict[str, float]], None],
    validate: Callable[[nn.Module], dict[str, float]] | None = None,
) -> None:
    """Train ``model`` in place; after each epoch, ``on_epoch_end(epoch, row)`` gets the history row.

    ``train`` must already be on the model's device. Raises :class:`RunFailed` when the loss stops
    being finite, naming the epoch.
    """
    inputs, targets = train.inputs, train.targets
    count = len(train)
    size = settings.batch_size or count
    end = count - count % size if settings.drop_last and count > size else count
    sizes = torch.tensor([min(size, end - start) for start in range(0, end, size)], device=inputs.device)
    truth = targets.view(-1).long() if task != "regression" else None
    for epoch in range(1, settings.epochs + 1):
        started = time.perf_counter()
        model.train()
        if settings.shuffle:
            order = torch.randperm(count, generator=generator).to(inputs.device)
            epoch_inputs, epoch_targets = inputs[order], targets[order]
        else:
            order, epoch_inputs, epoch_targets = None, inputs, targets
        losses: list[torch.Tensor] = []
        predictions: list[torch.Tensor] = []
        for start in range(0, end, size):
            batch_inputs = epoch_inputs[start : start + size]
            batch_targets = epoch_targets[start : start + size]
            outputs = model(batch_inputs)
            loss = loss_fn(outputs, batch_targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
            predicted = _predicted(outputs.detach(), task)
            if predicted is not None:
                predictions.append(predicted)
        # One host sync per epoch: the loss (mean over samples) and, for classifiers, the accuracy.
        train_loss = float((torch.stack(losses) * sizes).sum() / end)
        if not math.isfinite(train_loss):
            raise RunFailed(f"training diverged: the training loss is {train_loss} in epoch {epoch}")
        row: dict[str, float] = {"epoch": epoch, "train_loss": train_loss}
        if predictions and truth is not None:
            seen = truth[order[:end]] if order is not None else truth[:end]
            row["train_accuracy"] = float((torch.cat(predictions).long() == seen).float().mean())
        if validate is not None:
            row.update({f"val_{name}": value for name, value in validate(model).items()})
        row["lr"] = float(optimizer.param_groups[0]["lr"])
        row["seconds"] = time.perf_counter() - started
        on_epoch_end(epoch, row)
