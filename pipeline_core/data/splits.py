"""Splits of tensors: inputs and targets held whole, the in-memory fast path (:class:`Split`).

A split too large for memory is a :class:`~pipeline_core.data.streaming.StreamedSplit`, which decodes
rows on demand and hands out :class:`Split`\\ s of the rows asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

#: A random, shape-preserving transform of one input (a training augmentation).
Augment = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Split:
    """Inputs and targets of one split, as whole tensors: the in-memory fast path. A split too large
    for memory is a :class:`~pipeline_core.StreamedSplit` instead.

    ``augment``, if given, is applied to each training input as its batch is drawn (never when
    evaluating), with torch's default generator seeded per row, epoch and run seed, so streamed and
    in-memory training draw the same augmentations and a resumed run repeats them exactly."""

    inputs: torch.Tensor
    targets: torch.Tensor
    augment: Augment | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if len(self.inputs) != len(self.targets):
            raise ValueError(f"split has {len(self.inputs)} inputs but {len(self.targets)} targets")

    def __len__(self) -> int:
        return len(self.inputs)

    def to(self, device: torch.device | str) -> Split:
        return Split(self.inputs.to(device), self.targets.to(device), self.augment)

    def head(self, rows: int | None = None) -> Split:
        """The first ``rows`` rows (all of them by default: a tensor split is already in memory).
        A :class:`~pipeline_core.StreamedSplit` answers the same call with a bounded number of rows,
        so code that needs rows as tensors (an example batch, an export check, a plot) calls this."""
        return self if rows is None or rows >= len(self) else Split(self.inputs[:rows], self.targets[:rows], self.augment)

    def select(self, rows: Sequence[int]) -> Split:
        """The given rows, in that order (a plot's chosen examples); a streamed split decodes just these."""
        index = torch.as_tensor(list(rows), dtype=torch.long, device=self.inputs.device)
        return Split(self.inputs[index], self.targets[index.to(self.targets.device)], self.augment)
