"""The project's version, in a module of its own so that any part of the core can state it without
importing the public API (``pipeline_core.__version__``), which imports everything else."""

from __future__ import annotations

import functools
import importlib.metadata

__version__ = "0.1.0"


@functools.cache
def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution`` (``None``: not installed), looked up once per
    process: each lookup scans the installed distributions, and a sweep's every trial records
    versions (its manifest, its model-check key), while what is installed does not change under a
    running process."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
