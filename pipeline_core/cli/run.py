"""``pipeline run``: run a pipeline file (or continue a run folder) and print a summary."""

from __future__ import annotations

import time
from pathlib import Path

import click

from pipeline_core.cli.options import overrides
from pipeline_core.errors import ConfigError

DEFAULT_ARTIFACTS = Path("artifacts")


@click.command()
@click.argument("target", metavar="PIPELINE_FILE|RUN_FOLDER", type=click.Path(path_type=Path))
@overrides
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), help="Run folder (default: artifacts/<name>/<timestamp>).")
@click.option("--artifacts", "artifacts_root", type=click.Path(path_type=Path, file_okay=False), default=DEFAULT_ARTIFACTS, show_default=True, help="Where timestamped run folders go.")
@click.option("--resume", is_flag=True, help="Continue an unfinished run from its last checkpoint: RUN_FOLDER, --out DIR, or the newest unfinished run of PIPELINE_FILE.")
@click.option("--progress", type=click.Choice(["auto", "bar", "lines", "none"]), default="auto", show_default=True, help="auto: a live bar on a terminal, quiet otherwise.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output; only the summary.")
def run(target: Path, overrides: tuple[str, ...], out: Path | None, artifacts_root: Path, resume: bool, progress: str, quiet: bool) -> None:
    """Run PIPELINE_FILE (load data, build the model, train, evaluate, export), or continue RUN_FOLDER with --resume."""
    from pipeline_core.cli.summary import print_summary
    from pipeline_core.runner import load_pipeline, load_run, run_pipeline

    started = time.perf_counter()
    if target.is_dir():
        if not resume:
            raise ConfigError(f"{target} is a run folder; add --resume to continue it, or give a pipeline file")
        if overrides or out:
            raise ConfigError("--resume of a run folder keeps its configuration and folder; drop --set and --out")
        config, host = load_run(target)
        out = target
    else:
        if resume and overrides:
            raise ConfigError("--resume keeps the run's configuration; drop --set (start a new run to change it)")
        config, host = load_pipeline(target, overrides)
    result = run_pipeline(config, host, out=out, artifacts_root=artifacts_root, quiet=quiet, progress=progress, resume=resume)
    print_summary(result, time.perf_counter() - started)


COMMANDS = [run]
