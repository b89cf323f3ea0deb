"""The ``predict.py`` inside every bundle: one module that runs with Python, NumPy and onnxruntime
alone, as ``python bundle/predict.py bundle --input FILE``, even where the deploy package it was
copied from is not installed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pipeline_core_deploy import standalone

from bundles import copy_bundle
from processes import run
from samples import assert_same_columns, expected_predictions, metadata_of, read_columns, rows_for, write_inputs

#: runs a script as ``python SCRIPT ARGS`` would, with pipeline_core_deploy made unimportable
WITHOUT_THE_PACKAGE = ("import runpy, sys; sys.modules['pipeline_core_deploy'] = None; sys.argv = sys.argv[1:]; "
                       "runpy.run_path(sys.argv[0], run_name='__main__')")


@pytest.fixture
def here(iris_bundle: Path, tmp_path: Path) -> Path:
    """A folder holding ``bundle/``, a sealed copy of the iris bundle, to run commands from."""
    copy_bundle(iris_bundle, tmp_path).rename(tmp_path / "bundle")
    return tmp_path


def test_the_copy_is_the_one_file_build_of_the_installed_modules(iris_bundle):
    assert (iris_bundle / "predict.py").read_text(encoding="utf-8") == standalone.script()


@pytest.mark.parametrize("suffix", [".csv", ".json", ".npy"])
def test_the_bundles_predict_py_writes_what_onnxruntime_computes(here, suffix):
    metadata = metadata_of(here / "bundle")
    rows = rows_for(metadata)
    write_inputs(here / f"rows{suffix}", rows, metadata["feature_names"])
    done = run([sys.executable, "bundle/predict.py", "bundle", "--input", f"rows{suffix}", "--output", "out.csv"], here)
    assert done.returncode == 0, done.stderr
    assert_same_columns(read_columns(here / "out.csv"), expected_predictions(here / "bundle", rows))


def test_the_bundles_predict_py_needs_no_deploy_package(here):
    """Had the copy imported anything of pipeline_core_deploy, it would fail here with ImportError."""
    metadata = metadata_of(here / "bundle")
    rows = rows_for(metadata, 5)
    write_inputs(here / "rows.csv", rows, metadata["feature_names"])
    done = run([sys.executable, "-c", WITHOUT_THE_PACKAGE, "bundle/predict.py", "bundle", "--input", "rows.csv", "--output", "out.csv"], here)
    assert done.returncode == 0, done.stderr
    assert_same_columns(read_columns(here / "out.csv"), expected_predictions(here / "bundle", rows))
    (here / "probe.py").write_text("import pipeline_core_deploy\n")
    probe = run([sys.executable, "-c", WITHOUT_THE_PACKAGE, "probe.py"], here)
    assert probe.returncode == 1 and "ModuleNotFoundError: import of pipeline_core_deploy halted" in probe.stderr, "the package was not blocked"


def test_the_bundles_predict_py_refuses_bad_input_with_exit_2(here):
    (here / "rows.csv").write_text("1,2,3\n")
    done = run([sys.executable, "bundle/predict.py", "bundle", "--input", "rows.csv"], here)
    assert done.returncode == 2
    assert "rows.csv, line 1: data row 1 has 3 values; the bundle expects 4 float32 value(s) per row" in done.stderr
    assert "Traceback" not in done.stderr
