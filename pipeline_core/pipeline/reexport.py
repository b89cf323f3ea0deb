"""``pipeline export RUN``: export and check a finished run again from its trained weights.

An hour of training must never be lost to an export problem. A run keeps ``weights.pt``,
``history.csv``, ``metrics.json`` and ``training.json`` whatever happens at export; this reads the
run's resolved config with ``--set export.…`` overrides (formats, opset, tolerances, batch sizes),
runs the stages before ``train`` again (data and model are deterministic given the seed), loads the
trained weights into the model and runs the ``export`` stage. The export stage puts a new sealed
bundle in place of ``bundle/`` only once every check passed; only then are the run's config, status
and manifest updated. A failed re-export leaves the previous bundle and the run's record as they were,
except when an ``after_pipeline`` hook fails once the new bundle is sealed: the run is then marked
failed and the bundle unsealed, as a run that fails there would be (a failed run ships nothing).
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomli_w
import torch

from pipeline_core.config.file import parse_override
from pipeline_core.errors import ConfigError
from pipeline_core.pipeline.runner import fail_run, load_run, resolve_device, run_stage, seed_everything, write_run_manifest
from pipeline_core.run import artifacts
from pipeline_core.run.artifacts import RunFiles, read_json
from pipeline_core.run.context import RunContext
from pipeline_core.run.results import TrainingSummary

EXPORT_STAGE = "export"


def _check_overrides(overrides: tuple[str, ...]) -> None:
    for item in overrides:
        path, _ = parse_override(item)
        if path[0] != "export" and path != ("pipeline", "device"):
            raise ConfigError(
                f"--set {item}: `pipeline export` changes only the export settings (export.…) and pipeline.device; "
                "the weights were trained with the rest, so changing it needs a new run (`pipeline run`)"
            )


def _history(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with open(path, encoding="utf-8", newline="") as stream:
        return [{key: float(value) for key, value in row.items() if value not in ("", None)} for row in csv.DictReader(stream)]


def _training(run_dir: Path, history: list[dict[str, float]], configured: int) -> TrainingSummary:
    recorded = read_json(run_dir / RunFiles.TRAINING)
    if recorded:
        return TrainingSummary.from_dict(recorded)
    return TrainingSummary(configured, int(history[-1]["epoch"]) if history else 0, None)  # a run from before training.json


def _restore(run: RunContext) -> None:
    """The trained weights into the rebuilt model; metrics, history and the training summary from disk."""
    model = run.require_model(EXPORT_STAGE)
    try:
        model.load_state_dict(torch.load(run.run_dir / RunFiles.WEIGHTS, map_location=run.device, weights_only=True))
    except (RuntimeError, ValueError, OSError) as error:
        raise ConfigError(
            f"{run.run_dir / RunFiles.WEIGHTS} does not fit the model this pipeline builds now ({str(error).splitlines()[0]}); "
            "was the model plugin changed since the run? Re-export with the plugin version that trained it"
        ) from None
    run.metrics = read_json(run.run_dir / RunFiles.METRICS)
    run.history = _history(run.run_dir / RunFiles.HISTORY)
    run.training = _training(run.run_dir, run.history, run.config.train.epochs if run.config.train else 0)


def _describe_status(status: dict[str, Any]) -> str:
    if not status:
        return "no status.json"
    return f"status {status.get('status')!r}" + (f" at stage {status['stage']!r}" if "stage" in status else "")


def reexport(run_dir: Path, overrides: tuple[str, ...] = (), progress: str = "none") -> RunContext:
    """Export and check ``run_dir``'s trained weights again; returns the finished context.

    Raises :class:`ConfigError` (exit 2) for a folder that cannot be re-exported and
    :class:`~pipeline_core.errors.RunFailed` (exit 1) when a check fails."""
    run_dir = Path(run_dir)
    _check_overrides(overrides)
    config, host = load_run(run_dir, overrides)
    status = read_json(run_dir / RunFiles.STATUS)
    stages = list(config.pipeline.stages)
    if "train" not in stages:
        raise ConfigError(f"{run_dir}: the pipeline has no 'train' stage, so there are no trained weights to export")
    if not (run_dir / RunFiles.WEIGHTS).is_file():
        raise ConfigError(
            f"{run_dir} has no {RunFiles.WEIGHTS}: its training did not finish ({_describe_status(status)}); "
            f"continue it with `pipeline run {run_dir} --resume`"
        )
    run = RunContext(config, host, run_dir, resolve_device(config.pipeline.device), progress=progress)
    seed_everything(config.pipeline.seed)
    host.hook.before_pipeline(run=run)
    for stage in stages[: stages.index("train")]:
        run_stage(run, stage)
    _restore(run)
    run_stage(run, EXPORT_STAGE)
    try:
        host.hook.after_pipeline(run=run)
    except BaseException as error:  # the new bundle is sealed already: a failed run keeps none
        fail_run(run, error, None)
    _record(run, status, overrides)
    return run


def _record(run: RunContext, status: dict[str, Any], overrides: tuple[str, ...]) -> None:
    """After a passing re-export: the run's config (if it changed), status and manifest."""
    when = datetime.now(UTC).isoformat(timespec="seconds")
    if overrides:
        artifacts.write_text(run.run_dir / RunFiles.CONFIG, tomli_w.dumps(run.config.resolved()))
        record = read_json(run.run_dir / RunFiles.RUN_RECORD)
        artifacts.write_json(run.run_dir / RunFiles.RUN_RECORD, {**record, "config_sha256": run.config.sha256()})
    finished = status.get("status") == "succeeded" or status.get("stage") == EXPORT_STAGE or status.get("hook") == "after_pipeline"
    if not finished:
        return  # a run that failed after its export stage keeps its failure; the new bundle is still sealed
    artifacts.write_json(run.run_dir / RunFiles.STATUS, {"status": "succeeded", "stages": list(run.config.pipeline.stages), "reexported": when})
    previous = read_json(run.run_dir / RunFiles.MANIFEST)
    reexports = [*previous.get("reexports", []), {"time": when, "overrides": list(overrides)}]
    write_run_manifest(run, {
        "resumed": previous.get("resumed", status.get("resumed", False)),
        "processes": previous.get("processes", 1),
        "reexports": reexports,
    })
