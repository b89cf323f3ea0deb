"""``pipeline sweep``: a hyperparameter search over a pipeline file's [sweep] table, on Optuna.

Optuna, torch and the sweep machinery are imported when the command runs, so ``pipeline --help``
stays light.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from pipeline_core.cli.options import overrides, pipeline_file
from pipeline_core.run.artifacts import DEFAULT_ROOT


@click.command()
@pipeline_file
@overrides
@click.option("--trials", type=click.IntRange(min=0), help="Finished trials the study should hold, across every worker and restart (default: sweep.trials; 0: only write the results).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Worker processes on this machine, each running trials.")
@click.option("--storage", help="Where the study lives: an RDB URL (sqlite:///f.db, postgresql://...) or journal:PATH (default: the journal file "
              "study.log in the sweep folder, or its study.db where an earlier version began the sweep on SQLite).")
@click.option("--study", "study_name", help="The study's name (default: the pipeline's name); the same name continues it.")
@click.option("--artifacts", "artifacts_root", type=click.Path(path_type=Path, file_okay=False), default=DEFAULT_ROOT, show_default=True, help="Sweeps go to <artifacts>/<pipeline>/sweeps/<study>/.")
@click.option("--worker", type=int, hidden=True, help="Run as worker process N of --jobs (started by the command itself).")
@click.option("--parent", type=int, hidden=True, help="The command that started this worker.")
@click.option("--until", type=float, hidden=True, help="The starting command's deadline (time.time()): a worker starts no trial after it.")
def sweep(
    pipeline_file: Path, overrides: tuple[str, ...], trials: int | None, jobs: int, storage: str | None, study_name: str | None,
    artifacts_root: Path, worker: int | None, parent: int | None, until: float | None,
) -> None:
    """Search PIPELINE_FILE's [sweep] parameters: one run folder per trial, the best trial's pipeline and a report.

    Several processes or machines given the same --storage and --study work on one study. Started
    again, the same command continues a stopped sweep."""
    from pipeline_core.sweep import coordinator, processes
    from pipeline_core.sweep.storage import unused_heartbeat_settings

    began, started = time.time(), time.perf_counter()
    prepared = coordinator.prepare(pipeline_file, overrides, artifacts_root, study_name, storage, trials)
    if worker is not None:
        if parent is not None:
            processes.die_with_parent(parent)
        coordinator.work(prepared, until if until is not None else coordinator.deadline(prepared.sweep, began), worker)
        return
    coordinator.check_data(prepared)
    study = coordinator.start(prepared)
    click.echo(f"sweep {prepared.study_name!r}: {prepared.folder.root}  (storage {prepared.shown_storage}, {len(study.trials)} trials so far)")
    note = unused_heartbeat_settings(prepared.url, prepared.sweep)
    if note is not None:
        click.echo(note, err=True)
    arguments = ["sweep", str(pipeline_file), "--storage", prepared.url, "--study", prepared.study_name, "--artifacts", str(artifacts_root)]
    arguments += [f"--set={item}" for item in overrides] + ([] if trials is None else ["--trials", str(trials)])
    until = coordinator.deadline(prepared.sweep, began)
    deaths = [] if trials == 0 else coordinator.run_workers(prepared, jobs, arguments, until, echo=lambda line: click.echo(line, err=True))
    record = coordinator.finish(prepared, deaths, jobs, until)
    from pipeline_core.cli.sweep_summary import print_sweep

    print_sweep(record, prepared.folder.root, time.perf_counter() - started)


COMMANDS = [sweep]
