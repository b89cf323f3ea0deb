"""What a sweep leaves: the best trial, chosen on the validation split; its pipeline file, ready for
``pipeline run``; its saved weights scored on the test split, once; and ``sweep.json``.

The test split is used exactly here: after selection, on the weights the best trial saved, and not
again while the best trial stays the same (a later command with more trials that finds a better one
scores that one). No trial ever saw it (:mod:`.trial` holds it out).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
import tomli_w
import torch
from optuna.trial import FrozenTrial, TrialState

from pipeline_core.config.sweep_section import SweepSection
from pipeline_core.model.evaluation import Evaluator
from pipeline_core.pipeline.runner import load_pipeline, load_run, resolve_device, seed_everything
from pipeline_core.run import artifacts
from pipeline_core.run.artifacts import RunFiles, read_json
from pipeline_core.run.context import RunContext
from pipeline_core.run.results import MetricValue
from pipeline_core.sweep import space
from pipeline_core.sweep.folder import SweepFolder
from pipeline_core.sweep.study import replaces

TEST = "test"


@dataclass(frozen=True)
class SweepSource:
    """Where a sweep's trials come from: the pipeline file, the command's ``--set`` items, its [sweep]."""

    pipeline_file: Path
    overrides: tuple[str, ...]
    sweep: SweepSection


def counts(trials: list[FrozenTrial]) -> dict[str, int]:
    """Trials by state (``complete``, ``pruned``, ``fail``, ``running``, ``waiting``) and how many were tried again."""
    found = Counter(trial.state.name.lower() for trial in trials)
    return {
        **{state.name.lower(): found.get(state.name.lower(), 0) for state in TrialState},
        "retried": sum(1 for trial in trials if replaces(trial) is not None),
    }


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best complete trial on the validation objective (none while no trial completed)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return study.best_trial if complete else None


def write_best_pipeline(source: SweepSource, trial: FrozenTrial, folder: SweepFolder) -> Path:
    """``best.toml``: the pipeline with the best trial's values, every default written out, without
    [sweep]; relative paths start where the original file's did (``pipeline.base_dir``)."""
    values = space.values_of(source.sweep, trial.params)
    config, _ = load_pipeline(source.pipeline_file, (*source.overrides, *space.overrides(values)))
    table = config.resolved()
    table["pipeline"]["base_dir"] = str(config.root.resolve())
    header = (
        f"# The best trial ({trial.number}) of sweep {folder.root.name!r} of {source.pipeline_file}: "
        f"{source.sweep.objective} {trial.value:.6g} on the validation split.\n"
        f"# Its values: {', '.join(space.overrides(values))}\n"
        "# Run it with `pipeline run best.toml`; relative paths start at pipeline.base_dir.\n\n"
    )
    return artifacts.write_text(folder.root / SweepFolder.BEST_PIPELINE, header + tomli_w.dumps(table))


def score_on_test(run_dir: Path) -> dict[str, MetricValue]:
    """The metrics of ``run_dir``'s saved weights on the test split: the data and model are built
    again (deterministic given the seed), the weights loaded, and the configured metrics computed."""
    config, host = load_run(run_dir)
    run = RunContext(config, host, run_dir, resolve_device(config.pipeline.device), progress="none")
    seed_everything(config.pipeline.seed)
    stages = list(config.pipeline.stages)
    for stage in stages[: stages.index("train")]:  # without hooks: nothing is written into the trial's folder
        host.registry.get("stage", stage).factory(run, **config.stage_options.get(stage, {}))
    model, data = run.require_model("sweep"), run.require_data("sweep")
    model.load_state_dict(torch.load(run_dir / RunFiles.WEIGHTS, map_location=run.device, weights_only=True))
    return Evaluator.for_run(run, data.spec.task)(model, data.splits[TEST].to(run.device))


def best_record(study: optuna.Study, source: SweepSource, folder: SweepFolder, previous: dict[str, Any]) -> dict[str, Any] | None:
    """The best trial for ``sweep.json``, with its test metrics: scored now if the best trial
    changed, else those already recorded."""
    trial = best_trial(study)
    if trial is None:
        return None
    run_dir = Path(trial.user_attrs.get("run_dir", folder.trial_dir(trial.number)))
    record: dict[str, Any] = {
        "trial": trial.number,
        "value": trial.value,
        "values": space.values_of(source.sweep, trial.params),
        "epochs": trial.user_attrs.get("epochs"),
        "run_dir": str(run_dir),
        "pipeline": SweepFolder.BEST_PIPELINE,
    }
    write_best_pipeline(source, trial, folder)
    earlier = previous.get("best") or {}
    if earlier.get("trial") == trial.number and earlier.get(TEST) is not None:
        return {**record, TEST: earlier[TEST], "test_scored": earlier.get("test_scored")}
    if not (run_dir / RunFiles.WEIGHTS).is_file():
        return {**record, TEST: None, "test_note": (
            f"{run_dir / RunFiles.WEIGHTS} is not on this machine (the trial ran on {trial.user_attrs.get('host', '?')}); "
            "run the same `pipeline sweep ... --trials 0` there, or share the artifacts folder")}
    return {**record, TEST: score_on_test(run_dir), "test_scored": _now()}


def write_record(
    study: optuna.Study, source: SweepSource, folder: SweepFolder, storage: str, state: str, best: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``sweep.json``: the study, its objective, its trials by state, epochs trained and the best trial."""
    trials = study.get_trials(deepcopy=False)
    previous = read_json(folder.record)
    record = {
        "study": study.study_name,
        "storage": storage,
        "pipeline_file": str(source.pipeline_file.resolve()),
        "overrides": list(source.overrides),
        "objective": source.sweep.objective,
        "direction": source.sweep.resolved_direction,
        "state": state,
        "updated": _now(),
        "trials": counts(trials),
        "epochs": sum(int(trial.user_attrs.get("epochs", 0)) for trial in trials),
        "best": best if best is not None else previous.get("best"),
    }
    artifacts.write_json(folder.record, record)
    return record


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
