"""Plugin discovery (entry points, pipeline-file modules), registration checks and conflicts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipeline_core.components.registry import Registry
from pipeline_core.errors import PluginError
from pipeline_core.host.build import build_host
from pipeline_core.pipeline.runner import load_pipeline, run_pipeline

from helpers import IRIS_FAST

DEMO_PLUGIN = '''
import click
import torch
from torch import nn
from pipeline_core import DataSpec, hookimpl


def linear(spec: DataSpec, *, bias: bool = True) -> nn.Module:
    """One linear layer."""
    return nn.Linear(spec.input_shape[0], spec.num_outputs, bias=bias)


@hookimpl
def register_models(register):
    register("demo_linear", linear)


@hookimpl
def register_commands(cli):
    @cli.command()
    def hello():
        """Say hello from the demo plugin."""
        click.echo("hello from demo")
'''


def make_distribution(site: Path, module: str, source: str, dist: str = "demo-plugin", version: str = "1.2.3") -> Path:
    """A minimal installed distribution: a module plus a .dist-info with an entry point."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[pipeline_core]\n{module} = {module}\n")
    return site


@pytest.fixture
def demo_site(tmp_path, monkeypatch, isolated_plugins):
    site = make_distribution(tmp_path / "site", "demo_ep_plugin", DEMO_PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("demo_ep_plugin", None)


def test_entry_point_plugin_is_discovered_with_its_version(demo_site):
    host = build_host()
    assert host.plugins["demo_ep_plugin"].source == "entry point"
    assert host.plugins["demo_ep_plugin"].version == "1.2.3"
    assert host.plugins["demo_ep_plugin"].distribution == "demo-plugin"
    assert host.registry.get("model", "demo_linear").plugin == "demo_ep_plugin"


def test_entry_point_plugin_runs_in_a_pipeline(demo_site, write_pipeline, tmp_path):
    text = IRIS_FAST.replace('name = "mlp"\nhidden_sizes = [16, 8]\nbatch_norm = [true, false]', 'name = "demo_linear"')
    config, host = load_pipeline(write_pipeline(text))
    run = run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    assert isinstance(run.model.network, __import__("torch").nn.Linear)
    assert run.export_report["onnx"]["passed"]


def test_entry_point_command_through_the_console_script(demo_site):
    env = {**os.environ, "PYTHONPATH": str(demo_site)}
    script = Path(sys.executable).parent / "pipeline"
    hello = subprocess.run([str(script), "hello"], capture_output=True, text=True, env=env, timeout=120)
    assert hello.returncode == 0, hello.stderr
    assert hello.stdout.strip() == "hello from demo"
    listing = subprocess.run([str(script), "plugins", "--json"], capture_output=True, text=True, env=env, timeout=120)
    entries = {entry["name"]: entry for entry in json.loads(listing.stdout)}
    assert entries["demo_ep_plugin"]["version"] == "1.2.3"
    assert entries["demo_ep_plugin"]["components"] == {"model": ["demo_linear"]}
    assert entries["demo_ep_plugin"]["hooks"] == ["register_commands", "register_models"]


def test_a_distribution_installed_or_removed_in_a_running_process_is_seen(tmp_path, monkeypatch, isolated_plugins):
    """Entry points are read once per import path (a sweep builds a host per trial); a distribution
    installed into, or removed from, a folder already on the path is seen by the next host."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    assert "late_ep_plugin" not in build_host().plugins
    time.sleep(0.05)  # a folder's modification time moves in ticks of a few milliseconds
    make_distribution(site, "late_ep_plugin", DEMO_PLUGIN, dist="late-plugin")
    try:
        assert build_host().plugins["late_ep_plugin"].version == "1.2.3"
        time.sleep(0.05)
        shutil.rmtree(site / "late_plugin-1.2.3.dist-info")
        assert "late_ep_plugin" not in build_host().plugins
    finally:
        sys.modules.pop("late_ep_plugin", None)


def test_entry_point_that_fails_to_import_is_named(tmp_path, monkeypatch, isolated_plugins):
    site = make_distribution(tmp_path / "site", "broken_ep_plugin", "raise RuntimeError('boom at import')", dist="broken")
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(PluginError, match=r"plugin 'broken_ep_plugin' \(entry point 'broken_ep_plugin'\) failed to import: RuntimeError: boom at import"):
        build_host()


def test_pipeline_file_plugin_by_path_and_by_module_name(write_pipeline, tmp_path, isolated_plugins):
    (tmp_path / "local_models.py").write_text(textwrap.dedent(DEMO_PLUGIN).replace("demo_linear", "local_linear"))
    (tmp_path / "local_module.py").write_text(textwrap.dedent(DEMO_PLUGIN).replace("demo_linear", "module_linear"))
    text = IRIS_FAST.replace("seed = 3", 'seed = 3\nplugins = ["local_models.py", "local_module"]')
    config, host = load_pipeline(write_pipeline(text))
    assert host.plugins["local_models.py"].source == "pipeline file"
    assert host.registry.get("model", "local_linear").plugin == "local_models.py"
    assert host.registry.get("model", "module_linear").plugin == "local_module"
    sys.modules.pop("local_module", None)


def test_pipeline_file_plugin_that_fails_to_import_is_named(write_pipeline, tmp_path):
    (tmp_path / "bad_plugin.py").write_text("import not_a_real_module_xyz\n")
    text = IRIS_FAST.replace("seed = 3", 'seed = 3\nplugins = ["bad_plugin.py"]')
    with pytest.raises(PluginError, match="plugin file 'bad_plugin.py' failed to import: ModuleNotFoundError: No module named 'not_a_real_module_xyz'"):
        load_pipeline(write_pipeline(text))


def test_duplicate_name_names_both_plugins(write_pipeline, tmp_path):
    (tmp_path / "clash.py").write_text(textwrap.dedent('''
        from pipeline_core import hookimpl
        from pipeline_core_plugins.datasets.iris import iris

        @hookimpl
        def register_datasets(register):
            register("iris", iris)
    '''))
    text = IRIS_FAST.replace("seed = 3", 'seed = 3\nplugins = ["clash.py"]')
    with pytest.raises(PluginError) as caught:
        load_pipeline(write_pipeline(text))
    assert "dataset 'iris' is registered twice: by plugin 'plugins.datasets.iris' and by plugin 'clash.py'" in str(caught.value)


def test_error_inside_a_register_hook_names_the_plugin(write_pipeline, tmp_path):
    (tmp_path / "raises.py").write_text(textwrap.dedent('''
        from pipeline_core import hookimpl

        @hookimpl
        def register_losses(register):
            raise ValueError("cannot register today")
    '''))
    text = IRIS_FAST.replace("seed = 3", 'seed = 3\nplugins = ["raises.py"]')
    with pytest.raises(PluginError, match="plugin 'raises.py' failed in register_losses: ValueError: cannot register today"):
        load_pipeline(write_pipeline(text))


def test_hook_with_a_wrong_signature_is_refused(write_pipeline, tmp_path):
    (tmp_path / "wrong.py").write_text("from pipeline_core import hookimpl\n\n@hookimpl\ndef register_models(registrar):\n    pass\n")
    text = IRIS_FAST.replace("seed = 3", 'seed = 3\nplugins = ["wrong.py"]')
    with pytest.raises(PluginError, match="plugin 'wrong.py' cannot be registered"):
        load_pipeline(write_pipeline(text))


class TestRegisterChecks:
    def _add(self, factory, name="thing", kind="model"):
        Registry().add(kind, name, factory, plugin="tests")

    def test_name_must_be_an_identifier(self):
        with pytest.raises(PluginError, match="plugin 'tests' registered a model named 'Bad Name'"):
            self._add(lambda spec: None, name="Bad Name")

    def test_component_must_be_callable(self):
        with pytest.raises(PluginError, match="non-callable 42"):
            self._add(42)

    def test_context_arity_is_checked(self):
        def two(spec, extra, *, width: int = 1):
            return None

        with pytest.raises(PluginError, match=r"model 'thing' of plugin 'tests': expected 1 positional parameter\(s\).*found 2 \(spec, extra\)"):
            self._add(two)

    def test_options_need_annotations(self):
        def unannotated(spec, *, width=1):
            return None

        with pytest.raises(PluginError, match="option 'width' needs a type annotation"):
            self._add(unannotated)

    def test_kwargs_are_refused(self):
        def loose(spec, **options):
            return None

        with pytest.raises(PluginError, match=r"\*args/\*\*kwargs cannot be validated"):
            self._add(loose)

    def test_check_must_be_callable(self):
        with pytest.raises(PluginError, match="non-callable check"):
            Registry().add("model", "thing", lambda spec: None, "tests", check="nope")  # type: ignore[arg-type]


class TestEnvironmentLimits:
    def test_only_named_plugins_load(self, monkeypatch):
        monkeypatch.setenv("PIPELINE_CORE_PLUGINS", "plugins.stages,plugins.models.mlp")
        host = build_host()
        assert set(host.plugins) == {"plugins.stages", "plugins.models.mlp"}
        assert host.registry.names("dataset") == []

    def test_blocked_plugin_does_not_load(self, monkeypatch):
        monkeypatch.setenv("PIPELINE_CORE_BLOCK_PLUGINS", "plugins.datasets.iris")
        host = build_host()
        assert "plugins.datasets.iris" not in host.plugins
        assert "iris" not in host.registry.names("dataset")
        assert "mlp" in host.registry.names("model")
