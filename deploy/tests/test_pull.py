"""``pipeline-deploy pull``: a registry version's bundle, fetched with MLflow's light client alone
(``mlflow-skinny``, the ``mlflow`` extra) in this torch-free environment, verified, and moved into
place only when it is the bundle the version names. The registry here is MLflow's own file store,
written by MLflow's client as the training side's tracker writes a server's (the main suite pulls
from a real ``mlflow server``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from bundles import copy_bundle
from processes import deploy
from samples import metadata_of, rows_for, write_inputs

mlflow = pytest.importorskip("mlflow")  # the deploy suite's environment has the mlflow extra (Makefile)

MANIFEST_TAG = "pipeline.bundle_manifest_sha256"


@pytest.fixture
def registry(tmp_path: Path, iris_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A file-store registry: model ``iris`` version 1 is iris_bundle, tagged with its manifest's hash
    (alias ``champion``); version 2 names another manifest; version 3 has no bundle tag."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow keeps its file store for cases like this one
    uri = (tmp_path / "registry").as_uri()
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client.create_run(client.create_experiment("iris"))
    client.log_artifacts(run.info.run_id, str(iris_bundle), "bundle")
    client.set_terminated(run.info.run_id)
    client.create_registered_model("iris")
    manifest = hashlib.sha256((iris_bundle / "manifest.json").read_bytes()).hexdigest()
    source = f"runs:/{run.info.run_id}/bundle"
    for tags in ({MANIFEST_TAG: manifest}, {MANIFEST_TAG: "0" * 64}, {}):
        client.create_model_version("iris", source, run_id=run.info.run_id, tags=tags)
    client.set_registered_model_alias("iris", "champion", "1")
    return uri


@pytest.mark.parametrize("uri", ["models:/iris/1", "models:/iris@champion"])
def test_a_pulled_version_is_its_bundle_verified_and_predicts(registry, iris_bundle, tmp_path, uri):
    done = deploy("pull", uri, "pulled", "--tracking-uri", registry, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"pulled {uri} into pulled" in done.stdout
    files = sorted(p.name for p in iris_bundle.iterdir())
    assert sorted(p.name for p in (tmp_path / "pulled").iterdir()) == files
    assert all((tmp_path / "pulled" / name).read_bytes() == (iris_bundle / name).read_bytes() for name in files)
    metadata = metadata_of(iris_bundle)
    source = write_inputs(tmp_path / "rows.csv", rows_for(metadata), metadata["feature_names"])
    ran = deploy("predict", "pulled", "--input", source, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr


@pytest.mark.parametrize("uri, message", [
    ("models:/iris/2", "but the registry version names " + "0" * 64 + ": refused"),
    ("models:/iris/latest", "has no pipeline.bundle_manifest_sha256 tag: it was not registered with a pipeline bundle"),
    ("models:/iris/9", "models:/iris/9: not found at"),
    ("models:/iris", "is not a registered model's URI: expected models:/NAME/VERSION"),
    ("runs:/abc/bundle", "is not a registered model's URI"),
], ids=["other-manifest", "no-bundle", "no-version", "no-version-given", "not-a-model-uri"])
def test_what_cannot_be_pulled_is_refused_in_one_line_and_leaves_nothing(registry, tmp_path, uri, message):
    done = deploy("pull", uri, "pulled", "--tracking-uri", registry, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["registry"]  # no folder, no staging left behind


def test_a_folder_that_holds_files_is_never_overwritten(registry, tmp_path):
    (tmp_path / "pulled").mkdir()
    (tmp_path / "pulled" / "notes.txt").write_text("mine")
    done = deploy("pull", "models:/iris/1", "pulled", "--tracking-uri", registry, cwd=tmp_path)
    assert done.returncode == 2 and "is not an empty folder" in done.stderr
    assert [p.name for p in (tmp_path / "pulled").iterdir()] == ["notes.txt"]


def test_an_unreachable_tracking_server_is_one_line(tmp_path):
    done = deploy("pull", "models:/iris/1", "pulled", "--tracking-uri", "http://127.0.0.1:9", cwd=tmp_path)
    assert done.returncode == 2 and "cannot ask the registry at http://127.0.0.1:9" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "pulled").exists()


def test_a_signed_version_is_pulled_only_with_the_signers_key(iris_bundle, tmp_path, monkeypatch):
    """``--verify-key``: the signature is checked as ``predict`` and ``serve`` check it; a bundle signed
    by another key is refused and nothing lands in the folder."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    for name in ("signer", "other"):
        assert deploy("keygen", "--out", tmp_path / "keys", "--name", name, cwd=tmp_path).returncode == 0
    bundle = copy_bundle(iris_bundle, tmp_path / "signed")
    assert deploy("sign", bundle, "--key", tmp_path / "keys" / "signer.key", cwd=tmp_path).returncode == 0
    uri = (tmp_path / "registry").as_uri()
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client.create_run(client.create_experiment("iris"))
    client.log_artifacts(run.info.run_id, str(bundle), "bundle")
    manifest = hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()
    client.create_registered_model("iris")
    client.create_model_version("iris", f"runs:/{run.info.run_id}/bundle", run_id=run.info.run_id, tags={MANIFEST_TAG: manifest})

    refused = deploy("pull", "models:/iris/1", "other", "--tracking-uri", uri, "--verify-key", tmp_path / "keys" / "other.pub", cwd=tmp_path)
    assert refused.returncode == 2 and not (tmp_path / "other").exists(), refused.stderr
    assert "models:/iris/1 (run " in refused.stderr and "bundle/manifest.json.sig: the bundle was signed with key" in refused.stderr
    assert ".pull-" not in refused.stderr  # named as the run's artifact, not the staging folder that is gone
    done = deploy("pull", "models:/iris/1", "pulled", "--tracking-uri", uri, "--verify-key", tmp_path / "keys" / "signer.pub", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "pulled" / "manifest.json.sig").read_bytes() == (bundle / "manifest.json.sig").read_bytes()
