"""Signed bundles with the deploy tools alone: ``pipeline-deploy keygen`` and ``sign``, then
``predict --verify-key`` accepts the bundle its key signed and refuses, with exit 2 and a message,
one changed after signing (with or without a new manifest) and one checked with another key."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import onnx
import pytest
from onnx import numpy_helper

from bundles import copy_bundle, seal
from processes import deploy, free_port, run
from samples import assert_same_columns, expected_predictions, metadata_of, read_columns, rows_for, write_inputs


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two key pairs made by ``pipeline-deploy keygen``: bundle-signing.* (the signer's) and other.*."""
    folder = tmp_path_factory.mktemp("keys")
    for name in ("bundle-signing", "other"):
        made = deploy("keygen", "--out", folder, "--name", name, cwd=folder)
        assert made.returncode == 0, made.stderr
    assert stat.S_IMODE((folder / "bundle-signing.key").stat().st_mode) == 0o600
    return folder


@pytest.fixture(scope="module")
def signed(iris_bundle: Path, keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the iris bundle signed with bundle-signing.key."""
    bundle = copy_bundle(iris_bundle, tmp_path_factory.mktemp("signed"))
    done = deploy("sign", bundle, "--key", keys / "bundle-signing.key", cwd=bundle.parent)
    assert done.returncode == 0, done.stderr
    assert "signed with key" in done.stdout and (bundle / "manifest.json.sig").is_file()
    return bundle


@pytest.fixture
def rows_csv(signed: Path, tmp_path: Path) -> Path:
    return write_inputs(tmp_path / "rows.csv", rows_for(metadata_of(signed), 5), metadata_of(signed)["feature_names"])


def change_a_weight(bundle: Path) -> None:
    """model.onnx with one bias moved by 1: a different model that still loads, as a tamperer makes."""
    model = onnx.load(str(bundle / "model.onnx"))
    bias = next(tensor for tensor in model.graph.initializer if tensor.name == "b2")
    values = numpy_helper.to_array(bias).copy()
    values[0] += 1
    bias.CopyFrom(numpy_helper.from_array(values, "b2"))
    onnx.save_model(model, str(bundle / "model.onnx"))


def test_the_signing_key_accepts_the_signed_bundle(signed, keys, rows_csv, tmp_path):
    rows = rows_for(metadata_of(signed), 5)  # the rows of rows.csv
    done = deploy("predict", signed, "--input", rows_csv, "--output", "out.csv", "--verify-key", keys / "bundle-signing.pub", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert_same_columns(read_columns(tmp_path / "out.csv"), expected_predictions(signed, rows))
    copy = run([sys.executable, str(signed / "predict.py"), str(signed), "--input", str(rows_csv), "--verify-key", str(keys / "bundle-signing.pub")], tmp_path)
    assert copy.returncode == 0, copy.stderr


def test_another_key_is_refused(signed, keys, rows_csv, tmp_path):
    done = deploy("predict", signed, "--input", rows_csv, "--verify-key", keys / "other.pub", cwd=tmp_path)
    assert done.returncode == 2
    assert "the bundle was signed with key" in done.stderr and "refusing a bundle signed by someone else" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_model_changed_after_signing_is_refused(signed, keys, rows_csv, tmp_path):
    bundle = copy_bundle(signed, tmp_path)
    change_a_weight(bundle)
    done = deploy("predict", bundle, "--input", rows_csv, "--verify-key", keys / "bundle-signing.pub", cwd=tmp_path)
    assert done.returncode == 2
    assert "model.onnx does not match its sha256 in manifest.json" in done.stderr and "Traceback" not in done.stderr


def test_a_new_manifest_for_a_changed_model_breaks_the_signature(signed, keys, rows_csv, tmp_path):
    """What a forger does after changing model.onnx: write a manifest that matches. The signature,
    made over the old manifest, no longer verifies."""
    bundle = copy_bundle(signed, tmp_path)
    change_a_weight(bundle)
    seal(bundle)
    unchecked = deploy("predict", bundle, "--input", rows_csv, cwd=tmp_path)
    assert unchecked.returncode == 0, "the resealed bundle should pass its hashes; only the signature can catch it"
    done = deploy("predict", bundle, "--input", rows_csv, "--verify-key", keys / "bundle-signing.pub", cwd=tmp_path)
    assert done.returncode == 2
    assert "manifest.json was changed after it was signed" in done.stderr and "Traceback" not in done.stderr


def test_an_unsigned_bundle_is_refused_when_a_key_is_given(iris_bundle, keys, rows_csv, tmp_path):
    done = deploy("predict", iris_bundle, "--input", rows_csv, "--verify-key", keys / "bundle-signing.pub", cwd=tmp_path)
    assert done.returncode == 2 and "is not signed" in done.stderr


def test_serve_refuses_to_start_with_another_key(signed, keys, tmp_path):
    done = deploy("serve", signed, "--verify-key", keys / "other.pub", "--port", str(free_port()), cwd=tmp_path)
    assert done.returncode == 2
    assert "the bundle was signed with key" in done.stderr and "Traceback" not in done.stderr
