"""A worker: trials one after another on the shared study until its budget is used up.

Every worker of a study, in this process, another process or on another machine, runs this loop
against the same storage; Optuna hands each a distinct trial. The budget is the study's, not the
worker's: ``trials`` finished (complete, pruned or failed) trials in all, counting those running
and queued, so a sweep killed and started again runs only what is missing. When nothing is left to
start, a worker waits for the trials still running elsewhere (a dead worker's trial is failed and
tried again: on an RDB storage after its heartbeat's grace period, on a journal file as soon as its
process on this machine is gone), so the command that ends last sees the whole study.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import click
import optuna
from optuna.trial import FrozenTrial, TrialState

from pipeline_core.config.sweep_section import inline_toml
from pipeline_core.errors import Interrupted
from pipeline_core.sweep import study as studies
from pipeline_core.sweep.space import values_of
from pipeline_core.sweep.storage import OnStale
from pipeline_core.sweep.trial import TrialFailed, TrialRunner


@dataclass
class Worker:
    """One worker's loop over ``study`` with ``objective``."""

    study: optuna.Study
    objective: TrialRunner
    trials: int | None  # the study's budget of trials (None: until the deadline)
    deadline: float | None  # wall-clock time (time.time()) after which this worker starts no new trial
    abandoned: OnStale  # a trial whose worker died or was stopped: failed, tried again
    heartbeats: bool  # the storage fails a dead worker's trial by its heartbeat (else: by its process, on this machine)
    poll_seconds: float = 1.0
    echo: Callable[[str], None] = click.echo

    def run(self) -> int:
        """Run trials until the budget is used up or the time is over; returns how many this worker ran."""
        ran = 0
        while True:
            if not self.heartbeats:
                studies.fail_dead_local_trials(self.study, self.abandoned)
            trials = self.study.get_trials(deepcopy=False)
            expired = self.deadline is not None and time.time() >= self.deadline
            queued = any(trial.state == TrialState.WAITING for trial in trials)
            if not expired and (queued or self.trials is None or studies.budgeted(trials) < self.trials):
                self._one()
                ran += 1
                continue
            if not expired and self.trials is not None and any(trial.state == TrialState.RUNNING for trial in trials):
                if self.heartbeats:
                    optuna.storages.fail_stale_trials(self.study)
                time.sleep(self.poll_seconds)
                continue
            return ran

    def _one(self) -> None:
        self.objective.current = None
        try:
            self.study.optimize(self.objective, n_trials=1, catch=(TrialFailed,), gc_after_trial=False, show_progress_bar=False)
        except (Interrupted, KeyboardInterrupt):
            if self.objective.current is not None:  # stopped by Ctrl-C or SIGTERM: the trial is run again next time
                self.abandoned(self.study, studies.trial_numbered(self.study, self.objective.current))
            raise
        if self.objective.current is not None:
            self.echo(describe(studies.trial_numbered(self.study, self.objective.current), self.objective))


def describe(trial: FrozenTrial, objective: TrialRunner) -> str:
    """One line for a finished trial: its state, value, epochs, time and values."""
    values = values_of(objective.sweep, trial.params)
    shown = "  ".join(f"{key}={inline_toml(value, 4)}" for key, value in values.items())
    epochs, seconds = trial.user_attrs.get("epochs", "?"), trial.user_attrs.get("seconds", 0.0)
    state = trial.state.name.lower()
    if trial.state == TrialState.COMPLETE:
        result = f"{objective.sweep.objective} {trial.value:.4f}"
    elif trial.state == TrialState.PRUNED:
        result = f"pruned at epoch {epochs}"
    else:
        result = trial.user_attrs.get("error", "failed")
    return f"trial {trial.number:>4}  {state:<8}  {result}  ({epochs} epochs, {seconds:.1f} s)  {shown}"
