"""Decoding a dataset's streamed splits into memory, or keeping them streamed, as ``[data]`` says.

The ``[data]`` keys that decide it (``load``, ``memory_limit``, ``workers``, ``prefetch``) are
:class:`~pipeline_core.config.data_section.DataLoading`; the ``load_data`` stage calls
:func:`place_splits` on the data the dataset loaded, with them.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from pipeline_core.config.data_section import DataLoading, format_size

if TYPE_CHECKING:
    import torch

    from pipeline_core.data.loaded import LoadedData


def place_splits(data: LoadedData, loading: DataLoading, device: torch.device) -> LoadedData:
    """``data`` with every :class:`~pipeline_core.StreamedSplit` decoded into memory or kept
    streamed, as ``loading`` says (module docstring); streamed splits get the configured workers,
    prefetching and (on CUDA) pinned memory. ``data.loading`` records what was decided."""
    from pipeline_core.data.streaming import HEAD_BYTES, LoaderSettings, StreamedSplit

    streamed = {name: split for name, split in data.splits.items() if isinstance(split, StreamedSplit)}
    if not streamed:
        return data
    limit = loading.limit_bytes(device)
    decoded = sum(split.decoded_bytes for split in streamed.values())
    in_memory = loading.load == "memory" or (loading.load == "auto" and decoded <= limit)
    settings = LoaderSettings(loading.worker_count(), loading.prefetch, device.type == "cuda", max(1, min(HEAD_BYTES, limit // 4)))
    splits = dict(data.splits)
    for name, split in streamed.items():
        configured = split.configured(settings, name)
        splits[name] = configured.load() if in_memory else configured
    why = {"memory": "load = 'memory'", "stream": "load = 'stream'"}.get(
        loading.load, f"{format_size(decoded)} decoded {'fits in' if in_memory else 'exceeds'} the memory limit {format_size(limit)}"
    )
    record = {
        "load": "memory" if in_memory else "stream", "reason": why, "decoded_bytes": decoded, "memory_limit_bytes": limit,
        "workers": settings.workers, "prefetch": settings.prefetch, "pin_memory": settings.pin_memory,
        "splits": {name: {"rows": len(split), "item_shape": list(split.item_shape), "decoded_bytes": split.decoded_bytes}
                   for name, split in streamed.items()},
    }
    return dataclasses.replace(data, splits=splits, loading=record)
