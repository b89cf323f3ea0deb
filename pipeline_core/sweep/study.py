"""The study: Optuna's sampler and pruner as ``[sweep]`` names them, the study created once and
loaded by every worker, the trial budget shared by all of them, and what happens to a trial whose
worker died (failed, and tried again).
"""

from __future__ import annotations

import json
import os
import socket
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from pipeline_core.config.sweep_section import SweepSection
from pipeline_core.errors import ConfigError
from pipeline_core.run import artifacts
from pipeline_core.run.artifacts import RunFiles, read_json
from pipeline_core.sweep import space
from pipeline_core.sweep.storage import OnStale

#: the study's user attribute that holds what it searches: a later command must search the same
SIGNATURE = "pipeline_sweep"
#: states that use up the trial budget (a failed trial that was tried again is replaced by its retry)
BUDGETED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING)
Retry = optuna.storages.RetryHeartbeatStaleTrialCallback


def sampler(sweep: SweepSection, worker: int = 0) -> optuna.samplers.BaseSampler:
    """The configured sampler; a seed is offset by the worker's index, so workers do not draw alike."""
    chosen = sweep.sampler
    seed = None if chosen.seed is None else chosen.seed + worker
    if chosen.name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=chosen.startup_trials, multivariate=chosen.multivariate, constant_liar=True)
    if chosen.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if chosen.name == "grid":
        return optuna.samplers.GridSampler(space.grid(sweep), seed=seed)
    return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=chosen.startup_trials, sigma0=chosen.sigma0, warn_independent_sampling=False)


def pruner(sweep: SweepSection) -> optuna.pruners.BasePruner:
    """The configured pruner; its steps are epochs."""
    chosen = sweep.pruner
    if chosen.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=chosen.startup_trials, n_warmup_steps=chosen.warmup_epochs)
    if chosen.name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=chosen.min_epochs, reduction_factor=chosen.reduction_factor, min_early_stopping_rate=chosen.min_early_stopping_rate
        )
    if chosen.name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=chosen.min_epochs, max_resource=chosen.max_epochs, reduction_factor=chosen.reduction_factor)
    return optuna.pruners.NopPruner()


def signature(sweep: SweepSection) -> dict[str, Any]:
    """What a study searches: its objective, direction and parameters (as JSON values)."""
    parameters = {key: parameter.model_dump() for key, parameter in sweep.parameters.items()}
    return json.loads(json.dumps({"objective": sweep.objective, "direction": sweep.resolved_direction, "parameters": parameters}))


def open_study(storage: optuna.storages.BaseStorage, name: str, sweep: SweepSection, shown: str, worker: int = 0) -> optuna.Study:
    """Study ``name`` in ``storage``, created if it is new. An existing study must search what this
    file searches: continuing it with another objective or space would mix incomparable trials."""
    study = optuna.create_study(
        storage=storage, study_name=name, direction=sweep.resolved_direction, sampler=sampler(sweep, worker),
        pruner=pruner(sweep), load_if_exists=True,
    )
    wanted, stored = signature(sweep), study.user_attrs.get(SIGNATURE)
    if stored is None:
        study.set_user_attr(SIGNATURE, wanted)
    elif stored != wanted:
        changed = sorted(key for key in set(wanted) | set(stored) if wanted.get(key) != stored.get(key))
        raise ConfigError(
            f"study {name!r} in {shown} searches another {' and '.join(changed)} than this file's [sweep]; "
            "continue it with the file it started with, or name a new study (--study NAME)"
        )
    return study


def budgeted(trials: Sequence[FrozenTrial]) -> int:
    """Trials that use up the budget: finished, running or queued, without the failed ones that were
    tried again (their retry counts instead)."""
    replaced = {replaces(trial) for trial in trials} - {None}
    return sum(1 for trial in trials if trial.state in BUDGETED and trial.number not in replaced)


def replaces(trial: FrozenTrial) -> int | None:
    """The trial that ``trial`` tries again (Optuna's retry callback records it), if any."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # Optuna's retry helpers are marked experimental
        return Retry.retried_trial_number(trial)


def dead_worker_callback(retries: int) -> OnStale:
    """What happens to a trial whose worker died: tried again (up to ``retries`` times, Optuna's
    retry callback) and its run folder's status says why it stopped."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = Retry(max_retry=retries)

    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        retry(study, trial)
        run_dir = trial.user_attrs.get("run_dir")
        status_file = Path(run_dir) / RunFiles.STATUS if run_dir else None
        if status_file is not None and read_json(status_file).get("status") == "running":
            artifacts.write_json(status_file, {
                "status": "failed", "stage": read_json(status_file).get("stage", "train"),
                "error": f"the worker running trial {trial.number} stopped ({trial.user_attrs.get('host', '?')}, "
                         f"process {trial.user_attrs.get('pid', '?')}); the trial was failed and tried again",
            })

    return callback


def fail_dead_local_trials(study: optuna.Study, callback: OnStale) -> None:
    """For storages without heartbeats: fail the running trials whose process, on this machine, is
    gone, and hand each to ``callback`` as a heartbeat storage would."""
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = trial.user_attrs.get("pid")
        if trial.user_attrs.get("host") != host or not isinstance(pid, int) or _alive(pid):
            continue
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (ValueError, RuntimeError):
            continue  # another worker failed it first
        callback(study, trial_numbered(study, trial.number))


def trial_numbered(study: optuna.Study, number: int) -> FrozenTrial:
    return next(trial for trial in study.get_trials(deepcopy=False) if trial.number == number)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
