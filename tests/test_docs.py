"""Meta-tests: every hook is documented with its exact signature, the README starts with the two
commands, and the public API for plugin authors is pinned."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pluggy
import pytest

import pipeline_core
from pipeline_core import hookspecs

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_GUIDE = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")

PUBLIC_API = [
    "ComponentConfig", "ConfigError", "DataBundle", "DataSpec", "DatasetContext", "ExportInfo", "Exporter",
    "Interrupted", "LRSchedule", "LoadedModel", "PipelineConfig", "PipelineError", "PluginError", "Predictions",
    "Register", "RunContext", "RunFailed", "Split", "Task", "TrainingPlan", "__version__", "hookimpl",
]


def hookspec_names() -> list[str]:
    return [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "pipeline_core_spec")]


def signature(name: str) -> str:
    """``before_stage(run: RunContext, stage: str) -> None`` as written in hookspecs.py."""
    fn = getattr(hookspecs, name)
    parameters = ", ".join(f"{p.name}: {p.annotation}" for p in inspect.signature(fn).parameters.values())
    return f"{name}({parameters}) -> {inspect.signature(fn).return_annotation}"


def test_there_are_hookspecs():
    assert len(hookspec_names()) == 15


@pytest.mark.parametrize("name", hookspec_names())
def test_hook_is_documented_with_its_exact_signature(name):
    assert f"### {name}" in PLUGIN_GUIDE, f"docs/plugins.md has no section for {name}"
    assert f"`{signature(name)}`" in PLUGIN_GUIDE, f"docs/plugins.md does not show {signature(name)}"
    section = PLUGIN_GUIDE.split(f"### {name}", 1)[1].split("\n### ", 1)[0]
    assert "```python" in section and "@hookimpl" in section, f"the {name} section has no example"


def test_public_api_is_pinned():
    assert sorted(pipeline_core.__all__) == sorted(PUBLIC_API)
    for name in PUBLIC_API:
        assert getattr(pipeline_core, name) is not None
    assert isinstance(pipeline_core.hookimpl, pluggy.HookimplMarker)
    documented = set(re.findall(r"`(\w+)`", PLUGIN_GUIDE.split("## The public API", 1)[1]))
    assert set(PUBLIC_API) <= documented


def test_public_callables_are_typed():
    for name in ("Register", "RunContext", "DataBundle", "ExportInfo", "Predictions"):
        obj = getattr(pipeline_core, name)
        for member_name, member in inspect.getmembers(obj, inspect.isfunction):
            if member_name.startswith("_") and member_name not in ("__call__", "__init__"):
                continue
            hints = inspect.signature(member)
            for parameter in hints.parameters.values():
                if parameter.name in ("self", "cls") or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                    continue
                assert parameter.annotation is not inspect.Parameter.empty, f"{name}.{member_name}({parameter.name}) is untyped"


def test_readme_starts_with_the_two_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```sh", 1)[1].split("```", 1)[0]
    assert "make run" in first_block and "make test" in first_block
    assert "pipeline run pipelines/iris.toml" in readme.split("```sh", 1)[1].split("##", 1)[0]
