"""The example plugin distribution and `pipeline plugin new`, installed for real (pip --target) and
discovered only through their entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline_core.cli import cli

from helpers import ROOT

EXAMPLE = ROOT / "examples" / "plugins" / "pipeline-handmade"
PIPELINE = str(Path(sys.executable).parent / "pipeline")


def install(source: Path, target: Path) -> dict[str, str]:
    """``pip install --target`` (no dependencies, no network) and the environment that sees it."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(target), str(source)],
        check=True, capture_output=True, timeout=300,
    )
    return {**os.environ, "PYTHONPATH": str(target)}


@pytest.fixture(scope="module")
def example_env(tmp_path_factory):
    return install(EXAMPLE, tmp_path_factory.mktemp("site"))


def test_example_is_found_only_through_its_entry_point(example_env, tmp_path):
    without = subprocess.run([PIPELINE, "validate", str(EXAMPLE / "pipeline.toml")], capture_output=True, text=True, timeout=120)
    assert without.returncode == 2 and "unknown dataset 'circles'" in without.stderr
    listing = subprocess.run([PIPELINE, "plugins", "--json"], capture_output=True, text=True, env=example_env, timeout=120)
    entry = {e["name"]: e for e in json.loads(listing.stdout)}["handmade"]
    assert (entry["source"], entry["distribution"], entry["version"]) == ("entry point", "pipeline-handmade", "0.3.0")
    assert entry["components"] == {"dataset": ["circles"], "model": ["handmade_mlp"], "loss": ["focal"]}
    assert {"before_stage", "after_stage", "register_datasets", "register_models", "register_losses"} <= set(entry["hooks"])


def test_example_pipeline_runs_and_its_custom_function_exports(example_env, tmp_path):
    run_dir = tmp_path / "run"
    result = subprocess.run([PIPELINE, "run", str(EXAMPLE / "pipeline.toml"), "--out", str(run_dir), "-q"],
                            capture_output=True, text=True, env=example_env, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads((run_dir / "export_report.json").read_text())
    assert {name: entry["passed"] for name, entry in report.items()} == {"onnx": True, "torchscript": True, "torch_export": True}
    assert report["torchscript"]["method"] == "script"  # hand_relu's scripting branch compiled
    assert json.loads((run_dir / "metrics.json").read_text())["test"]["accuracy"] > 0.9
    assert set(json.loads((run_dir / "stage_seconds.json").read_text())) == {"load_data", "build_model", "train", "evaluate", "export"}


def test_example_passes_its_own_tests(example_env):
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                            capture_output=True, text=True, env=example_env, cwd=EXAMPLE, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout


def test_plugin_new_writes_a_distribution_that_installs_and_passes_its_test(tmp_path):
    created = CliRunner().invoke(cli, ["plugin", "new", "pipeline-widgets", "--directory", str(tmp_path)])
    assert created.exit_code == 0, created.output
    root = tmp_path / "pipeline-widgets"
    assert (root / "src" / "pipeline_widgets" / "__init__.py").exists() and (root / "tests" / "test_widgets.py").exists()
    source = (root / "src" / "pipeline_widgets" / "__init__.py").read_text()
    for hook in ("datasets", "models", "optimizers", "schedulers", "losses", "metrics", "exporters", "stages"):
        assert f"def register_{hook}(register: Register)" in source
    # what authors start from is clean by a common linter's rules (run where the author would run it)
    lint = subprocess.run([str(Path(sys.executable).parent / "ruff"), "check", "--isolated", "--select", "E,F,W,I,UP,B",
                           "--line-length", "120", "--target-version", "py311", "."], capture_output=True, text=True, cwd=root, timeout=120)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    env = install(root, tmp_path / "site")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                            capture_output=True, text=True, env=env, cwd=root, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


@pytest.mark.parametrize("name, message", [("9lives", "use letters and digits"), ("bad name", "use letters and digits")])
def test_plugin_new_refuses_bad_names(tmp_path, name, message):
    result = CliRunner().invoke(cli, ["plugin", "new", name, "--directory", str(tmp_path)])
    assert result.exit_code == 2 and message in result.output


def test_plugin_new_never_overwrites(tmp_path):
    (tmp_path / "pipeline-widgets").mkdir()
    result = CliRunner().invoke(cli, ["plugin", "new", "pipeline-widgets", "--directory", str(tmp_path)])
    assert result.exit_code == 2 and "already exists" in result.output


def test_trace_hooks_prints_every_hook_call(tmp_path, write_pipeline):
    env = {**os.environ, "PIPELINE_CORE_TRACE_HOOKS": "1"}
    result = subprocess.run([PIPELINE, "run", str(write_pipeline()), "--out", str(tmp_path / "run"), "-q"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("[hooks] ")]
    assert "[hooks] register_datasets → plugins.datasets.iris" in lines
    assert any(line.startswith("[hooks] before_stage(run=RunContext('iris_fast'") and "stage='train'" in line for line in lines)
    assert sum("on_epoch_end(" in line for line in lines) == 3
    assert lines[-1].startswith("[hooks] after_pipeline(")
