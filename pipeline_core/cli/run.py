"""``pipeline run``: run a pipeline file (or continue a run folder) and print a summary; with
``train.strategy = "ddp"``, start the processes through torchrun's launcher first."""

from __future__ import annotations

import time
from pathlib import Path

import click

from pipeline_core.cli.options import overrides
from pipeline_core.errors import ConfigError
from pipeline_core.run.artifacts import DEFAULT_ROOT


@click.command()
@click.argument("target", metavar="PIPELINE_FILE|RUN_FOLDER", type=click.Path(path_type=Path))
@overrides
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), help="Run folder (default: artifacts/<name>/<timestamp>).")
@click.option("--artifacts", "artifacts_root", type=click.Path(path_type=Path, file_okay=False), default=DEFAULT_ROOT, show_default=True, help="Where timestamped run folders go.")
@click.option("--resume", is_flag=True, help="Continue an unfinished run from its last checkpoint: RUN_FOLDER, --out DIR, or the newest unfinished run of PIPELINE_FILE.")
@click.option("--progress", type=click.Choice(["auto", "bar", "lines", "none"]), default="auto", show_default=True, help="auto: a live bar on a terminal, quiet otherwise.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output; only the summary.")
@click.option("--nproc-per-node", type=click.IntRange(min=1), help="Data-parallel processes on this machine (train.strategy = 'ddp'; default: train.nproc_per_node).")
@click.option("--nnodes", default="1", show_default=True, help="Machines in the job (torchrun's --nnodes, e.g. 2 or 1:4).")
@click.option("--rdzv-endpoint", help="host:port every machine can reach, for several machines (torchrun's c10d rendezvous).")
@click.option("--rdzv-id", default="pipeline", show_default=True, help="Job id shared by the machines of one job.")
def run(
    target: Path, overrides: tuple[str, ...], out: Path | None, artifacts_root: Path, resume: bool, progress: str, quiet: bool,
    nproc_per_node: int | None, nnodes: str, rdzv_endpoint: str | None, rdzv_id: str,
) -> None:
    """Run PIPELINE_FILE (load data, build the model, train, evaluate, export), or continue RUN_FOLDER with --resume."""
    from pipeline_core.cli.summary import print_summary
    from pipeline_core.pipeline.runner import find_unfinished, load_pipeline, load_run, resolve_device, run_pipeline
    from pipeline_core.run import artifacts, distributed

    started = time.perf_counter()
    if target.is_dir():
        if not resume:
            raise ConfigError(f"{target} is a run folder; add --resume to continue it, or give a pipeline file")
        if overrides or out:
            raise ConfigError("--resume of a run folder keeps its configuration and folder; drop --set and --out")
        config, host = load_run(target)
        out = target
    else:
        if resume and overrides:
            raise ConfigError("--resume keeps the run's configuration; drop --set (start a new run to change it)")
        config, host = load_pipeline(target, overrides)
        if config.sweep is not None:
            click.echo(f"note: {target} has a [sweep] table; this is one run with the values as written (`pipeline sweep {target}` searches)", err=True)

    strategy = config.train.strategy if config.train else "single"
    processes = nproc_per_node or (config.train.nproc_per_node if config.train else 1)
    if strategy != "ddp" and (nproc_per_node or nnodes != "1"):
        raise ConfigError("--nproc-per-node/--nnodes need train.strategy = 'ddp' (add --set train.strategy=ddp)")
    if strategy == "ddp" and not distributed.launched() and (processes > 1 or nnodes != "1"):
        # the launcher's parent: pick the run folder once, then start every process on it
        distributed.check_sync_batchnorm(strategy, config.train.sync_batchnorm, resolve_device(config.pipeline.device))
        if resume:
            out = out or find_unfinished(artifacts_root, config.name)
        else:
            out = artifacts.new_run_dir(artifacts_root, config.name, out)
        worker = ["run", str(target), "--out", str(out), "--progress", "none" if quiet else progress]
        worker += [f"--set={item}" for item in overrides] + (["--resume"] if resume else [])
        if target.is_dir():
            worker = ["run", str(target), "--resume", "--progress", "none" if quiet else progress]
        distributed.launch(worker, processes, nnodes, rdzv_endpoint, rdzv_id)
        click.echo(f"run folder: {out}   ({time.perf_counter() - started:.1f} s, {processes} process(es) per node)")
        return

    result = run_pipeline(config, host, out=out, artifacts_root=artifacts_root, quiet=quiet, progress=progress, resume=resume)
    if result.is_main:
        print_summary(result, time.perf_counter() - started)


COMMANDS = [run]
