"""Arguments and options shared by the commands that read a pipeline file."""

from __future__ import annotations

from pathlib import Path

import click

pipeline_file = click.argument("pipeline_file", type=click.Path(path_type=Path, dir_okay=False))
overrides = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value, e.g. --set train.epochs=10 (repeatable; VALUE is read as TOML).",
)
