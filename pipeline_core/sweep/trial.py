"""One trial: the pipeline run with the trial's values, in its own run folder, scored on the
validation split; the test split is held out of it.

The trial is an ordinary run (``config.toml``, ``history.csv``, ``metrics.json``, ``report.html``)
of the file with ``--set`` items for the drawn values, without the export stage, with
``evaluate.split = "validation"``, and without checkpoints: a trial is never continued (one that was
stopped runs again from its start, as a new trial), so they would only fill the disk. A plugin of
the sweep (:class:`TrialReporter`) takes the test split out of the data as soon as it is loaded, and
reports the objective to Optuna at the end of each epoch (``on_epoch_end``), so the pruner can stop
a poor trial; the run folder then says ``pruned``. The trial number and the folder name each other:
the folder is ``trials/<number>``, the trial's user attributes hold the folder, and the folder's
``run.json`` holds the study and trial.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from pipeline_core.config.file import PipelineConfig
from pipeline_core.config.sweep_section import SweepSection, inline_toml
from pipeline_core.config.train_section import VALIDATION_PREFIX
from pipeline_core.errors import ConfigError, Interrupted, PipelineError, Pruned
from pipeline_core.hookspecs import hookimpl
from pipeline_core.pipeline.runner import load_pipeline, run_pipeline
from pipeline_core.run.context import RunContext
from pipeline_core.sweep import space
from pipeline_core.sweep.folder import SweepFolder
from pipeline_core.sweep.pruning import PruningCheck

HELD_OUT = "test"
VALIDATION = "validation"


class TrialFailed(Exception):
    """A trial that could not finish (its values diverged, a plugin raised): recorded, and the sweep goes on."""


def trial_overrides(stages: list[str], validate_every: int | None = None) -> tuple[str, ...]:
    """What a trial changes besides its values: no export (the best trial's file is exported by
    ``pipeline run``), no plots (drawing them cost a moons trial more than its training), the
    evaluated split is the validation split, and (``validate_every``) the epochs it is scored on."""
    return (
        f"pipeline.stages={inline_toml([stage for stage in stages if stage != 'export'])}", f'evaluate.split="{VALIDATION}"',
        "evaluate.plots=false", *((f"train.validate_every={validate_every}",) if validate_every else ()),
    )


def trial_validation(config: PipelineConfig, sweep: SweepSection) -> int | None:
    """How often a trial scores the validation split where the file leaves it open: only on the
    epochs it reports (``report_every``) and its last. Validation does not change the weights, so the
    trial trains as ``pipeline run`` of its values does, and a small model's trial no longer spends as
    long validating as training. ``None`` (every epoch, or as the file says) when something may read
    a val_ column every epoch: early stopping on one, a scheduler (a plateau scheduler watches one),
    or a searched value that could add either."""
    train = config.train
    if train is None or sweep.report_every == 1 or "validate_every" in train.model_fields_set or train.scheduler is not None:
        return None
    if train.early_stopping is not None and train.early_stopping.monitor.startswith(VALIDATION_PREFIX):
        return None
    if any(key.startswith(("train.early_stopping", "train.scheduler", "train.validate_every")) for key in sweep.parameters):
        return None
    return sweep.report_every


class TrialReporter:
    """The sweep's plugin inside a trial: holds the test split out and reports each epoch."""

    def __init__(self, trial: optuna.Trial, sweep: SweepSection) -> None:
        self.trial, self.objective, self.every = trial, sweep.objective, sweep.report_every
        self.should_stop = PruningCheck(trial)
        self.epochs = 0

    @hookimpl(tryfirst=True)
    def after_stage(self, run: RunContext, stage: str) -> None:
        if run.data is not None:
            run.data.splits.pop(HELD_OUT, None)  # trials never see the test split; the best trial is scored on it once

    @hookimpl(trylast=True)
    def on_epoch_end(self, run: RunContext, epoch: int, metrics: dict[str, float]) -> None:
        self.epochs = epoch
        if epoch % self.every:
            return
        if self.objective not in metrics:
            raise ConfigError(
                f"sweep.objective {self.objective!r} is not in epoch {epoch}'s history row ({', '.join(metrics)}); "
                "the validation split is scored with [evaluate] metrics (or the task's defaults): choose one of the val_ columns"
            )
        value = metrics[self.objective]
        if self.should_stop(value, epoch):
            raise Pruned(f"the pruner stopped trial {self.trial.number} at epoch {epoch} ({self.objective} {value:.6g})", epoch)


@dataclass
class TrialRunner:
    """Optuna's objective: runs trial after trial of ``pipeline_file`` into ``folder``."""

    pipeline_file: Path
    overrides: tuple[str, ...]  # the command's --set items, for every trial
    sweep: SweepSection
    stages: list[str]
    folder: SweepFolder
    study: str
    storage: str  # shown, without a password
    validate_every: int | None = None  # the trials' validation cadence (trial_validation), None: the file's
    current: int | None = field(default=None, init=False)  # the trial this process runs now

    def __call__(self, trial: optuna.Trial) -> float:
        self.current = trial.number
        values = space.suggest(trial, self.sweep)
        run_dir = self.folder.trial_dir(trial.number)
        for key, value in {"run_dir": str(run_dir.resolve()), "host": socket.gethostname(), "pid": os.getpid()}.items():
            trial.set_user_attr(key, value)
        reporter = TrialReporter(trial, self.sweep)
        started = time.perf_counter()
        try:
            config, host = load_pipeline(self.pipeline_file, (*self.overrides, *trial_overrides(self.stages, self.validate_every), *space.overrides(values)), plugins=[reporter])
            run = run_pipeline(
                config, host, out=run_dir, quiet=True, progress="none", provenance={"sweep": self._provenance(trial.number)}, checkpoints=False
            )
            value = _objective(run, self.sweep.metric)
        except Pruned:
            self._record(trial, reporter.epochs, started)
            raise optuna.TrialPruned() from None
        except Interrupted as stopped:  # the run's own message would say --resume, which a sweep does not have
            signal_number = stopped.exit_code - 128
            raise Interrupted(
                f"trial {trial.number} was stopped by {signal.Signals(signal_number).name} at epoch {reporter.epochs}; it is failed and "
                "queued again with the same values: run the same `pipeline sweep` command to continue the study", signal_number,
            ) from None
        except KeyboardInterrupt:
            raise
        except Exception as error:  # a trial's failure is its result: recorded, and the sweep goes on
            self._record(trial, reporter.epochs, started, error)
            raise TrialFailed(_describe(error)) from error
        self._record(trial, reporter.epochs, started)
        return value

    def _provenance(self, number: int) -> dict[str, Any]:
        return {"study": self.study, "storage": self.storage, "trial": number, "sweep_folder": str(self.folder.root.resolve())}

    @staticmethod
    def _record(trial: optuna.Trial, epochs: int, started: float, error: BaseException | None = None) -> None:
        trial.set_user_attr("epochs", epochs)
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
        if error is not None:
            trial.set_user_attr("error", _describe(error))


def _objective(run: RunContext, metric: str) -> float:
    """The finished trial's value: ``metric`` of its final weights on the validation split."""
    value = run.metrics.get(VALIDATION, {}).get(metric)
    if not isinstance(value, (int, float)):
        raise PipelineError(f"the trial's validation metrics have no number {metric!r} ({', '.join(run.metrics.get(VALIDATION, {}))})")
    return float(value)


def _describe(error: BaseException) -> str:
    return str(error) if isinstance(error, PipelineError) else f"{type(error).__name__}: {error}"
