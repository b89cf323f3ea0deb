"""``pipeline sweep``: validate the file and its [sweep], check the data has a validation split,
create or continue the study, run the trials (here, in ``--jobs`` worker processes, or anywhere
else given the same storage), then select the best trial, score it on the test split once, and
write ``sweep.json``, ``best.toml`` and the report.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import optuna

from pipeline_core.components.host import Host
from pipeline_core.config.file import PipelineConfig, parse_override
from pipeline_core.config.sweep_section import SweepSection
from pipeline_core.data.loaded import DatasetContext
from pipeline_core.errors import ConfigError, PipelineError, RunFailed
from pipeline_core.model.evaluation import DEFAULT_METRICS
from pipeline_core.pipeline.runner import load_pipeline, resolve_device
from pipeline_core.run.artifacts import read_json
from pipeline_core.run.context import RunContext
from pipeline_core.sweep import processes, report, results
from pipeline_core.sweep import study as studies
from pipeline_core.sweep.folder import SweepFolder
from pipeline_core.sweep.storage import display_url, keeps_heartbeats, open_storage, storage_url
from pipeline_core.sweep.trial import VALIDATION, TrialRunner, trial_validation
from pipeline_core.sweep.worker import Worker
from pipeline_core.training.threads import DEFAULT_THREADS

#: ``pipeline sweep``'s exit code when every ``--jobs`` worker died before the study's budget was used
#: (the results so far are written; the same command continues): docs/sweeps.md has the table
ALL_WORKERS_DIED = 3


class WorkersFailed(PipelineError):
    """The workers of ``--jobs`` stopped because the command was stopped (SIGTERM, Ctrl-C): each
    reported it itself; the command exits with their code."""

    reported = True

    def __init__(self, code: int) -> None:
        super().__init__(f"a worker process exited with code {code}")
        self.exit_code = code


class WorkersDied(PipelineError):
    """Every worker of ``--jobs`` died before the study's budget was used up (exit code 3); the
    results of the trials that finished are written."""

    exit_code = ALL_WORKERS_DIED


@dataclass
class Sweep:
    """A sweep as one command sees it: the validated file, its study and where everything goes."""

    config: PipelineConfig
    host: Host
    source: results.SweepSource
    folder: SweepFolder
    study_name: str
    url: str

    @property
    def sweep(self) -> SweepSection:
        return self.source.sweep

    @property
    def shown_storage(self) -> str:
        return display_url(self.url)

    def storage(self) -> optuna.storages.BaseStorage:
        return open_storage(self.url, self.sweep, studies.dead_worker_callback(self.sweep.retries))

    def study(self, worker: int = 0) -> optuna.Study:
        return studies.open_study(self.storage(), self.study_name, self.sweep, self.shown_storage, worker)


def prepare(
    pipeline_file: Path, overrides: tuple[str, ...], artifacts_root: Path, study: str | None, storage: str | None, trials: int | None
) -> Sweep:
    """The validated pipeline and its sweep; ``trials`` (``--trials``) replaces ``sweep.trials``."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # each trial gets one line of ours; failures are recorded with it
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats, retries, constant liar
    config, host = load_pipeline(pipeline_file, overrides)
    if config.sweep is None:
        raise ConfigError(f"{pipeline_file} has no [sweep] table: add one with an objective, a budget and parameters (see docs/sweeps.md)")
    if config.train is not None and config.train.strategy == "ddp":
        raise ConfigError(
            f"{pipeline_file}: train.strategy = 'ddp': a sweep trains each trial in one process; run trials side by side "
            "with --jobs K instead (or several machines on one --storage)"
        )
    searched = set(config.sweep.parameters)
    for item in overrides:
        key = ".".join(parse_override(item)[0])
        if key in searched:
            raise ConfigError(f"--set {item}: {key} is a [sweep] parameter; every trial chooses its value (drop --set or the parameter)")
    sweep = config.sweep if trials is None else config.sweep.model_copy(update={"trials": trials})
    name = study or config.name
    folder = SweepFolder.of(artifacts_root, config.name, name)
    return Sweep(config, host, results.SweepSource(pipeline_file, overrides, sweep), folder, name, storage_url(storage, folder))


def check_data(prepared: Sweep) -> None:
    """Load the data once: it must have a validation split, and the objective must be a metric the
    validation split is scored with (the task's defaults when ``[evaluate]`` names none)."""
    config = prepared.config
    if config.data is None:
        return
    run = RunContext(config, prepared.host, prepared.folder.root, resolve_device(config.pipeline.device), progress="none")
    bundle = run.create(config.data, DatasetContext(config.pipeline.seed, config.root))
    if VALIDATION not in bundle.splits:
        raise ConfigError(
            f"{config.source}: data {config.data.name!r} gives no validation split (it has {', '.join(sorted(bundle.splits))}); "
            "a sweep scores each trial on the validation split: set the dataset's validation fraction (e.g. data.val_size = 0.2)"
        )
    metrics = [metric.name for metric in config.evaluate.metrics] or list(DEFAULT_METRICS[bundle.spec.task])
    if prepared.sweep.metric not in metrics:
        raise ConfigError(
            f"{config.source}: sweep.objective {prepared.sweep.objective!r}: the validation split of this {bundle.spec.task} data is "
            f"scored with {', '.join(metrics)}; choose one of {', '.join('val_' + m for m in metrics)} or list it in [evaluate] metrics"
        )


def budget(sweep: SweepSection) -> int | None:
    """The study's trial budget: ``trials``, else the grid's size for the grid sampler, else none (the timeout decides)."""
    if sweep.trials is not None:
        return sweep.trials
    return sweep.grid_size() if sweep.sampler.name == "grid" else None


def deadline(sweep: SweepSection, began: float) -> float | None:
    """When a command that began at ``began`` (time.time()) starts no new trial: ``timeout`` seconds
    after it began, not after its set-up (loading the data, opening the study), which the user waits for too."""
    return None if sweep.timeout is None else began + sweep.timeout


def work(prepared: Sweep, until: float | None, worker: int = 0) -> int:
    """Run trials in this process until the study's budget is used up or the time ``until`` has come
    (time.time(); None: no time limit); returns how many ran here."""
    storage = prepared.storage()
    study = studies.open_study(storage, prepared.study_name, prepared.sweep, prepared.shown_storage, worker)
    objective = TrialRunner(
        prepared.source.pipeline_file, prepared.source.overrides, prepared.sweep, list(prepared.config.pipeline.stages),
        prepared.folder, prepared.study_name, prepared.shown_storage, trial_validation(prepared.config, prepared.sweep),
    )
    loop = Worker(
        study, objective, budget(prepared.sweep), until, studies.dead_worker_callback(prepared.sweep.retries),
        heartbeats=keeps_heartbeats(storage),
    )
    return loop.run()


def start(prepared: Sweep) -> optuna.Study:
    """The study, created or continued; a new study in a folder that holds another study's trials is refused."""
    study = prepared.study()
    if not study.get_trials(deepcopy=False) and prepared.folder.trial_folders():
        raise ConfigError(
            f"{prepared.folder.root} holds trial folders, but study {prepared.study_name!r} in {prepared.shown_storage} has no trials: "
            "they belong to an earlier study; remove the folder or name another study (--study NAME)"
        )
    results.write_record(study, prepared.source, prepared.folder, prepared.shown_storage, "running")
    prepared.host.hook.before_sweep(config=prepared.config, folder=prepared.folder.root, study=prepared.study_name)
    return study


def run_workers(prepared: Sweep, jobs: int, worker_arguments: list[str], until: float | None,
                echo: Callable[[str], None] = click.echo) -> list[processes.WorkerEnd]:
    """The trials: in this process for one job, else in ``jobs`` worker processes, which keep this
    command's deadline ``until`` (their own start comes seconds later). A worker that dies is named at
    once (``echo``, to standard error), its running trial failed and queued again for the workers
    left; returns the workers that died. Raises :class:`WorkersFailed` when the command was stopped."""
    if jobs == 1:
        work(prepared, until)
        return []
    arguments = worker_arguments + ([] if until is None else ["--until", repr(until)])

    def on_death(end: processes.WorkerEnd) -> None:
        echo(f"{end.describe()}; its running trial is failed and queued again, and the workers left go on")
        study = prepared.study()
        studies.fail_dead_local_trials(study, studies.dead_worker_callback(prepared.sweep.retries))

    outcome = processes.start(arguments, jobs, max(1, DEFAULT_THREADS // jobs), on_death)
    if outcome.stopped and outcome.stop_code() != 0:
        raise WorkersFailed(outcome.stop_code())
    return outcome.deaths


def complete(prepared: Sweep, study: optuna.Study, until: float | None) -> bool:
    """Whether the study's budget is used up: ``trials`` finished with none running or queued, or,
    without a trial budget, the time is over."""
    trials = study.get_trials(deepcopy=False)
    if any(trial.state in (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING) for trial in trials):
        return False
    wanted = budget(prepared.sweep)
    if wanted is not None:
        return studies.budgeted(trials) >= wanted
    return until is not None and time.time() >= until


def _deaths_note(prepared: Sweep, deaths: Sequence[processes.WorkerEnd], jobs: int, record: dict[str, Any]) -> WorkersDied | None:
    """Say which workers died; when every one did before the budget was used up (``stopped``), the
    error the command ends with."""
    if not deaths:
        return None
    listed = "; ".join(end.describe() for end in deaths)
    if record["state"] != "stopped":
        click.echo(f"{len(deaths)} of {jobs} workers died during the sweep ({listed}); the others completed the study", err=True)
        return None
    return WorkersDied(
        f"every worker died before the study's budget was used ({listed}); the results of the {record['trials']['complete']} "
        f"completed trial(s) are written in {prepared.folder.root} (sweep.json says 'stopped'); run the same command again to "
        "continue the study (its unfinished trials are queued first)"
    )


def finish(prepared: Sweep, deaths: Sequence[processes.WorkerEnd] = (), jobs: int = 1, until: float | None = None) -> dict[str, Any]:
    """Select the best trial, score it on the test split (once), write sweep.json, best.toml and the
    report, and say which ``--jobs`` workers died (``deaths``). When every worker of this command died
    and the study's budget is not used up (``until``: the command's deadline), the study is ``stopped``,
    for the same command to continue, and :class:`WorkersDied` is raised after the results are written."""
    study = prepared.study()
    previous = read_json(prepared.folder.record)
    best = results.best_record(study, prepared.source, prepared.folder, previous)
    trials = study.get_trials(deepcopy=False)
    unfinished = any(trial.state in (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING) for trial in trials)
    if deaths and len(deaths) == jobs and not complete(prepared, study, until):
        state = "stopped"
    else:
        state = "running" if unfinished else "finished"
    record = results.write_record(study, prepared.source, prepared.folder, prepared.shown_storage, state, best)
    report.write(study, prepared.sweep, prepared.folder, record)
    prepared.host.hook.after_sweep(config=prepared.config, folder=prepared.folder.root, study=prepared.study_name, record=record)
    died = _deaths_note(prepared, deaths, jobs, record)
    if died is not None:
        raise died
    if best is None:
        found = results.counts(trials)
        errors = [trial.user_attrs["error"] for trial in trials if "error" in trial.user_attrs]
        raise RunFailed(
            f"no trial of study {prepared.study_name!r} completed ({found['pruned']} pruned, {found['fail']} failed)"
            + (f"; the first failure: {errors[0]}" if errors else "")
        )
    return record

