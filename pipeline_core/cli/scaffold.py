"""``pipeline plugin new``: the skeleton of a plugin distribution that installs and passes its own test."""

from __future__ import annotations

import re
from pathlib import Path

import jinja2

from pipeline_core.errors import ConfigError
from pipeline_core.version import __version__

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "plugin"
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*([-_][A-Za-z0-9]+)*$")


def names(distribution: str) -> dict[str, str]:
    """``pipeline-widgets`` → module ``pipeline_widgets``, component prefix ``widgets``."""
    if not NAME.match(distribution):
        raise ConfigError(
            f"plugin name {distribution!r}: use letters and digits, words joined by '-' or '_' (e.g. pipeline-widgets)"
        )
    module = distribution.lower().replace("-", "_")
    prefix = module.removeprefix("pipeline_") or module
    return {"distribution": distribution, "module": module, "prefix": prefix, "core_version": __version__}


def create(distribution: str, parent: Path) -> Path:
    """Write the skeleton into ``parent/<distribution>``; refuses to touch an existing folder."""
    context = names(distribution)
    root = parent / distribution
    if root.exists():
        raise ConfigError(f"{root} already exists; choose another name or folder")
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    files = {
        "pyproject.toml": "pyproject.toml.j2",
        "README.md": "README.md.j2",
        "pipeline.toml": "pipeline.toml.j2",
        f"src/{context['module']}/__init__.py": "__init__.py.j2",
        f"tests/test_{context['prefix']}.py": "test_plugin.py.j2",
    }
    for target, template in files.items():
        path = root / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(environment.get_template(template).render(**context), encoding="utf-8")
    return root
