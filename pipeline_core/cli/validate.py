"""``pipeline validate``: check a pipeline file without running it."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline_core.cli.options import overrides, pipeline_file


@click.command()
@pipeline_file
@overrides
def validate(pipeline_file: Path, overrides: tuple[str, ...]) -> None:
    """Check PIPELINE_FILE (sections, component names, options, stage order, the model's outputs) without loading data."""
    from pipeline_core.model.check import check_from_spec
    from pipeline_core.pipeline.load import load_pipeline

    config, host = load_pipeline(pipeline_file, overrides)
    model = check_from_spec(config, host)
    stages = " → ".join(config.pipeline.stages)
    click.echo(f"{pipeline_file}: valid ({stages})")
    if model:
        click.echo(model)
    if config.sweep is not None:
        sweep = config.sweep
        click.echo(
            f"[sweep]: valid ({len(sweep.parameters)} parameters, {sweep.objective} ({sweep.resolved_direction}), "
            f"sampler {sweep.sampler.name}, pruner {sweep.pruner.name}): `pipeline sweep {pipeline_file}`"
        )


COMMANDS = [validate]
