"""``pipeline-deploy``: the deploy side's own command line, for an environment without PyTorch
or pipeline-core (``pip install ./deploy``): ``serve`` and ``predict``."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline_core_deploy import __version__
from pipeline_core_deploy import predict as deploy
from pipeline_core_deploy.serve.cli import serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pipeline-deploy")
def cli() -> None:
    """Serve and run pipeline-core bundles with NumPy and onnxruntime alone."""


@cli.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path), help="Rows to predict: .csv, .npy or .json.")
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), help="Write predictions here (.csv or .json); default: stdout as CSV.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1024, show_default=True, help="Rows per onnxruntime call.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True, help="onnxruntime provider.")
def predict(bundle: Path, input_path: Path, output: Path | None, batch_size: int, device: str) -> None:
    """Predict with BUNDLE (a bundle folder, or a run folder holding bundle/)."""
    try:
        deploy.predict(bundle, input_path, output, batch_size, device)
    except deploy.DeployError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(error.exit_code) from None


cli.add_command(serve)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="pipeline-deploy")
