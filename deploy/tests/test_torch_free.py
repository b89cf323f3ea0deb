"""The point of this suite: the deploy side works where torch and pipeline-core are not installed.
If these fail, every other test here proves nothing about that."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pipeline_core_deploy

from processes import DEPLOY, run

ABSENT = ("torch", "torchvision", "pipeline_core", "pipeline_core_plugins")
ABSENT_DISTRIBUTIONS = ("torch", "torchvision", "pipeline-core")
REMEDY = (f"the deploy suite must run in an environment holding only the deploy distribution and its test extra "
          f"(`make test-deploy` builds .venv-deploy with `pip install -e './deploy[cpu,test]'`); this is {sys.executable}. "
          "If that is .venv-deploy, a dependency of deploy/pyproject.toml pulled it in: remove that dependency")

PROBE = f"""
import importlib.metadata, importlib.util, json
print(json.dumps({{
    "modules": [name for name in {ABSENT!r} if importlib.util.find_spec(name) is not None],
    "distributions": sorted(d.metadata["Name"].lower() for d in importlib.metadata.distributions()),
}}))
"""


def test_torch_is_not_importable_here():
    for name in ("torch", "torchvision"):
        assert importlib.util.find_spec(name) is None, f"{name} is importable: {REMEDY}"


def test_the_environment_has_no_torch_nor_pipeline_core(tmp_path):
    """Asked of the interpreter alone (-I, from an empty folder): ``python -m pytest`` from the
    repository root puts the checkout, and its pipeline_core folder, on the suite's own path."""
    probe = run([sys.executable, "-I", "-c", PROBE], tmp_path)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert found["modules"] == [], f"importable: {found['modules']}: {REMEDY}"
    installed = [name for name in ABSENT_DISTRIBUTIONS if name in found["distributions"]]
    assert installed == [], f"installed: {installed}: {REMEDY}"
    assert "pipeline-core-deploy" in found["distributions"]


def test_the_suite_runs_this_checkout_and_its_console_script():
    """An installed copy of another version would be tested in place of the files beside this suite."""
    assert Path(pipeline_core_deploy.__file__).parent == Path(__file__).resolve().parents[1] / "pipeline_core_deploy", (
        f"pipeline_core_deploy comes from {pipeline_core_deploy.__file__}, not this checkout: install it with pip install -e './deploy[cpu,test]'")
    assert DEPLOY.is_file(), f"no pipeline-deploy console script beside {sys.executable}: {REMEDY}"
