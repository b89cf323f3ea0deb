"""Asking the pruner, at the cost of an in-memory study.

``Trial.should_prune`` hands the pruner the study, and the median and percentile pruners read every
complete trial from the storage on each call: on a SQLite study about 5 ms, several times
the epoch of a small model it judges. Those pruners look at nothing else than the complete trials'
reported values and the running trial's own, so :class:`PruningCheck` gives them a copy of the
complete trials in an in-memory study, read again from the storage when it is older than
``refresh_seconds``. Every value is still reported to the storage as it comes.

A copy is exact while no other worker completes a trial; with several workers, a decision sees the
trials that were complete at most ``refresh_seconds`` before it (they finish at times no worker
controls anyway). Other pruners (successive halving, Hyperband) keep their state in the storage's
trial attributes, so they are asked through the storage, as Optuna does.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

#: seconds a copy of the complete trials is used before it is read again
REFRESH_SECONDS = 1.0


class PruningCheck:
    """Reports a running trial's values and asks the study's pruner whether to stop it."""

    def __init__(self, trial: optuna.Trial, refresh_seconds: float = REFRESH_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.trial, self.refresh_seconds, self.clock = trial, refresh_seconds, clock
        pruner = trial.study.pruner
        self.never = isinstance(pruner, optuna.pruners.NopPruner)
        self.local = isinstance(pruner, optuna.pruners.PercentilePruner)  # MedianPruner is one
        self.reported: dict[int, float] = {}
        self._complete: optuna.Study | None = None
        self._read_at = 0.0
        self._frozen: FrozenTrial | None = None
        self.reads = 0  # times the complete trials were read from the storage (for tests)

    def __call__(self, value: float, step: int) -> bool:
        """Report ``value`` at ``step`` to the storage; ``True`` when the pruner stops the trial."""
        self.trial.report(value, step)
        self.reported.setdefault(step, float(value))  # Optuna keeps the first value of a step, too
        if self.never:
            return False
        if not self.local:
            return self.trial.should_prune()
        return bool(self.trial.study.pruner.prune(self._complete_trials(), self._running()))

    def _complete_trials(self) -> optuna.Study:
        now = self.clock()
        if self._complete is None or now - self._read_at >= self.refresh_seconds:
            study = self.trial.study
            copy = optuna.create_study(direction=study.direction, sampler=optuna.samplers.RandomSampler())
            copy.add_trials(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
            self._complete, self._read_at = copy, now
            self.reads += 1
        return self._complete

    def _running(self) -> FrozenTrial:
        """The running trial as the pruner sees it: its number, values and what it reported. Built
        once (``trial.params`` and ``distributions`` are deep copies, a third of a check's cost);
        its reported values are the live ``reported`` dict, which the pruner only reads."""
        if self._frozen is None:
            trial = self.trial
            self._frozen = FrozenTrial(
                number=trial.number, state=TrialState.RUNNING, value=None, datetime_start=trial.datetime_start, datetime_complete=None,
                params=trial.params, distributions=trial.distributions, user_attrs={}, system_attrs={},
                intermediate_values=self.reported, trial_id=trial.number,  # an id the percentile pruners never read
            )
        return self._frozen
