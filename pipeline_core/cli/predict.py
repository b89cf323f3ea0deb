"""``pipeline predict``: run a deploy bundle on rows from a file, with onnxruntime only.

Nothing on this path imports torch (a test checks it), so predictions start fast and the same code
runs on a machine that has only NumPy and onnxruntime (as the bundle's ``predict.py``).
"""

from __future__ import annotations

from pathlib import Path

import click

from pipeline_core.errors import ConfigError
from pipeline_core_deploy import predict as deploy


@click.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path), help="Rows to predict: .csv, .npy or .json.")
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), help="Write predictions here (.csv or .json); default: stdout as CSV.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1024, show_default=True, help="Rows per onnxruntime call.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True, help="onnxruntime provider.")
def predict(bundle: Path, input_path: Path, output: Path | None, batch_size: int, device: str) -> None:
    """Predict with BUNDLE (a bundle folder, or a run folder holding bundle/)."""
    try:
        records = deploy.predict(bundle, input_path, output, batch_size, device)
    except deploy.DeployError as error:
        raise ConfigError(str(error)) from None
    if output is not None:
        click.echo(f"{len(records)} predictions written to {output}", err=True)


COMMANDS = [predict]
