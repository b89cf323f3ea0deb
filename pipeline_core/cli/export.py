"""``pipeline export``: export and check a finished run again from its trained weights, without training."""

from __future__ import annotations

import time
from pathlib import Path

import click

from pipeline_core.cli.options import overrides


@click.command("export")
@click.argument("run_folder", type=click.Path(path_type=Path, file_okay=False))
@overrides
@click.option("--progress", type=click.Choice(["auto", "bar", "lines", "none"]), default="none", show_default=True, help="Stage lines while it runs.")
def export(run_folder: Path, overrides: tuple[str, ...], progress: str) -> None:
    """Export RUN_FOLDER's weights.pt again: every format reloaded and checked, a new sealed bundle/.

    Change formats, opset, tolerances or batch sizes with --set export.KEY=VALUE (and the device with
    --set pipeline.device=cpu). The old bundle stays until the new one passed every check."""
    from pipeline_core.cli.summary import print_summary
    from pipeline_core.pipeline.reexport import reexport

    started = time.perf_counter()
    run = reexport(run_folder, overrides, progress)
    print_summary(run, time.perf_counter() - started)


COMMANDS = [export]
