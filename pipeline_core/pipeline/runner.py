"""Loads a pipeline file with its plugins, then runs its stage list with lifecycle hooks around each
stage; continues an unfinished run from its last checkpoint."""

from __future__ import annotations

import dataclasses
import functools
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import tomli_w
import torch

from pipeline_core.components.host import Host
from pipeline_core.config.file import PipelineConfig
from pipeline_core.data.worker_deaths import worker_death
from pipeline_core.discovery.build import BLOCK_ENV
from pipeline_core.errors import ConfigError, PipelineError, RunFailed
from pipeline_core.export.bundle import BUNDLE_DIR, unseal_bundle
from pipeline_core.pipeline.load import load_pipeline
from pipeline_core.run import artifacts
from pipeline_core.run.artifacts import DEFAULT_ROOT, RunFiles, read_json
from pipeline_core.run.context import RunContext
from pipeline_core.run.distributed import Distributed, check_sync_batchnorm, join, leave
from pipeline_core.run.failure import describe_error, failure_of
from pipeline_core.run.signals import interrupt_on_signals


def load_run(run_dir: Path, overrides: tuple[str, ...] = ()) -> tuple[PipelineConfig, Host]:
    """The config of an existing run folder, with relative paths resolved as when it started."""
    if not (run_dir / RunFiles.CONFIG).is_file():
        raise ConfigError(f"{run_dir} is not a run folder: it has no {RunFiles.CONFIG}")
    record = read_json(run_dir / RunFiles.RUN_RECORD)
    base = Path(record["base_dir"]) if "base_dir" in record else run_dir
    return load_pipeline(run_dir / RunFiles.CONFIG, overrides, base_dir=base)


def find_unfinished(artifacts_root: Path, name: str) -> Path:
    """The newest run folder of pipeline ``name`` that did not succeed."""
    folder = artifacts_root / name
    runs = sorted((p for p in folder.iterdir() if (p / RunFiles.CONFIG).is_file() and not p.is_symlink()), reverse=True) if folder.is_dir() else []
    for run_dir in runs:
        if read_json(run_dir / RunFiles.STATUS).get("status") != "succeeded":
            return run_dir
    raise ConfigError(f"--resume: no unfinished run of {name!r} under {folder} (every run there succeeded, or there is none)")


def resolve_device(requested: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU; an explicit accelerator that is absent is an error."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"pipeline.device is {requested!r} but no CUDA device is available here; use 'auto' or 'cpu'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"pipeline.device is {requested!r} but only {torch.cuda.device_count()} CUDA device(s) exist")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("pipeline.device is 'mps' but MPS is not available here; use 'auto' or 'cpu'")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _prepare_resume(config: PipelineConfig, run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise ConfigError(f"--resume: {run_dir} does not exist")
    if read_json(run_dir / RunFiles.STATUS).get("status") == "succeeded":
        raise ConfigError(f"--resume: {run_dir} already finished successfully; there is nothing to continue")
    recorded = read_json(run_dir / RunFiles.RUN_RECORD).get("config_sha256")
    if recorded is not None and recorded != config.sha256():
        raise ConfigError(
            f"--resume: the configuration differs from the one {run_dir} was started with; continue that run "
            f"as it was with `pipeline run {run_dir} --resume`, or start a new run"
        )


def run_pipeline(
    config: PipelineConfig,
    host: Host,
    out: Path | None = None,
    artifacts_root: Path = DEFAULT_ROOT,
    quiet: bool = False,
    progress: str = "auto",
    resume: bool = False,
    provenance: Mapping[str, Any] | None = None,
    checkpoints: bool = True,
) -> RunContext:
    """Run every stage of ``config``; returns the finished context. Errors propagate after the
    ``on_stage_error`` hook; the run folder then holds what completed, never a half-written file.

    With ``resume``, ``out`` is an existing run folder of the same configuration: stages run again
    and training continues from the folder's last checkpoint. ``provenance`` is recorded in the run
    folder's ``run.json`` and manifest (a sweep names the study and trial a run belongs to). Without
    ``checkpoints``, training writes none: a run that is never continued (a sweep's trial)."""
    device = resolve_device(config.pipeline.device)
    strategy = config.train.strategy if config.train else "single"
    check_sync_batchnorm(strategy, config.train.sync_batchnorm if config.train else False, device)
    distributed = join(strategy, device)
    if distributed.enabled and device.type == "cuda":
        device = torch.device("cuda", distributed.local_rank)
        torch.cuda.set_device(device)
    try:
        if not distributed.is_main:
            return _run_as_worker(config, host, out, device, distributed, resume)
        return _run_as_main(config, host, out, artifacts_root, quiet, progress, resume, device, distributed, dict(provenance or {}), checkpoints)
    finally:
        leave()


def _run_as_worker(
    config: PipelineConfig, host: Host, out: Path | None, device: torch.device, distributed: Distributed, resume: bool
) -> RunContext:
    """A rank other than 0: the stages up to and including training, without hooks or files."""
    assert out is not None, "a data-parallel worker is always told its run folder"
    run = RunContext(config, host, out, device, progress="none", resuming=resume, distributed=distributed)
    seed_everything(config.pipeline.seed)
    stages = list(config.pipeline.stages)
    for stage in stages[: stages.index("train") + 1] if "train" in stages else stages:
        host.registry.get("stage", stage).factory(run, **config.stage_options.get(stage, {}))
    return run


def _run_as_main(
    config: PipelineConfig,
    host: Host,
    out: Path | None,
    artifacts_root: Path,
    quiet: bool,
    progress: str,
    resume: bool,
    device: torch.device,
    distributed: Distributed,
    provenance: dict[str, Any],
    checkpoints: bool = True,
) -> RunContext:
    if resume:
        if out is None:
            out = find_unfinished(artifacts_root, config.name)
        _prepare_resume(config, out)
        run_dir = out
    else:
        run_dir = artifacts.new_run_dir(artifacts_root, config.name, out)
        artifacts.write_json(run_dir / RunFiles.RUN_RECORD, {
            "pipeline_file": str(config.source.resolve()),
            "base_dir": str(config.root.resolve()),
            "config_sha256": config.sha256(),
            **provenance,
        })
        artifacts.write_text(run_dir / RunFiles.CONFIG, tomli_w.dumps(config.resolved()))
    run = RunContext(
        config, host, run_dir, device, progress="none" if quiet else progress, resuming=resume, checkpoints=checkpoints, distributed=distributed
    )
    artifacts.write_json(run.path(RunFiles.STATUS), {"status": "running", "resumed": resume})
    seed_everything(config.pipeline.seed)

    stage: str | None = None
    try:
        with interrupt_on_signals(lambda: f"stage {stage!r}" if stage else "the pipeline's start or end"):
            host.hook.before_pipeline(run=run)
            for stage in config.pipeline.stages:
                run_stage(run, stage)
            stage = None
            host.hook.after_pipeline(run=run)
    except BaseException as error:
        fail_run(run, error, stage)
    artifacts.write_json(run.path(RunFiles.STATUS), {"status": "succeeded", "stages": list(config.pipeline.stages)})
    write_run_manifest(run, {"resumed": resume, "processes": distributed.world_size, **provenance})
    if run_dir.parent.resolve() == (artifacts_root / config.name).resolve():
        artifacts.point_latest(run_dir)
    return run


def run_stage(run: RunContext, stage: str) -> None:
    """One stage between its lifecycle hooks. A failure of the stage itself (hooks it calls, such as
    ``on_epoch_end``, included) is kept in ``run.failure``, reported to ``on_stage_error`` and
    re-raised; one of those hooks failing too is added to it (``also``), never in its place."""
    hook = run.host.hook
    hook.before_stage(run=run, stage=stage)
    try:
        run.host.registry.get("stage", stage).factory(run, **run.config.stage_options.get(stage, {}))
    except BaseException as error:
        death = worker_death(error)  # torch raises a dead DataLoader worker's error at whatever line ran
        run.failure = failure_of(death or error, stage, run.host)
        _report(run, functools.partial(hook.on_stage_error, run=run, stage=stage, error=death or error))
        if death is not None:
            raise death from None
        raise
    hook.after_stage(run=run, stage=stage)


def _report(run: RunContext, call: Callable[[], object]) -> None:
    """Call a hook that reports the run's failure; if it raises as well, add that to ``run.failure``."""
    try:
        call()
    except Exception as error:
        assert run.failure is not None
        culprit = failure_of(error, None, run.host)
        said = f"{culprit.where} raised {describe_error(error)}" if culprit.plugin else describe_error(error)
        run.failure = dataclasses.replace(run.failure, also=(*run.failure.also, said))


def fail_run(run: RunContext, error: BaseException, stage: str | None) -> NoReturn:
    """Record that the run failed with ``error`` while ``stage`` ran (``None``: in ``before_pipeline``
    or ``after_pipeline``): ``status.json`` and ``run.failure`` say where, the bundle an earlier stage
    sealed is unsealed (a failed run ships nothing), and ``on_pipeline_error`` is told. Then raise:
    a :class:`RunFailed` naming the plugin when a lifecycle hook raised an unexpected error, else
    ``error`` itself."""
    run.failure = run.failure or failure_of(error, stage, run.host)
    unsealed = run.is_main and unseal_bundle(run.run_dir / BUNDLE_DIR)
    recorded = run.failure
    artifacts.write_json(run.path(RunFiles.STATUS), recorded.as_status())
    _report(run, functools.partial(run.host.hook.on_pipeline_error, run=run, error=error))
    failure = run.failure
    if failure is not recorded:  # an on_pipeline_error hook raised too
        artifacts.write_json(run.path(RunFiles.STATUS), failure.as_status())
    if failure.plugin is None or not isinstance(error, Exception) or isinstance(error, PipelineError):
        raise error
    info = run.host.plugins.get(failure.plugin)
    without = f"; to run without it, set {BLOCK_ENV}={failure.plugin}" if info and info.source in ("builtin", "entry point") else ""
    raise RunFailed(
        f"{failure.where} raised {failure.error}. The run is marked failed in {run.path(RunFiles.STATUS)}"
        f"{f' and its bundle unsealed (after fixing the cause: `pipeline export {run.run_dir}`)' if unsealed else ''}{without}"
    ) from error


def write_run_manifest(run: RunContext, extra: dict[str, Any]) -> Path:
    """The run folder's ``manifest.json``: provenance, ``extra``, and the sha256 of every file."""
    config = run.config
    return artifacts.write_manifest(run.run_dir, {
        "pipeline": config.name,
        "seed": config.pipeline.seed,
        "config_sha256": config.sha256(),
        "device": str(run.device),
        "stages": list(config.pipeline.stages),
        "overrides": list(config.overrides),
        **extra,
    })
