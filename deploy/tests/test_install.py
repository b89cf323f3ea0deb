"""The deploy distribution's install: onnxruntime comes with an extra, ``cpu`` (onnxruntime) or
``gpu`` (onnxruntime-gpu), never both; ``make test-deploy`` builds this suite's environment afresh
from ``./deploy[cpu,test]`` (and says so in ``PIPELINE_DEPLOY_RUNTIME``), so there the CPU build
alone must be installed; and without any runtime the commands say which extra to install."""

from __future__ import annotations

import importlib.metadata as distributions
import os
import sys
from pathlib import Path

import pytest

from processes import run

BLOCKED_RUNTIME = """
import sys
class NoRuntime:
    def find_spec(self, name, path=None, target=None):
        if name == "onnxruntime" or name.startswith("onnxruntime."):
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, NoRuntime())
from pipeline_core_deploy.cli import main
sys.argv = ["pipeline-deploy", *sys.argv[1:]]
main()
"""


def _installed(name: str) -> bool:
    try:
        distributions.distribution(name)
    except distributions.PackageNotFoundError:
        return False
    return True


def test_the_runtime_is_an_extra_of_its_own():
    requires = distributions.requires("pipeline-core-deploy") or []
    unconditional = [r for r in requires if r.startswith("onnxruntime") and "extra ==" not in r]
    assert unconditional == [], f"onnxruntime must come with the cpu or gpu extra, not always: {unconditional}"
    assert any(r.startswith("onnxruntime>=") and 'extra == "cpu"' in r for r in requires), requires
    assert any(r.startswith("onnxruntime-gpu>=") and 'extra == "gpu"' in r for r in requires), requires


@pytest.mark.skipif(os.environ.get("PIPELINE_DEPLOY_RUNTIME") != "cpu", reason="runs in the environment make test-deploy builds from ./deploy[cpu,test]")
def test_the_cpu_install_holds_the_cpu_runtime_alone():
    assert _installed("onnxruntime"), "pip install './deploy[cpu]' did not bring onnxruntime"
    assert not _installed("onnxruntime-gpu"), "pip install './deploy[cpu]' brought onnxruntime-gpu (about 340 MB) too"


def test_without_a_runtime_the_command_says_which_to_install(iris_bundle: Path, tmp_path: Path):
    (tmp_path / "rows.csv").write_text("5.1,3.5,1.4,0.2\n")
    done = run([sys.executable, "-c", BLOCKED_RUNTIME, "predict", str(iris_bundle), "--input", "rows.csv"], tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "onnxruntime is not installed" in done.stderr and "pipeline-core-deploy[cpu]" in done.stderr and "[gpu]" in done.stderr
    assert "Traceback" not in done.stderr
