"""The pruning check decides as Optuna's ``Trial.should_prune`` does, from an in-memory copy of the
complete trials that it reads again once it is older than its refresh time."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from pipeline_core.sweep.pruning import PruningCheck

optuna.logging.set_verbosity(optuna.logging.ERROR)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def sqlite_study(tmp_path: Path, pruner: optuna.pruners.BasePruner, direction: str = "maximize", name: str = "s") -> optuna.Study:
    return optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'study.db'}", study_name=name, direction=direction, pruner=pruner,
        sampler=optuna.samplers.RandomSampler(seed=0), load_if_exists=True,
    )


PRUNERS = [
    (lambda: optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=3), "maximize"),
    (lambda: optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0, interval_steps=2), "minimize"),
    (lambda: optuna.pruners.PercentilePruner(25.0, n_startup_trials=3, n_min_trials=2), "maximize"),
    (lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=2, reduction_factor=2), "maximize"),
    (lambda: optuna.pruners.NopPruner(), "minimize"),
]


def curves_study(name: str, pruner: optuna.pruners.BasePruner, direction: str, should_stop: Any) -> optuna.Study:
    """15 trials of random learning curves, each report judged by ``should_stop(trial, value, step)``
    (in memory: what is compared is the decisions; the next test reads a SQLite storage)."""
    study = optuna.create_study(study_name=name, direction=direction, pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=0))
    draw = random.Random(7)

    def objective(trial: optuna.Trial) -> float:
        level, value = draw.uniform(0, 1), 0.0
        checked = PruningCheck(trial)
        for step in range(12):
            value = level + draw.gauss(0, 0.2) + 0.01 * step
            if should_stop(checked, trial, value, step):
                raise optuna.TrialPruned()
        return value

    study.optimize(objective, n_trials=15)
    return study


def by_optuna(_: PruningCheck, trial: optuna.Trial, value: float, step: int) -> bool:
    trial.report(value, step)
    return trial.should_prune()


def by_check(checked: PruningCheck, _: optuna.Trial, value: float, step: int) -> bool:
    return checked(value, step)


@pytest.mark.parametrize(("pruner", "direction"), PRUNERS)
def test_a_sweep_prunes_as_optuna_does(pruner: Callable[[], optuna.pruners.BasePruner], direction: str) -> None:
    """The same sampler seed and curves, judged by the check and by ``should_prune``: the same trials
    are pruned at the same step, and the storage holds every reported value."""
    ours = curves_study("ours", pruner(), direction, by_check)
    optunas = curves_study("optunas", pruner(), direction, by_optuna)
    outcome = lambda study: [(trial.state, trial.intermediate_values, trial.value) for trial in study.trials]  # noqa: E731
    assert outcome(ours) == outcome(optunas)
    pruned = sum(trial.state == TrialState.PRUNED for trial in ours.trials)
    assert pruned == 0 if isinstance(ours.pruner, optuna.pruners.NopPruner) else 0 < pruned < 15


def test_median_pruner_reads_the_complete_trials_once_per_refresh(tmp_path: Path) -> None:
    """A trial another worker completes is seen after the refresh time, and not read before it."""
    study = sqlite_study(tmp_path, optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    for level in (0.9, 0.8):  # two good complete trials
        trial = study.ask()
        for step in range(3):
            trial.report(level, step)
        study.tell(trial, level)
    other = sqlite_study(tmp_path, optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    clock = Clock()
    running = study.ask()
    check = PruningCheck(running, refresh_seconds=1.0, clock=clock)
    assert check(0.5, 0) is True  # below the median of 0.9 and 0.8
    assert check.reads == 1
    for level in (0.1, 0.2, 0.3):  # another worker completes three poor trials
        trial = other.ask()
        for step in range(3):
            trial.report(level, step)
        other.tell(trial, level)
    clock.now = 0.5
    assert check(0.5, 1) is True and check.reads == 1  # the copy is younger than a second: the new trials are not seen yet
    assert not running.should_prune()  # Optuna, reading the storage, sees them: 0.5 is above their median
    clock.now = 1.0
    assert check(0.5, 2) is False and check.reads == 2  # read again: the same answer as Optuna's
    assert not running.should_prune()
    stored = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}").trials[running.number]
    assert stored.intermediate_values == {0: 0.5, 1: 0.5, 2: 0.5}


def test_without_a_pruner_nothing_is_read(tmp_path: Path) -> None:
    study = sqlite_study(tmp_path, optuna.pruners.NopPruner())
    check = PruningCheck(study.ask())
    assert [check(0.1 * step, step) for step in range(5)] == [False] * 5
    assert check.reads == 0
