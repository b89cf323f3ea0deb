"""Where the batch loop's inputs come from: a tensor split on the device (the fast path) or a
streamed split decoded by worker processes.

Both take the epoch's order and the spans of it that make this process's batches, and yield the
input batches on the training device; targets are indexed on the device from the split's targets
in both, so the loop itself does not know which feed it has. Augmentation (training only) is seeded
per row and epoch from the run's seed (:func:`~pipeline_core.data.streaming.item_seed`), so the two feeds
give the same batches for the same order.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import torch

from pipeline_core.data.loaded import Split
from pipeline_core.data.streaming import StreamedSplit, augment_rows, item_seed

Spans = list[tuple[int, int]]  # (first, last + 1) positions in the epoch's order, one per batch


class TensorFeed:
    """The in-memory hot path: the split lives on the device, is permuted once per epoch and sliced."""

    def __init__(self, split: Split, seed: int) -> None:
        self.inputs, self.targets, self.augment, self.seed = split.inputs, split.targets, split.augment, seed
        self.device = split.inputs.device

    def __len__(self) -> int:
        return len(self.targets)

    def batches(self, order: torch.Tensor | None, spans: Spans, epoch: int) -> Iterator[torch.Tensor]:
        inputs = self.inputs[order] if order is not None else self.inputs
        if self.augment is None:
            return (inputs[low:high] for low, high in spans)
        rows = (order if order is not None else torch.arange(len(self))).tolist()
        seeds = partial(item_seed, self.seed, epoch)
        augment = self.augment
        return (augment_rows(inputs[low:high], rows[low:high], augment, seeds) for low, high in spans)

    def close(self) -> None:
        """Nothing to release: the tensors go with the split."""


class StreamFeed:
    """Batches decoded by the split's DataLoader workers (pinned and copied asynchronously on CUDA)."""

    def __init__(self, split: StreamedSplit, device: torch.device, seed: int) -> None:
        self.split, self.device, self.seed = split, device, seed
        self.targets = split.targets.to(device)
        self.non_blocking = split.loader.pin_memory and device.type == "cuda"

    def __len__(self) -> int:
        return len(self.split)

    def batches(self, order: torch.Tensor | None, spans: Spans, epoch: int) -> Iterator[torch.Tensor]:
        rows = order.cpu() if order is not None else torch.arange(len(self))
        augmented = self.split.augment is not None

        def requests() -> Iterator[tuple[list[int], list[int] | None]]:
            for low, high in spans:
                batch = rows[low:high].tolist()
                yield batch, [item_seed(self.seed, epoch, row) for row in batch] if augmented else None

        for inputs in self.split.stream(requests()):
            yield inputs.to(self.device, non_blocking=self.non_blocking)

    def close(self) -> None:
        """End the split's worker processes."""
        self.split.close()


def feed_for(split: Split | StreamedSplit, device: torch.device, seed: int) -> TensorFeed | StreamFeed:
    """The feed for ``split``: a tensor split is moved to ``device`` whole; a streamed one streams."""
    if isinstance(split, StreamedSplit):
        return StreamFeed(split, device, seed)
    return TensorFeed(split.to(device), seed)
