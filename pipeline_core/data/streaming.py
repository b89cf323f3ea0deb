"""Splits decoded item by item, for data bigger than memory: :class:`StreamedSplit`.

A dataset whose rows are decoded on demand (image files, records in a file too large to read whole)
returns its splits as :class:`StreamedSplit`: a map-style ``items`` dataset (``items[i]`` is row
``i``'s input tensor) and every row's target (labels are known without decoding). The host then
decides, from the decoded size and ``[data] load`` / ``memory_limit``, whether to decode each split
once into a tensor (:meth:`StreamedSplit.load`, the in-memory fast path) or to stream it: batches
are decoded in DataLoader worker processes while the model trains, pinned on CUDA and prefetched.

Random augmentation (``augment``, training only) draws from torch's default generator, which the
host seeds for every item from (run seed, epoch, row): the same row gets the same augmentation
whichever process decodes it, streamed or in memory, and a resumed run repeats it exactly.
"""

from __future__ import annotations

import ctypes
import functools
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from pipeline_core.data.splits import Augment, Split
from pipeline_core.data.worker_deaths import dead_worker, shut_down, watch, worker_death
from pipeline_core.errors import ConfigError, PipelineError, RunFailed

#: Decoded bytes per batch when a streamed split is read in order (evaluation, prediction, loading):
#: big enough to amortize the per-batch costs, small enough to stay far below any memory limit.
SEQUENTIAL_BATCH_BYTES = 16 * 2**20
#: Rows per batch when a streamed split is read in order, at most (as :data:`~pipeline_core.model.evaluation.OUTPUTS_CHUNK`).
SEQUENTIAL_BATCH_ROWS = 1024
#: Decoded bytes :meth:`StreamedSplit.head` takes by default (export checks, plots), at most.
HEAD_BYTES = 64 * 2**20

_MASK63 = 2**63 - 1


#: glibc's ``mallopt`` parameter for the size from which blocks are memory-mapped
_M_MMAP_THRESHOLD = -3


@functools.cache
def bound_heap_growth() -> bool:
    """Pin glibc's mmap threshold at its initial 128 KiB (once per process; elsewhere a no-op).

    glibc raises the threshold to the size of each large block freed, after which batch-sized blocks
    come from the heap, which batches arriving from worker processes fragment: one streamed epoch of a
    106 MB image folder grew the training process by 120–460 MB (measured; it varies with timing).
    With the threshold pinned, every batch-sized block goes back to the system when freed, and the
    same epoch grew it by under 10 MB. Returns whether the setting took effect."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, 128 * 1024))
    except (OSError, AttributeError):  # not glibc
        return False


def item_seed(seed: int, epoch: int, row: int) -> int:
    """The seed of row ``row``'s augmentation in ``epoch`` of a run seeded ``seed`` (splitmix64's
    finalizer over the three, so neighbouring rows and epochs get unrelated streams)."""
    x = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + row * 0x94D049BB133111EB + 1) & (2**64 - 1)
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
    return (x ^ (x >> 31)) & _MASK63


def augment_rows(inputs: torch.Tensor, rows: Sequence[int], augment: Augment, seeds: Callable[[int], int]) -> torch.Tensor:
    """``augment`` applied to each of ``inputs`` with torch's default generator seeded by
    ``seeds(row)``; the generator's state is put back afterwards, so dropout and initialization draw
    exactly what they would have without augmentation."""
    generator = torch.default_generator
    state = generator.get_state()
    try:
        out = []
        for item, row in zip(inputs, rows, strict=True):
            generator.manual_seed(seeds(int(row)))
            out.append(augment(item))
        return torch.stack(out)
    finally:
        generator.set_state(state)


@dataclass(frozen=True)
class LoaderSettings:
    """How a streamed split is read: DataLoader worker processes (0: in this process), batches each
    worker prefetches, pinned host memory (for an asynchronous copy to CUDA), and how many decoded
    bytes :meth:`StreamedSplit.head` may take by default."""

    workers: int = 0
    prefetch: int = 2
    pin_memory: bool = False
    head_bytes: int = HEAD_BYTES


@dataclass(frozen=True)
class _Failure:
    """A row that could not be decoded, sent back from a worker as data (not as an exception, whose
    re-raise would carry the worker's traceback into a message meant for a person)."""

    message: str
    bad_input: bool  # the dataset raised ConfigError: bad data, exit code 2

    def error(self) -> PipelineError:
        return ConfigError(self.message) if self.bad_input else RunFailed(self.message)


Request = tuple[list[int], list[int] | None]  # rows of one batch, and their augmentation seeds (None: no augmentation)


class _Reader(Dataset):
    """Runs in each worker: decodes the rows of a request into one batch tensor."""

    def __init__(self, items: Any, shape: tuple[int, ...], dtype: torch.dtype, augment: Augment | None, name: str) -> None:
        self.items, self.shape, self.dtype, self.augment, self.name = items, shape, dtype, augment, name

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, request: Request) -> torch.Tensor | _Failure:  # type: ignore[override]
        rows, seeds = request
        batch = torch.empty((len(rows), *self.shape), dtype=self.dtype)
        generator = torch.default_generator
        state = generator.get_state() if seeds is not None else None
        try:
            for position, row in enumerate(rows):
                try:
                    item = self.items[row]
                    if seeds is not None and self.augment is not None:
                        generator.manual_seed(seeds[position])
                        item = self.augment(item)
                except PipelineError as error:
                    return _Failure(f"split {self.name!r}, row {row}: {error}", isinstance(error, ConfigError))
                except Exception as error:  # a bug in the dataset's items: not the user's data
                    return _Failure(f"split {self.name!r}, row {row}: {type(error).__name__}: {error}", False)
                if tuple(item.shape) != self.shape:
                    return _Failure(
                        f"split {self.name!r}, row {row}: decoded to shape {tuple(item.shape)}, but the split's rows are {self.shape}", True
                    )
                if item.dtype != self.dtype:
                    return _Failure(f"split {self.name!r}, row {row}: decoded to {item.dtype}, but the split declares {self.dtype}", False)
                batch[position] = item
        finally:
            if state is not None:
                generator.set_state(state)
        return batch


class _Plan(Sampler):
    """The requests of the next pass, set before each pass (a persistent loader keeps its sampler)."""

    def __init__(self) -> None:
        self.requests: Iterable[Request] = ()

    def __iter__(self) -> Iterator[Request]:
        return iter(self.requests)


def _identity(batch: Any) -> Any:
    return batch


class StreamedSplit:
    """A split whose inputs are decoded item by item instead of held as one tensor.

    ``items`` is a map-style dataset: ``len(items)`` rows, ``items[i]`` the input tensor of row ``i``
    (``item_shape``, ``item_dtype``). It is sent to DataLoader worker processes, so it must pickle
    and should be cheap to copy (open files lazily, in the process that reads them). A row that
    cannot be decoded should raise :class:`~pipeline_core.ConfigError` naming its file: the run stops
    with exit code 2 and that message. ``targets`` holds every row's target (as :class:`Split`'s).
    ``augment`` is a random, shape-preserving transform of one input, applied to training batches
    only (see the module docstring for its seeding).
    """

    def __init__(
        self,
        items: Any,
        targets: torch.Tensor,
        item_shape: Sequence[int],
        item_dtype: torch.dtype = torch.uint8,
        *,
        augment: Augment | None = None,
        name: str = "",
        loader: LoaderSettings | None = None,
    ) -> None:
        if len(items) != len(targets):
            raise ValueError(f"streamed split has {len(items)} items but {len(targets)} targets")
        self.items, self.targets, self.item_shape, self.item_dtype = items, targets, tuple(item_shape), item_dtype
        self.augment, self.name, self.loader = augment, name, loader or LoaderSettings()
        self._plan = _Plan()
        self._persistent: DataLoader | None = None

    def __len__(self) -> int:
        return len(self.targets)

    def __repr__(self) -> str:
        return f"StreamedSplit({self.name or 'unnamed'!r}, rows={len(self)}, item_shape={self.item_shape})"

    @property
    def item_bytes(self) -> int:
        """Bytes of one decoded input."""
        return math.prod(self.item_shape) * self.item_dtype.itemsize

    @property
    def decoded_bytes(self) -> int:
        """Bytes the whole split takes decoded: what loading it into memory costs."""
        return len(self) * self.item_bytes

    def configured(self, loader: LoaderSettings, name: str | None = None) -> StreamedSplit:
        """A copy read with ``loader``'s workers, prefetching and pinning (and called ``name`` in messages)."""
        return StreamedSplit(
            self.items, self.targets, self.item_shape, self.item_dtype, augment=self.augment, name=self.name if name is None else name,
            loader=loader,
        )

    def to(self, device: torch.device | str) -> StreamedSplit:
        """A streamed split stays on the host; its batches move to the device as they are used."""
        return self

    @property
    def sequential_rows(self) -> int:
        """Rows per batch when the split is read in order (bounded by :data:`SEQUENTIAL_BATCH_BYTES`)."""
        return max(1, min(SEQUENTIAL_BATCH_ROWS, SEQUENTIAL_BATCH_BYTES // max(self.item_bytes, 1)))

    def batches(self, rows: int | None = None, stop: int | None = None, persistent: bool = True) -> Iterator[torch.Tensor]:
        """The inputs in order, ``rows`` per batch (default :attr:`sequential_rows`), up to row
        ``stop``, unaugmented, decoded by the configured workers (see :meth:`stream` for ``persistent``)."""
        size, end = rows or self.sequential_rows, len(self) if stop is None else min(stop, len(self))
        requests = ((list(range(start, min(start + size, end))), None) for start in range(0, end, size))
        return self.stream(requests, persistent=persistent)

    def stream(self, requests: Iterable[Request], persistent: bool = True) -> Iterator[torch.Tensor]:
        """Batches for ``requests`` (each the rows of one batch and their augmentation seeds, or
        ``None`` for none), in order. ``persistent`` keeps the worker processes for the next pass
        (training epochs, validation each epoch); otherwise they end with this pass."""
        if self.loader.workers == 0 or not persistent:
            loader = self._loader(requests, persistent=False)
        else:
            if self._persistent is None:
                self._persistent = self._loader(self._plan, persistent=True)
            self._plan.requests = requests
            loader = self._persistent
        iterator = iter(loader)
        watch(iterator, self.name)
        try:
            for batch in iterator:
                if isinstance(batch, _Failure):
                    raise batch.error()
                yield batch
        except (RuntimeError, ConnectionError, EOFError) as error:
            # A dead worker shows as torch's "DataLoader worker ... is killed" or, when the main process
            # was fetching a batch the worker had shared through a file descriptor, as a broken connection.
            death = worker_death(error) or worker_death(dead_worker(iterator))
            if death is None:
                raise
            shut_down(iterator)  # now, so that torch's SIGCHLD handler cannot raise again while this unwinds
            raise death from None

    def _loader(self, requests: Iterable[Request], persistent: bool) -> DataLoader:
        workers = self.loader.workers
        if workers:
            bound_heap_growth()
        reader = _Reader(self.items, self.item_shape, self.item_dtype, self.augment, self.name)
        sampler = requests if isinstance(requests, _Plan) else _Plan()
        if not isinstance(requests, _Plan):
            sampler.requests = requests
        return DataLoader(
            reader, batch_size=None, sampler=sampler, collate_fn=_identity, num_workers=workers,
            prefetch_factor=self.loader.prefetch if workers else None, pin_memory=self.loader.pin_memory,
            persistent_workers=persistent and workers > 0,
            generator=torch.Generator(),  # the loader's seed draws never touch the global generator
        )

    def close(self) -> None:
        """End the persistent worker processes now (they also end with the split)."""
        loader, self._persistent = self._persistent, None
        iterator = getattr(loader, "_iterator", None) if loader is not None else None
        if iterator is not None:
            shut_down(iterator)

    def head(self, rows: int | None = None) -> Split:
        """The first ``rows`` rows decoded into a :class:`Split` (unaugmented); by default as many as
        fit in the loader's ``head_bytes`` (at least one): for export checks and plots, which must
        not load a large split whole."""
        if rows is None:
            rows = max(1, self.loader.head_bytes // max(self.item_bytes, 1))
        rows = min(rows, len(self))
        parts = list(self.batches(stop=rows, persistent=False))
        inputs = torch.cat(parts) if parts else torch.empty((0, *self.item_shape), dtype=self.item_dtype)
        return Split(inputs, self.targets[:rows])

    def select(self, rows: Sequence[int]) -> Split:
        """The given rows decoded, in that order, as a :class:`Split` (unaugmented): a plot's examples."""
        chosen = [int(row) for row in rows]
        parts = list(self.stream([(chosen, None)], persistent=False)) if chosen else []
        inputs = parts[0] if parts else torch.empty((0, *self.item_shape), dtype=self.item_dtype)
        return Split(inputs, self.targets[torch.as_tensor(chosen, dtype=torch.long)])

    def load(self) -> Split:
        """The whole split decoded into one tensor (the in-memory fast path), keeping ``augment``."""
        inputs = torch.empty((len(self), *self.item_shape), dtype=self.item_dtype)
        filled = 0
        for batch in self.batches(persistent=False):
            inputs[filled : filled + len(batch)] = batch
            filled += len(batch)
        return Split(inputs, self.targets, augment=self.augment)
