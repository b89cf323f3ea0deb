"""``pipeline run``: run a pipeline file and print a summary."""

from __future__ import annotations

import time
from pathlib import Path

import click

from pipeline_core.cli.options import overrides, pipeline_file

DEFAULT_ARTIFACTS = Path("artifacts")


@click.command()
@pipeline_file
@overrides
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), help="Run folder (default: artifacts/<name>/<timestamp>).")
@click.option("--artifacts", "artifacts_root", type=click.Path(path_type=Path, file_okay=False), default=DEFAULT_ARTIFACTS, show_default=True, help="Where timestamped run folders go.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output; only the summary.")
def run(pipeline_file: Path, overrides: tuple[str, ...], out: Path | None, artifacts_root: Path, quiet: bool) -> None:
    """Run PIPELINE_FILE: load data, build the model, train, evaluate, export."""
    from pipeline_core.cli.summary import print_summary
    from pipeline_core.runner import load_pipeline, run_pipeline

    started = time.perf_counter()
    config, host = load_pipeline(pipeline_file, overrides)
    result = run_pipeline(config, host, out=out, artifacts_root=artifacts_root, quiet=quiet)
    print_summary(result, time.perf_counter() - started)


COMMANDS = [run]
