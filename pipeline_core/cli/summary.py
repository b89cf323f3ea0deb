"""The short summary ``pipeline run`` prints at the end: metrics, export checks, where files are."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from pipeline_core.run.results import scalars_by_split

if TYPE_CHECKING:
    from pipeline_core.run.context import RunContext


def print_summary(run: RunContext, seconds: float) -> None:
    console = Console()
    if run.metrics:
        metrics = scalars_by_split(run.metrics)
        names = sorted({name for values in metrics.values() for name in values})
        table = Table("split", *names, title=f"{run.config.name}: metrics")
        for split, values in metrics.items():
            table.add_row(split, *(f"{values[name]:.4f}" if name in values else "" for name in names))
        console.print(table)
    if run.export_report:
        table = Table("format", "check", "max abs diff", "max rel diff", "ran on", title="export checks (bundle/)")
        for name, report in run.export_report.items():
            providers = ", ".join(p.replace("ExecutionProvider", "") for p in report.get("providers", []))
            if "max_abs_diff" not in report:  # the export itself failed
                table.add_row(name, "FAILED", "", "", "")
                continue
            table.add_row(
                name, "passed" if report["passed"] else "FAILED",
                f"{report['max_abs_diff']:.1e}", f"{report['max_rel_diff']:.1e}", providers,
            )
        console.print(table)
    variants = {name: entry for report in run.export_report.values() for name, entry in report.get("variants", {}).items()}
    if variants:
        console.print(_variants_table(variants))
    console.print(f"run folder: {run.run_dir}   ({seconds:.1f} s)", highlight=False)


def _variants_table(variants: dict[str, dict[str, Any]]) -> Table:
    """Each variant of model.onnx: shipped with its measured figures, or left out and why."""
    table = Table("variant", "gate", "test split", "size", "batch 1024", title="variants of model.onnx (bundle/)")
    for name, entry in variants.items():
        if "accuracy" in entry:
            quality = f"accuracy {entry['accuracy']['variant']:.4f} ({0.0 - entry['accuracy']['drop_points'] + 0.0:+.2f} pts)"
        else:
            quality = f"relative error {entry['relative_error']:.1e}" if "relative_error" in entry else ""
        if entry["shipped"]:
            table.add_row(name, "shipped", quality, f"{entry['size_ratio']:.2f}×", f"{entry['latency_ms']['batch_1024']:.3f} ms")
        else:
            table.add_row(name, "LEFT OUT", entry["reason"], "", "")
    return table
