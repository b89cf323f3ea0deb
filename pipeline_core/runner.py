"""Loads a pipeline file with its plugins, then runs its stage list with lifecycle hooks around each stage."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import tomli_w
import torch

from pipeline_core import artifacts
from pipeline_core.config import PipelineConfig, apply_overrides, plugin_references, read_toml, validate
from pipeline_core.context import RunContext
from pipeline_core.errors import ConfigError
from pipeline_core.plugins import Host, build_host

STATUS = "status.json"  # why a run folder without a manifest stopped, or that the run succeeded
DEFAULT_ARTIFACTS = Path("artifacts")  # also the CLI default (kept in step by a test)


def load_pipeline(path: Path, overrides: tuple[str, ...] = ()) -> tuple[PipelineConfig, Host]:
    """Read ``path``, apply ``--set`` overrides, load the plugins it names, and validate it."""
    raw, text = read_toml(path)
    apply_overrides(raw, overrides)
    host = build_host(plugin_references(raw, path), base_dir=path.parent, origin=f"{path}: pipeline.plugins: ")
    return validate(raw, host.registry, path, text, overrides), host


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


def run_pipeline(
    config: PipelineConfig,
    host: Host,
    out: Path | None = None,
    artifacts_root: Path = DEFAULT_ARTIFACTS,
    quiet: bool = False,
) -> RunContext:
    """Run every stage of ``config``; returns the finished context. Errors propagate after the
    ``on_stage_error`` hook; the run folder then holds what completed, never a half-written file."""
    device = resolve_device(config.pipeline.device)
    run_dir = artifacts.new_run_dir(artifacts_root, config.name, out)
    run = RunContext(config, host, run_dir, device, quiet=quiet)
    artifacts.write_text(run.path("config.toml"), tomli_w.dumps(config.resolved()))
    seed_everything(config.pipeline.seed)

    host.hook.before_pipeline(run=run)
    for stage in config.pipeline.stages:
        host.hook.before_stage(run=run, stage=stage)
        try:
            stage_fn = host.registry.get("stage", stage).factory
            stage_fn(run, **config.stage_options.get(stage, {}))
        except BaseException as error:
            artifacts.write_json(run.path(STATUS), {"status": "failed", "stage": stage, "error": f"{type(error).__name__}: {error}"})
            host.hook.on_stage_error(run=run, stage=stage, error=error)
            raise
        host.hook.after_stage(run=run, stage=stage)
    host.hook.after_pipeline(run=run)
    artifacts.write_json(run.path(STATUS), {"status": "succeeded", "stages": list(config.pipeline.stages)})

    artifacts.write_manifest(
        run_dir,
        {
            "pipeline": config.name,
            "seed": config.pipeline.seed,
            "config_sha256": config.sha256(),
            "device": str(device),
            "stages": list(config.pipeline.stages),
            "overrides": list(config.overrides),
        },
    )
    if out is None:
        artifacts.point_latest(run_dir)
    return run
