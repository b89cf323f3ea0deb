"""``pipeline plugin``, the commands for writing plugins: ``pipeline plugin new`` starts a plugin
distribution (listing the loaded plugins is ``pipeline plugins``: :mod:`pipeline_core.cli.plugin_listing`)."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def plugin() -> None:
    """Write plugins for pipeline-core."""


@plugin.command()
@click.argument("name")
@click.option("--directory", type=click.Path(path_type=Path, file_okay=False), default=Path("."), show_default=True, help="Where to create the NAME folder.")
def new(name: str, directory: Path) -> None:
    """Create NAME/: a plugin distribution with one component of every kind, a pipeline and a test."""
    from pipeline_core.cli.scaffold import create

    root = create(name, directory)
    click.echo(f"created {root}: pip install -e '{root}[test]' && pytest {root}")


COMMANDS = [plugin]
