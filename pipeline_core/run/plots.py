"""The run's plots: ``plots/<name>.png`` files and ``plots/index.json``, which records each plot with
its title and the data it was drawn from (so a test, or a person, can check what a picture shows).

Plot plugins add to it through ``run.plots``; the report reads it back from disk, so a run that is
exported again (``pipeline export``) still reports the plots its training drew.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline_core.run.artifacts import atomic_write, write_json

FOLDER = "plots"
INDEX = f"{FOLDER}/index.json"


@dataclass(frozen=True)
class Plot:
    """One plot of a run: its file (relative to the run folder), title and the data it shows."""

    file: str
    title: str
    data: dict[str, Any]


class PlotIndex:
    """``run.plots``: add a plot, or read back the ones a run folder records."""

    def __init__(self, run_dir: Path, writes: bool = True) -> None:
        self.run_dir, self.writes = run_dir, writes  # writes: false on ranks other than 0
        self._added: dict[str, Plot] = {}

    def add(self, name: str, write: Callable[[Path], None], title: str, data: dict[str, Any]) -> Path:
        """Have ``write`` fill ``plots/<name>.png`` (atomically), and record it with ``title`` and
        ``data`` in ``plots/index.json``."""
        plot = Plot(f"{FOLDER}/{name}.png", title, data)
        path = self.run_dir / plot.file
        if self.writes:
            atomic_write(path, write)
            self._added[name] = plot
            write_json(self.run_dir / INDEX, {key: dataclasses.asdict(entry) for key, entry in self._added.items()})
        return path

    def recorded(self) -> dict[str, Plot]:
        """The plots ``plots/index.json`` records whose files exist, by name."""
        index = self.run_dir / INDEX
        entries = json.loads(index.read_text(encoding="utf-8")) if index.is_file() else {}
        plots = {name: Plot(**entry) for name, entry in entries.items()}
        return {name: plot for name, plot in plots.items() if (self.run_dir / plot.file).is_file()}
