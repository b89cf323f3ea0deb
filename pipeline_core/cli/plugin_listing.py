"""``pipeline plugins``: every loaded plugin, its version, its hooks and its components (the
``plugin`` group, for writing plugins, is :mod:`pipeline_core.cli.plugin_authoring`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # the config reader and the plugin machinery are imported when the command runs
    from pipeline_core.components.host import Host


def describe(host: Host) -> list[dict[str, Any]]:
    """One entry per plugin: name, source, version, hooks implemented, components by kind; a broken
    plugin has ``status`` "broken", its ``error`` and the setting that ``blocks`` it."""
    from pipeline_core.discovery.build import BLOCK_ENV

    entries = []
    for name, info in host.plugins.items():
        plugin = host.manager.get_plugin(name)
        hooks = sorted(caller.name for caller in host.manager.get_hookcallers(plugin) or [])
        components: dict[str, list[str]] = {}
        for component in host.registry.by_plugin(name):
            components.setdefault(component.kind, []).append(component.name)
        entries.append({
            "name": name, "source": info.source, "version": info.version, "distribution": info.distribution,
            "status": "loaded", "hooks": hooks, "components": components,
        })
    for name, info in host.broken.items():
        blocks = f"{BLOCK_ENV}={name}" if info.source in ("builtin", "entry point") else "remove it from [pipeline] plugins"
        entries.append({
            "name": name, "source": info.source, "version": info.version, "distribution": info.distribution,
            "status": "broken", "error": info.error, "blocks": blocks, "hooks": [], "components": {},
        })
    return entries


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--pipeline", "pipeline_file", type=click.Path(path_type=Path, dir_okay=False), help="Also load the plugins this pipeline file names.")
def plugins(as_json: bool, pipeline_file: Path | None) -> None:
    """List plugins, their versions, hooks and registered components."""
    from pipeline_core.discovery.build import build_host

    local: list[str] = []
    if pipeline_file is not None:  # the config reader only then: listing the plugins needs none of it
        from pipeline_core.config.file import plugin_references, read_toml

        raw, _ = read_toml(pipeline_file)
        local = plugin_references(raw, pipeline_file)
    entries = describe(build_host(local, base_dir=pipeline_file.parent if pipeline_file else None, keep_broken=True))
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    for entry in entries:
        origin = entry["distribution"] if entry["source"] == "entry point" else entry["source"]
        click.echo(f"{entry['name']}  ({origin} {entry['version']})")
        if entry["status"] == "broken":
            click.secho(f"  BROKEN, left out: {entry['error']}", fg="red")
            click.echo(f"  to run without it: {entry['blocks']}")
            continue
        for kind, names in entry["components"].items():
            click.echo(f"  {kind}: {', '.join(names)}")
        click.echo(f"  hooks: {', '.join(entry['hooks'])}")


COMMANDS = [plugins]
