"""Runs, models and sweeps in MLflow, switched on by a ``[trackers.mlflow]`` table (``pip install -e '.[mlflow]'``).

A run is an MLflow run: the resolved configuration as parameters (dotted keys), every epoch's row
with its step, the final metrics per split (``test.accuracy``: the epoch rows' ``train_loss`` stays apart from ``train.loss``), tags (config hash, seed, versions,
git commit), and the run folder as artifacts (``report.html``, ``plots/``, ``metrics.json``,
``history.csv``, the sealed ``bundle/``, ...). The ONNX model is logged in MLflow's ``onnx``
flavour and, with ``register_as``, registered. A resumed run continues its MLflow run; a failed run
ends ``FAILED`` with its error, a pruned or interrupted one ``KILLED``; ``pipeline export RUN``
logs its new bundle and model to the run's MLflow run too. A sweep is a parent run,
each trial a run nested in it.

An unreachable tracking server stops the run at its start, in one line (exit code 2), before any
training: a team that keeps its runs in MLflow would otherwise lose this one there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline_core import Register, RunFiles, __version__, hookimpl, scalars
from pipeline_core_plugins.trackers import mlflow_runs as runs
from pipeline_core_plugins.trackers.mlflow_settings import NAME, MlflowSettings, mlflow_settings

if TYPE_CHECKING:  # the run's context imports torch: `pipeline plugins` and a cached `validate` do not
    from pipeline_core import RunContext
    from pipeline_core.engine import PipelineConfig

#: run-folder entries not sent to MLflow: training's resumable state (the results are all logged)
NOT_LOGGED = ("checkpoints", runs.RECORD)
#: written by the host after the last hook of a successful run: here they would still say "running"
#: (``status.json``) or describe the previous attempt (``manifest.json``); the MLflow run's status says it
WRITTEN_AFTER = (RunFiles.STATUS, RunFiles.MANIFEST)
ERROR_CHARS = 5000


@hookimpl
def register_trackers(register: Register) -> None:
    register(NAME, mlflow_settings)


@dataclass
class TrackerState:
    """This run's MLflow run, once ``before_pipeline`` opened it."""

    tracked: runs.TrackedRun | None = None


def settings_of(config: PipelineConfig) -> MlflowSettings | None:
    chosen = config.trackers.get(NAME)
    return None if chosen is None else MlflowSettings(**chosen.options)


def _tags(config: PipelineConfig) -> dict[str, str]:
    import onnxruntime
    import torch

    tags = {
        runs.TAG_PREFIX + "name": config.name,
        runs.TAG_PREFIX + "config_sha256": config.sha256(),
        runs.TAG_PREFIX + "seed": str(config.pipeline.seed),
        runs.TAG_PREFIX + "version": __version__,
        "torch.version": torch.__version__,
        "onnxruntime.version": onnxruntime.__version__,
        "mlflow.source.name": str(config.source),
    }
    commit = runs.git_commit(config.root)
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


def _sweep_of(run: RunContext) -> dict[str, Any] | None:
    """The sweep and trial this run is, from its ``run.json`` (None for an ordinary run)."""
    import json

    record = run.run_dir / RunFiles.RUN_RECORD
    sweep = json.loads(record.read_text(encoding="utf-8")).get("sweep") if record.is_file() else None
    return sweep if isinstance(sweep, dict) else None


@hookimpl
def before_pipeline(run: RunContext) -> None:
    settings = settings_of(run.config)
    if settings is None or not run.is_main:
        return
    uri = runs.tracking_uri(settings)
    runs.check_reachable(uri)
    record = runs.read_record(run.run_dir)
    state = run.plugin_state(TrackerState)
    if record is not None:  # this folder's MLflow run: a resumed run, or `pipeline export RUN` exporting it again
        state.tracked = runs.TrackedRun.reopen(record)
        state.tracked.set_tags({runs.TAG_PREFIX + ("resumed" if run.resuming else "reexported"): "true"})
        return
    sweep = _sweep_of(run)
    tags = _tags(run.config) | {runs.TAG_PREFIX + "run_dir": str(run.run_dir.resolve())}
    parent = None
    if sweep is not None:
        tags |= {runs.TAG_PREFIX + "sweep.study": str(sweep.get("study")), runs.TAG_PREFIX + "sweep.trial": str(sweep.get("trial"))}
        parent_record = runs.read_record(Path(sweep["sweep_folder"])) if "sweep_folder" in sweep else None
        parent = parent_record["run_id"] if parent_record else None
    name = f"trial {sweep.get('trial')}" if sweep is not None else run.run_dir.name
    tracked = runs.TrackedRun.start(uri, settings.experiment or run.config.name, name, tags, parent)
    tracked.save(run.run_dir)
    params = dict(runs.flatten(run.config.resolved()))
    params[f"trackers.{NAME}.tracking_uri"] = runs.shown(settings.tracking_uri)
    tracked.log_params(params)
    state.tracked = tracked


@hookimpl
def on_epoch_end(run: RunContext, epoch: int, metrics: dict[str, float]) -> None:
    tracked = run.plugin_state(TrackerState).tracked
    if tracked is not None:
        tracked.gather({key: value for key, value in metrics.items() if key != "epoch"}, step=epoch)


def _final_metrics(run: RunContext) -> dict[str, float]:
    found = {f"{split}.{name}": value for split, values in run.metrics.items() for name, value in scalars(values).items()}
    sweep = run.config.sweep
    if sweep is not None and _sweep_of(run) is not None and isinstance(run.metrics.get("validation", {}).get(sweep.metric), (int, float)):
        found["sweep.objective"] = float(run.metrics["validation"][sweep.metric])
    return found


@hookimpl(wrapper=True)
def after_pipeline(run: RunContext) -> Any:
    result = yield  # every other after_pipeline first: the report is written
    tracked = run.plugin_state(TrackerState).tracked
    if tracked is None:
        return result
    tracked.flush()
    last_epoch = int(run.history[-1].get("epoch", len(run.history))) if run.history else 0
    tracked.log_metrics(_final_metrics(run), step=last_epoch)
    bundle = run.run_dir / "bundle"
    tracked.log_files(run.run_dir, runs.run_files(run.run_dir, (*NOT_LOGGED, *WRITTEN_AFTER, "bundle")))
    if (bundle / "manifest.json").is_file():
        from pipeline_core_plugins.trackers.mlflow_model import example_rows, log_model

        settings = settings_of(run.config)
        split = (run.data.splits.get("test") or next(iter(run.data.splits.values()))) if run.data else None
        logged = log_model(tracked, bundle, example_rows(getattr(split, "inputs", None)), settings.register_as if settings else "")
        tags = {runs.TAG_PREFIX + "bundle_manifest_sha256": logged.manifest_sha256, runs.TAG_PREFIX + "model_uri": logged.uri}
        if logged.registered:
            tags[runs.TAG_PREFIX + "registered_model"] = f"models:/{logged.registered[0]}/{logged.registered[1]}"
        tracked.set_tags(tags)
    tracked.end("FINISHED")
    return result


@hookimpl
def on_pipeline_error(run: RunContext, error: BaseException) -> None:
    tracked = run.plugin_state(TrackerState).tracked
    if tracked is None:
        return
    failure = run.failure
    status = failure.status if failure is not None else "failed"
    said = failure.error if failure is not None else f"{type(error).__name__}: {error}"
    try:
        tracked.flush()
    finally:
        tags = {runs.TAG_PREFIX + "status": status, runs.TAG_PREFIX + "error": said[:ERROR_CHARS]}
        if failure is not None and failure.stage:
            tags[runs.TAG_PREFIX + "failed_stage"] = failure.stage
        tracked.set_tags(tags)
        tracked.log_files(run.run_dir, runs.run_files(run.run_dir, (*NOT_LOGGED, RunFiles.MANIFEST, "bundle")))
        tracked.end("KILLED" if status in ("pruned", "interrupted") else "FAILED")


@hookimpl
def before_sweep(config: PipelineConfig, folder: Path, study: str) -> None:
    settings = settings_of(config)
    if settings is None:
        return
    uri = runs.tracking_uri(settings)
    runs.check_reachable(uri)
    record = runs.read_record(folder)
    if record is not None:
        runs.TrackedRun.reopen(record)
        return
    tags = _tags(config) | {runs.TAG_PREFIX + "sweep.study": study, runs.TAG_PREFIX + "sweep_folder": str(folder.resolve())}
    tracked = runs.TrackedRun.start(uri, settings.experiment or config.name, f"sweep {study}", tags)
    tracked.save(folder)
    sweep = config.sweep.model_dump(mode="json", warnings=False) if config.sweep is not None else {}
    tracked.log_params(dict(runs.flatten({"sweep": sweep})))


@hookimpl
def after_sweep(config: PipelineConfig, folder: Path, study: str, record: dict[str, Any]) -> None:
    saved = runs.read_record(folder)
    if settings_of(config) is None or saved is None:
        return
    tracked = runs.TrackedRun(runs.client_for(saved["tracking_uri"]), saved["tracking_uri"], saved["run_id"], saved["experiment_id"])
    best = record.get("best") or {}
    values = {"best.value": best.get("value")} | {f"best.test.{key}": value for key, value in (best.get("test") or {}).items()}
    values |= {f"trials.{state}": count for state, count in (record.get("trials") or {}).items()}
    tracked.log_metrics({key: value for key, value in values.items() if isinstance(value, (int, float))}, step=0)
    if best:
        tracked.set_tags({runs.TAG_PREFIX + "sweep.best_trial": str(best.get("trial"))})
    tracked.log_files(folder, ["sweep.json", "best.toml", "report.html", "plots"])
    tracked.end("FINISHED" if record.get("state") == "finished" and best else "KILLED" if record.get("state") != "finished" else "FAILED")
