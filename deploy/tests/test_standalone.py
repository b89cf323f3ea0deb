"""The one-file ``predict.py`` (``standalone.script()``): it runs where the deploy package cannot be
imported, as ``python -P predict.py`` runs it, and it holds every public name of the modules it is
built from, so what a bundle's script can do is what the package can do."""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline_core_deploy import predict, standalone

from bundles import copy_bundle
from processes import COMMAND_SECONDS, run
from samples import assert_same_columns, expected_predictions, metadata_of, read_columns, rows_for, write_inputs

#: a package of the same name, first on the import path: any import of the deploy package fails
BLOCKER = "raise ImportError('the deploy package is blocked: the one-file predict.py must not import it')\n"
#: runs a script as a module (not as __main__) and prints the names it binds and the plain values among them
NAMES = ("import json, runpy, sys; found = runpy.run_path(sys.argv[1], run_name='bundle_predict'); "
         "print(json.dumps({name: repr(value) if isinstance(value, (str, int, float, tuple, dict)) else None "
         "for name, value in found.items()}))")


def run_in(env: dict[str, str], args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """:func:`processes.run` with ``env`` added to the environment."""
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=COMMAND_SECONDS, env={**os.environ, **env})


def public_names(module: str) -> list[str]:
    """The public names a module of the script binds at its top level (not the ones it imports)."""
    tree = ast.parse((Path(standalone.__file__).parent / f"{module}.py").read_text(encoding="utf-8"))
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [name.id for target in targets for name in ast.walk(target) if isinstance(name, ast.Name)]
    return [name for name in names if not name.startswith("_")]


@pytest.fixture
def blocked(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``import pipeline_core_deploy`` fails, whatever the interpreter's flags."""
    (tmp_path / "blocker" / "pipeline_core_deploy").mkdir(parents=True)
    (tmp_path / "blocker" / "pipeline_core_deploy" / "__init__.py").write_text(BLOCKER)
    return {"PYTHONPATH": str(tmp_path / "blocker")}


@pytest.fixture
def here(iris_bundle: Path, tmp_path: Path) -> Path:
    """A folder holding ``bundle/`` (a sealed copy of the iris bundle, its predict.py the one-file build) and rows."""
    copy_bundle(iris_bundle, tmp_path).rename(tmp_path / "bundle")
    metadata = metadata_of(tmp_path / "bundle")
    write_inputs(tmp_path / "rows.csv", rows_for(metadata, 6), metadata["feature_names"])
    return tmp_path


def test_the_blocker_blocks(here, blocked):
    (here / "probe.py").write_text("import pipeline_core_deploy\n")
    probe = run_in(blocked, [sys.executable, "-P", "probe.py"], here)
    assert probe.returncode == 1 and "the deploy package is blocked" in probe.stderr, probe.stderr


@pytest.mark.parametrize("flags", [["-P"], []], ids=["python -P", "python"])
def test_the_script_predicts_with_the_deploy_package_blocked(here, blocked, flags):
    done = run_in(blocked, [sys.executable, *flags, "bundle/predict.py", "bundle", "--input", "rows.csv", "--output", "out.csv"], here)
    assert done.returncode == 0, done.stderr
    metadata = metadata_of(here / "bundle")
    assert_same_columns(read_columns(here / "out.csv"), expected_predictions(here / "bundle", rows_for(metadata, 6)))


def test_the_script_gives_the_packages_messages_and_exit_codes(here, blocked):
    (here / "bad.csv").write_text("1,2,3\n")
    args = ["bundle", "--input", "bad.csv"]
    alone = run_in(blocked, [sys.executable, "-P", "bundle/predict.py", *args], here)
    package = run([sys.executable, "-m", "pipeline_core_deploy.predict", *args], here)
    assert alone.returncode == package.returncode == 2
    assert alone.stderr == package.stderr
    assert "bad.csv, line 1: data row 1 has 3 values" in alone.stderr


def test_the_script_holds_every_public_name_of_its_modules(here, blocked):
    done = run_in(blocked, [sys.executable, "-P", "-c", NAMES, "bundle/predict.py"], here)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    for module in standalone.MODULES:
        loaded = importlib.import_module(f"pipeline_core_deploy.{module}")
        for name in public_names(module):
            assert name in found, f"{module}.{name} is not in the one-file predict.py"
            value = getattr(loaded, name)
            if isinstance(value, (str, int, float, tuple, dict)):
                assert found[name] == repr(value), f"{module}.{name}"
    assert set(predict.__all__) <= set(found)


def test_predict_re_exports_every_public_name_of_the_modules():
    """``from pipeline_core_deploy import predict`` is the one import path callers use."""
    for module in standalone.MODULES:
        loaded = importlib.import_module(f"pipeline_core_deploy.{module}")
        for name in public_names(module):
            assert name in predict.__all__, f"{module}.{name} is missing from predict.__all__"
            assert getattr(predict, name) is getattr(loaded, name), f"predict.{name} is not {module}.{name}"


def test_the_build_is_what_python_m_prints(tmp_path):
    printed = run([sys.executable, "-m", "pipeline_core_deploy.standalone"], tmp_path)
    assert printed.returncode == 0 and printed.stdout == standalone.script()
    compile(printed.stdout, "predict.py", "exec")


@pytest.mark.parametrize(("module", "source", "message"), [
    ("manifest", "from pipeline_core_deploy.common import MANIFEST as NAME\n", "without renaming"),
    ("manifest", "from pipeline_core_deploy.opening import open_bundle\n", "of a module listed before it"),
    ("manifest", "import pipeline_core_deploy.common\n", "use `from pipeline_core_deploy.MODULE import NAME`"),
    ("manifest", "def f():\n    from pipeline_core_deploy.common import MANIFEST\n", "inside a block"),
    ("manifest", "from .common import MANIFEST\n", "without renaming"),
    ("manifest", "MANIFEST = 'other.json'\n", "which common.py binds too"),
    ("manifest", "json = 1\n", "also named by an import"),
])
def test_the_build_refuses_what_one_file_cannot_hold(monkeypatch, module, source, message):
    real = standalone._source
    monkeypatch.setattr(standalone, "_source", lambda name: real(name) + "\n" + source if name == module else real(name))
    with pytest.raises(standalone.BuildError, match=re.escape(message)):
        standalone.script()
