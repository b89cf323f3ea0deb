"""The ``[data]`` section: the dataset component and the host's loading keys, which say whether a
dataset's streamed splits are decoded into memory or streamed (:mod:`pipeline_core.data.placement`).

Beside the dataset's own options, the ``[data]`` table takes four keys the host reads:

* ``load``: ``"auto"`` (the default) decodes every :class:`~pipeline_core.StreamedSplit` into memory
  when their decoded size fits ``memory_limit`` and streams them otherwise; ``"memory"`` and
  ``"stream"`` force one path. Tensor splits are in memory already and stay as they are.
* ``memory_limit``: ``"auto"`` (half the memory available when the data is loaded, and half the free
  memory of a CUDA device that holds the data) or a size such as ``"2GiB"`` or ``"512MB"``.
* ``workers``: DataLoader worker processes that decode streamed batches (``"auto"``: one per CPU
  core, at most 8; ``0`` decodes in the training process).
* ``prefetch``: batches each worker decodes ahead.

No dataset option may use these names (``register`` refuses it), so a table is never ambiguous.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pydantic
from pydantic import Field, PlainValidator, ValidationInfo, field_validator

from pipeline_core.components.kinds import LOADING_KEYS
from pipeline_core.components.options import STRICT, Schema, suggest, to_plain
from pipeline_core.config.common import ComponentConfig, Found, check_component, problem, problems, registry_of, stages_in

if TYPE_CHECKING:
    import torch

#: At most this many worker processes with ``workers = "auto"``.
MAX_AUTO_WORKERS = 8
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str) -> int:
    """``"2GiB"`` → 2147483648; ``"512MB"`` → 512000000; ``"1000"`` → 1000 bytes."""
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ValueError("expected 'auto' or a size such as '2GiB', '512MB' or '800KiB'")
    return int(float(match.group(1)) * _UNITS[unit])


def format_size(size: int) -> str:
    """Bytes for a person: ``1.5 GiB``, ``310.2 MiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def available_memory() -> int:
    """Bytes of memory the system can give this process now (MemAvailable on Linux)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def cpu_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class DataLoading(pydantic.BaseModel):
    """``[data] load, memory_limit, workers, prefetch`` (see the module docstring)."""

    model_config = STRICT
    load: Literal["auto", "memory", "stream"] = "auto"
    memory_limit: str | int = "auto"
    workers: Annotated[int, Field(ge=0)] | Literal["auto"] = "auto"
    prefetch: Annotated[int, Field(ge=1)] = 2

    @field_validator("memory_limit")
    @classmethod
    def _size(cls, value: str | int) -> str | int:
        if isinstance(value, int):
            if value < 1:
                raise ValueError("expected a positive number of bytes")
            return value
        if value != "auto":
            parse_size(value)
        return value

    def limit_bytes(self, device: torch.device) -> int:
        """The memory limit in bytes: as set, or half the available memory (host, and a CUDA device)."""
        if isinstance(self.memory_limit, int):
            return self.memory_limit
        if self.memory_limit != "auto":
            return parse_size(self.memory_limit)
        limit = available_memory() // 2
        if device.type == "cuda":
            import torch

            free, _ = torch.cuda.mem_get_info(device)
            limit = min(limit, free // 2)
        return limit

    def worker_count(self) -> int:
        return min(cpu_cores(), MAX_AUTO_WORKERS) if self.workers == "auto" else self.workers


@dataclasses.dataclass(frozen=True)
class DataComponent(ComponentConfig):
    """``[data]``: the dataset component and the host's loading keys."""

    loading: DataLoading = dataclasses.field(default_factory=DataLoading)

    def as_table(self) -> dict[str, Any]:
        return {**super().as_table(), **to_plain(self.loading)}


_LOADING_SCHEMA = Schema(DataLoading)


def dataset_component(missing: str, needed_by: str) -> PlainValidator:
    """Validates ``[data]``: the loading keys against :class:`DataLoading`, the rest against the
    registry and the dataset's options (a misspelled loading key gets its did-you-mean). Absent, it
    is an error saying ``missing`` when the stage ``needed_by`` runs."""

    def check(value: Any, info: ValidationInfo) -> DataComponent | None:
        if isinstance(value, DataComponent):
            return value
        if isinstance(value, ComponentConfig):  # a section built in code
            return DataComponent(value.kind, value.name, value.options)
        registry = registry_of(info)
        if value is None:
            if needed_by in stages_in(info):
                raise problem(missing.format(names=", ".join(registry.names("dataset"))))
            return None
        if not isinstance(value, dict):
            raise problems(check_component("dataset", value, registry)[1], value)
        table = {key: item for key, item in value.items() if key not in LOADING_KEYS}
        loading, loading_problems = _LOADING_SCHEMA.validate_model({key: value[key] for key in LOADING_KEYS if key in value})
        found: Found = [(entry.path, problem(entry.message)) for entry in loading_problems]
        name = table.get("name")
        known = registry.get("dataset", name).options.names if isinstance(name, str) and name in registry.components["dataset"] else None
        if known is not None:
            for key in [key for key in table if key != "name" and key not in known]:
                hint = suggest(key, LOADING_KEYS)
                if hint and not suggest(key, known):
                    found.append(((key,), problem(f"unknown key; {hint} (the host's loading keys: {', '.join(LOADING_KEYS)})")))
                    del table[key]
        config, component_problems = check_component("dataset", table, registry)
        found += component_problems
        if found or config is None or loading is None:
            raise problems(found, value)
        return DataComponent(config.kind, config.name, config.options, loading)  # type: ignore[arg-type]

    return PlainValidator(check)
