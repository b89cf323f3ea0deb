"""One broken installed plugin must not take the others down: real distributions installed with pip
into a folder the `pipeline` console script sees (as a user's environment would hold them), one
whose entry point fails to import, one that registers a name a built-in has, one with a misspelled
hook, and a healthy one whose command must keep working."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import ROOT, install

PIPELINE = str(Path(sys.executable).parent / "pipeline")
IRIS = ROOT / "pipelines" / "iris.toml"

DISTRIBUTIONS = {
    # distribution name → (entry-point name, module source)
    "pipeline-missing-dependency": ("missing_dependency", "import a_dependency_nobody_installed\n"),
    "pipeline-clashing": ("clashing", '''
        from torch import nn
        from pipeline_core import DataSpec, hookimpl

        def mlp(spec: DataSpec) -> nn.Module:
            return nn.Linear(spec.input_shape[0], spec.num_outputs)

        @hookimpl
        def register_models(register):
            register("mlp", mlp)
    '''),
    "pipeline-misspelled": ("misspelled", '''
        from pipeline_core import hookimpl

        @hookimpl
        def register_metric(register):
            pass
    '''),
    "pipeline-healthy": ("healthy", '''
        import click
        from pipeline_core import hookimpl

        @hookimpl
        def register_commands(cli):
            @cli.command()
            def greet():
                """Say hello."""
                click.echo("hello from a healthy plugin")
    '''),
}


def _distribution(folder: Path, dist: str, entry: str, source: str) -> Path:
    module = dist.replace("-", "_")
    folder.mkdir(parents=True)
    (folder / f"{module}.py").write_text(textwrap.dedent(source))
    (folder / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{dist}"
        version = "0.4.2"

        [project.entry-points.pipeline_core]
        {entry} = "{module}"

        [tool.setuptools]
        py-modules = ["{module}"]
    """))
    return folder


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    """The four distributions installed into one site folder; the environment that sees it."""
    sources, site = tmp_path_factory.mktemp("sources"), tmp_path_factory.mktemp("site")
    env: dict[str, str] = {}
    for dist, (entry, source) in DISTRIBUTIONS.items():
        env = install(_distribution(sources / dist, dist, entry, source), site)
    env.pop("PIPELINE_CORE_PLUGINS", None)
    env.pop("PIPELINE_CORE_BLOCK_PLUGINS", None)
    return env


def _pipeline(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PIPELINE, *args], capture_output=True, text=True, env=env, timeout=300)


def test_pipeline_plugins_lists_everything_and_marks_the_broken_ones(environment):
    listed = _pipeline(environment, "plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    entries = {entry["name"]: entry for entry in json.loads(listed.stdout)}
    assert entries["plugins.datasets.iris"]["status"] == "loaded"  # the built-ins are all there
    assert entries["healthy"]["status"] == "loaded" and entries["healthy"]["distribution"] == "pipeline-healthy"
    broken = {name: entry for name, entry in entries.items() if entry["status"] == "broken"}
    assert set(broken) == {"missing_dependency", "clashing", "misspelled"}
    assert broken["missing_dependency"]["error"] == (
        "plugin 'missing_dependency' (entry point 'pipeline_missing_dependency') failed to import: "
        "ModuleNotFoundError: No module named 'a_dependency_nobody_installed'"
    )
    assert "model 'mlp' is registered twice: by plugin 'plugins.models.mlp' and by plugin 'clashing'" in broken["clashing"]["error"]
    assert "implements 'register_metric', which is not a hook" in broken["misspelled"]["error"]
    assert "did you mean 'register_metrics'?" in broken["misspelled"]["error"]
    for name, entry in broken.items():
        assert entry["blocks"] == f"PIPELINE_CORE_BLOCK_PLUGINS={name}"
        assert (entry["distribution"], entry["version"], entry["components"]) == (f"pipeline-{name.replace('_', '-')}", "0.4.2", {})
    assert entries["plugins.models.mlp"]["components"] == {"model": ["mlp"]}  # the clash left the built-in alone

    text = _pipeline(environment, "plugins")
    assert text.returncode == 0
    assert "clashing  (pipeline-clashing 0.4.2)\n  BROKEN, left out: model 'mlp' is registered twice" in text.stdout
    assert "  to run without it: PIPELINE_CORE_BLOCK_PLUGINS=missing_dependency" in text.stdout


def test_other_commands_stop_and_name_the_setting_that_blocks_the_broken_plugins(environment):
    result = _pipeline(environment, "validate", str(IRIS))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "ModuleNotFoundError: No module named 'a_dependency_nobody_installed'" in result.stderr
    assert "model 'mlp' is registered twice" in result.stderr
    setting = re.search(r"to run without them, set PIPELINE_CORE_BLOCK_PLUGINS=(\S+) ", result.stderr)
    assert setting is not None and set(setting.group(1).split(",")) == {"missing_dependency", "clashing", "misspelled"}

    blocked = _pipeline({**environment, "PIPELINE_CORE_BLOCK_PLUGINS": "missing_dependency,clashing,misspelled"}, "validate", str(IRIS))
    assert blocked.returncode == 0, blocked.stderr
    assert "pipelines/iris.toml: valid" in blocked.stdout


def test_a_healthy_plugins_command_still_works_beside_broken_ones(environment):
    result = _pipeline(environment, "greet")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello from a healthy plugin\n"
    assert "warning: plugin 'clashing' is broken and left out (see `pipeline plugins`)" in result.stderr
