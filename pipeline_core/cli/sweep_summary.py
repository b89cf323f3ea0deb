"""What ``pipeline sweep`` prints at the end: trials by state, the best trial, its test metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from pipeline_core.config.sweep_section import inline_toml
from pipeline_core.run.results import scalars


def print_sweep(record: dict[str, Any], folder: Path, seconds: float) -> None:
    console = Console()
    counts = record["trials"]
    console.print(
        f"study {record['study']!r}: {counts['complete']} complete, {counts['pruned']} pruned, {counts['fail']} failed"
        + (f", {counts['running']} still running" if counts["running"] else "") + f"; {record['epochs']} epochs trained",
        highlight=False,
    )
    best = record.get("best")
    if best:
        table = Table("parameter", "value", title=f"best trial {best['trial']}: {record['objective']} {best['value']:.4f} (validation)")
        for key, value in best["values"].items():
            table.add_row(key, inline_toml(value, 6))
        console.print(table)
        test = scalars(best.get("test") or {})
        if test:
            console.print("test split (scored once, on the best trial's weights): " + "  ".join(f"{k} {v:.4f}" for k, v in test.items()), highlight=False)
        elif best.get("test_note"):
            console.print(f"test split: not scored: {best['test_note']}", highlight=False)
        console.print(f"best pipeline: {folder / best['pipeline']}   (pipeline run it to train and export)", highlight=False)
    console.print(f"report: {folder / 'report.html'}   ({seconds:.1f} s)", highlight=False)
