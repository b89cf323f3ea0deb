"""``pipeline inspect``: the model summary for a pipeline's data, without training."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from pipeline_core.cli.options import overrides, pipeline_file


@click.command()
@pipeline_file
@overrides
def inspect(pipeline_file: Path, overrides: tuple[str, ...]) -> None:
    """Load PIPELINE_FILE's data, build its model, and print layers, output shapes, parameters, size."""
    from pipeline_core.model.summary import summarize
    from pipeline_core.pipeline.runner import load_pipeline, run_pipeline

    config, host = load_pipeline(pipeline_file, (*overrides, 'pipeline.stages=["load_data", "build_model"]'))
    with tempfile.TemporaryDirectory() as scratch:
        run = run_pipeline(config, host, out=Path(scratch) / "inspect", quiet=True)
    assert run.data is not None and run.model is not None
    spec = run.data.spec
    example = run.data.splits["train"].head(2).inputs.to(run.device)
    summary = summarize(run.model, example)
    click.echo(f"{config.name}: {spec.task}, input {list(spec.input_shape)} {str(spec.input_dtype).removeprefix('torch.')}, "
               f"{spec.num_outputs} output(s); {', '.join(f'{n}: {len(s)} rows' for n, s in run.data.splits.items())}")
    click.echo(summary.text)
    click.echo(f"parameters: {summary.total_parameters:,} ({summary.trainable_parameters:,} trainable); "
               f"parameters and buffers: {summary.size_bytes / 1024:.1f} KiB")


COMMANDS = [inspect]
