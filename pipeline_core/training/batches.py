"""The batch loop: one epoch of batches, the hot path.

A split that fits in memory lives on the training device, is permuted once per epoch and sliced into
batches; a DataLoader's per-item fetching and collation would cost more than the small models compute.
A streamed split's batches come from DataLoader workers instead (:mod:`.feeds`). Losses and
predictions stay on the device and are reduced once per epoch, so the loop never waits on a host
sync per step. Across processes each global batch is split among
the ranks, and each rank's loss is weighted by its share, so N processes take the same steps as one.
"""

from __future__ import annotations

import contextlib
import functools
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from pipeline_core.config.train_section import TrainSection
from pipeline_core.data.loaded import Task, class_indices
from pipeline_core.errors import ConfigError
from pipeline_core.run.distributed import Distributed
from pipeline_core.run.signals import StopRequest
from pipeline_core.training.feeds import StreamFeed, TensorFeed
from pipeline_core.training.steps import OptimizerSteps


@dataclass
class EpochOutcome:
    """What an epoch's batches added up to: ``totals`` holds (loss sum, correct predictions, rows,
    batches) over every rank; ``stopped_at`` is the row the epoch continues from when a stop was
    requested part-way."""

    totals: torch.Tensor | None  # None when the values were read without building it (``read``)
    losses: list[torch.Tensor]  # this rank's loss of each batch, to name the step that diverged
    classified: bool  # whether predictions were counted (a classifier that ran at least one batch)
    summed: bool  # the loss sums over rows (reduction "sum") instead of averaging them
    stopped_at: int | None = None
    read: list[float] | None = None  # (loss sum, correct, rows, batches) already on the host

    @property
    def loss(self) -> float:
        loss_sum, _, rows, batches = self._values
        return loss_sum / (batches if self.summed else rows)  # float64 division, as torch's

    @property
    def accuracy(self) -> float:
        _, correct, rows, _ = self._values
        return correct / rows

    @functools.cached_property
    def _values(self) -> list[float]:
        """The totals read once (one host sync)."""
        if self.read is not None:
            return self.read
        assert self.totals is not None
        return self.totals.tolist()

    def first_bad_step(self) -> tuple[str, float]:
        """Where the loss stopped being finite (``step i of n``) and its value there."""
        stacked = torch.stack(self.losses).float()
        bad = (~torch.isfinite(stacked)).nonzero()
        if not len(bad):
            return "a step of another rank", self.loss
        return f"step {int(bad[0, 0]) + 1} of {len(stacked)}", float(stacked[int(bad[0, 0])])


class BatchLoop:
    """Runs the batches of an epoch (or of its remainder, after a resume) through ``forward``."""

    def __init__(
        self,
        forward: Callable[[torch.Tensor], torch.Tensor],
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        feed: TensorFeed | StreamFeed,
        settings: TrainSection,
        task: Task,
        steps: OptimizerSteps,
        distributed: Distributed,
    ) -> None:
        self.forward, self.loss_fn, self.feed, self.settings = forward, loss_fn, feed, settings
        self.classifies = task != "regression"
        self.task, self.steps, self.ranks = task, steps, distributed
        size, end = settings.batch_bounds(len(feed))
        last = end % size or size
        if distributed.enabled and min(size, last) < distributed.world_size:
            raise ConfigError(
                f"train.batch_size {size} leaves a batch of {min(size, last)} row(s) for {distributed.world_size} processes; "
                "every process needs at least one row of each batch (raise batch_size, or set drop_last = true)"
            )

    @property
    def summed(self) -> bool:
        """Whether the loss sums over rows (``reduction = "sum"``) instead of averaging them."""
        return getattr(self.loss_fn, "reduction", "mean") == "sum"

    def run(self, order: torch.Tensor | None, first: int, carried: torch.Tensor, stop: StopRequest, epoch: int = 1) -> EpochOutcome:
        """The batches from row ``first`` of the epoch's ``order`` (``None``: unshuffled); ``carried``
        is what earlier parts of the epoch added up to; ``epoch`` seeds augmentation. Returns early,
        after an optimizer step, when ``stop`` is requested (one process), or at the epoch's end
        (several, which stop together)."""
        ranks, steps, accumulate = self.ranks, self.steps, self.settings.accumulate_batches
        targets = self.feed.targets[order] if order is not None else self.feed.targets
        size, end = self.settings.batch_bounds(len(self.feed))
        if first == 0 and 0 < end <= size and not ranks.enabled:
            return self._whole(order, targets, size, end, epoch, stop, carried)
        starts = range(first, end, size)
        spans = []  # this process's rows of each batch, as positions in the epoch's order
        for start in starts:
            low, high = ranks.bounds(min(size, end - start))
            spans.append((start + low, start + high))
        inputs = self.feed.batches(order, spans, epoch)
        summed = self.summed
        losses: list[torch.Tensor] = []
        weights: list[float] = []
        correct: list[torch.Tensor] = []  # a classifier's correct predictions in each batch (on the device)
        rows = 0  # this rank's rows so far

        def outcome(totals: torch.Tensor, stopped_at: int | None = None) -> EpochOutcome:
            # an epoch resumed after its last step (a stop requested on that step) runs no batch: its
            # counts are all carried, and a classifier's accuracy still comes from them
            classified = bool(correct) or (self.classifies and not losses and bool(totals[2] > 0))
            return EpochOutcome(totals, losses, classified, summed, stopped_at)

        pending = 0
        for start, (low, high), batch_inputs in zip(starts, spans, inputs, strict=True):
            final = pending + 1 == accumulate or start + size >= end
            with self._no_sync(final), steps.autocast():
                outputs = self.forward(batch_inputs)
                loss = self.loss_fn(outputs, targets[low:high])
            # DDP averages gradients over ranks: weight each rank's loss by its share of the global batch
            scale = (ranks.world_size if summed else (high - low) * ranks.world_size / min(size, end - start)) / accumulate
            with self._no_sync(final):
                steps.backward(loss * scale if scale != 1.0 else loss)
            losses.append(loss.detach())
            weights.append(1.0 if summed else float(high - low))
            rows += high - low
            if self.classifies:
                truth = targets[low:high].view(-1).long()
                correct.append((class_indices(outputs.detach(), self.task) == truth).sum())
            pending += 1
            if final:
                steps.step()
                pending = 0
                if stop.requested and not ranks.enabled:
                    return outcome(self._totals(losses, weights, correct, rows, carried), start + size)
        # One reduction (and host sync) per epoch: loss and, for classifiers, accuracy over every rank.
        totals = ranks.sum(self._totals(losses, weights, correct, rows, carried))
        if ranks.enabled and ranks.any(stop.requested, carried.device):  # several processes stop together, at an epoch's end
            stop.signal = stop.signal or signal.SIGTERM
            return outcome(totals if ranks.is_main else torch.zeros_like(totals), end)
        return outcome(totals)

    def _whole(
        self, order: torch.Tensor | None, targets: torch.Tensor, size: int, rows: int, epoch: int, stop: StopRequest, carried: torch.Tensor
    ) -> EpochOutcome:
        """An epoch that is one batch of every row in one process (a full-batch epoch, one optimizer
        step): what the general loop does in that case, step for step, without its per-batch
        bookkeeping (a few percent of a small model's epoch). The loss is scaled only by
        ``accumulate_batches``, as there (one process's whole batch weighs 1), and the values are read
        to the host at once: the same numbers. A stop requested during the step ends the epoch as the
        general loop does (it continues from ``size``)."""
        steps, accumulate = self.steps, self.settings.accumulate_batches
        (inputs,) = self.feed.batches(order, [(0, rows)], epoch)  # to its end: a streamed feed's workers finish the epoch
        with steps.autocast():
            outputs = self.forward(inputs)
            loss = self.loss_fn(outputs, targets)
        steps.backward(loss * (1.0 / accumulate) if accumulate != 1 else loss)  # the general loop's scale, bit for bit
        losses = [loss.detach()]
        correct = [(class_indices(outputs.detach(), self.task) == targets.view(-1).long()).sum()] if self.classifies else []
        steps.step()
        summed = self.summed
        weight = 1.0 if summed else float(rows)
        if stop.requested:
            return EpochOutcome(self._totals(losses, [weight], correct, rows, carried), losses, bool(correct), summed, size)
        return EpochOutcome(None, losses, bool(correct), summed, read=self._read_one(losses[0], weight, correct, rows))

    def _no_sync(self, final: bool) -> Any:
        """DDP's gradient all-reduce is needed only on the micro-batch that ends an accumulation."""
        if final or not hasattr(self.forward, "no_sync"):
            return contextlib.nullcontext()
        return self.forward.no_sync()

    @staticmethod
    def _read_one(loss: torch.Tensor, weight: float, correct: list[torch.Tensor], rows: int) -> list[float]:
        """A whole epoch in one batch of one process (a full-batch epoch), read straight to the host:
        the values :meth:`_totals` adds up, with none of its tensor operations, which cost a small
        model a tenth of its step. The same float64 arithmetic, so the same numbers: a float32 loss
        is exact in float64, ``* weight`` and ``+ 0.0`` (nothing carried) are the operations
        ``_totals`` does, and a count is exact below 2**53."""
        return [loss.item() * weight + 0.0, float(correct[0].item()) if correct else 0.0, float(rows), 1.0]

    def _totals(
        self, losses: list[torch.Tensor], weights: list[float], correct: list[torch.Tensor], rows: int, carried: torch.Tensor
    ) -> torch.Tensor:
        """This rank's (loss sum, correct predictions, rows, batches) so far this epoch, plus ``carried``,
        in as few tensor operations as the values allow: a full-batch epoch is one step, and every
        operation here costs about as much as a small model's layer."""
        if not losses:
            return carried.clone()
        device = carried.device
        if len(losses) == 1:  # the same value as the general sum below: a one-term sum is the term
            loss_sum = losses[0].double() * weights[0]
        else:
            loss_sum = (torch.stack(losses).double() * torch.tensor(weights, dtype=torch.float64, device=device)).sum()
        if not correct:
            right = torch.zeros((), dtype=torch.float64, device=device)
        else:
            right = (correct[0] if len(correct) == 1 else torch.stack(correct).sum()).double()
        counts = torch.tensor([rows, len(losses) if self.ranks.is_main else 0], dtype=torch.float64, device=device)
        return torch.cat((torch.stack((loss_sum, right)), counts)) + carried
