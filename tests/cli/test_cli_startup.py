"""The commands a person types to look around answer at once: ``pipeline --help``, ``pipeline plugins``
and ``pipeline validate`` (its model check cached) never import torch, whose import alone takes
seconds. Each is run as a real process and asked, at its end, which modules it imported. Timings are
not asserted here (the machine's load would make them flaky): benchmarks/cli_startup.py prints them.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

from pipeline_core.discovery.builtins import DEFAULT_PLUGINS, OPTIONAL_PLUGINS, module_of

from helpers import ROOT

IRIS = ROOT / "pipelines" / "iris.toml"

# Runs the CLI in-process, then reports what it imported on stderr's last line (after any output).
PROBE = """
import atexit, json, sys
atexit.register(lambda: sys.stderr.write("\\nMODULES " + json.dumps(sorted(sys.modules)) + "\\n"))
from pipeline_core.cli import main
sys.argv = ["pipeline", *sys.argv[1:]]
main()
"""


def probe(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``pipeline ARGS`` in a fresh process; its result and the modules it had imported at exit."""
    result = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=300,
                            env={**os.environ, **(env or {})}, cwd=ROOT)
    head, _, modules = result.stderr.rpartition("\nMODULES ")
    result.stderr = head
    return result, set(json.loads(modules))


def test_no_builtin_plugin_adds_a_command():
    """The CLI lists its commands without loading the built-ins, which holds only while none adds one."""
    for name in (*DEFAULT_PLUGINS, *OPTIONAL_PLUGINS):
        assert not hasattr(importlib.import_module(module_of(name)), "register_commands"), name


def test_help_imports_no_plugin_and_no_torch():
    result, modules = probe("--help")
    assert result.returncode == 0, result.stderr
    assert "validate" in result.stdout and "plugins" in result.stdout and "predict" in result.stdout
    assert "torch" not in modules
    assert not [name for name in modules if name.startswith("pipeline_core_plugins")]


def test_plugins_lists_every_builtin_without_torch():
    """``pipeline plugins`` registers every built-in (their hooks and options) and imports no torch:
    a plugin module imports torch inside the functions that use it."""
    result, modules = probe("plugins", "--json")
    assert result.returncode == 0, result.stderr
    listed = {plugin["name"] for plugin in json.loads(result.stdout)}
    assert set(DEFAULT_PLUGINS) <= listed
    assert "torch" not in modules and "torchvision" not in modules


def test_validate_answers_a_passed_model_check_from_the_cache_without_torch():
    """The first validate runs the model check (torch); the second, same file, reads its outcome from
    the cache (the test's own folder, conftest) and prints the same, exits the same, imports no torch."""
    cold, cold_modules = probe("validate", str(IRIS))
    warm, warm_modules = probe("validate", str(IRIS))
    assert cold.returncode == warm.returncode == 0, cold.stderr
    assert "torch" in cold_modules
    assert warm.stdout == cold.stdout and "model 'mlp': outputs (N, 3) as the data needs" in warm.stdout
    assert "torch" not in warm_modules
