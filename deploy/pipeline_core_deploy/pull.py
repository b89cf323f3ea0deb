"""``pipeline-deploy pull models:/NAME/VERSION DIR``: a registered model's bundle from an MLflow
registry, verified, ready for ``predict`` and ``serve``.

The training side's MLflow tracker logs each run's sealed bundle as the run artifact ``bundle/`` and
tags each registry version with the sha256 of that bundle's ``manifest.json``. Pulling downloads the
version's bundle beside DIR, verifies it exactly as every bundle is opened (:func:`verify_bundle`:
every file's hash, each ONNX file, and the signature when a key is given), refuses it unless its
manifest is the one the version names, and only then moves it into place: DIR holds a verified
bundle or nothing. It needs MLflow's light client alone (``pip install 'pipeline-core-deploy[mlflow]'``,
``mlflow-skinny``): no torch, no pipeline-core.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pipeline_core_deploy.common import DeployError
from pipeline_core_deploy.opening import Verification, verify_bundle

#: the registry version tags the training side writes (plugins/trackers/mlflow_model.py)
MANIFEST_TAG = "pipeline.bundle_manifest_sha256"
BUNDLE_TAG = "pipeline.bundle_artifact"
INSTALL = "pip install 'pipeline-core-deploy[mlflow]'"
_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[0-9]+|latest)|@(?P<alias>[A-Za-z0-9_-]+))$")
#: MLflow retries an unanswered request for minutes by default; a deployer waits this long at most
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def is_model_uri(text: str) -> bool:
    return str(text).startswith("models:/")


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/iris/3`` → ``("iris", "3", None)``; ``models:/iris@champion`` → ``("iris", None, "champion")``."""
    found = _MODEL_URI.match(uri)
    if found is None:
        raise DeployError(f"{uri!r} is not a registered model's URI: expected models:/NAME/VERSION (e.g. models:/iris/3), "
                          "models:/NAME/latest or models:/NAME@ALIAS")
    return found["name"], found["version"], found["alias"]


def _client(tracking_uri: str | None) -> Any:
    for key, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise DeployError(f"pulling from an MLflow registry needs MLflow's light client, which is not installed: {INSTALL}") from None
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _first_line(error: Exception) -> str:
    text = str(getattr(error, "message", "") or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _version(client: Any, uri: str, where: str) -> Any:
    """The registry version ``uri`` names, or a :class:`DeployError` saying what is missing."""
    from mlflow.exceptions import MlflowException

    name, version, alias = parse_model_uri(uri)
    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        if version == "latest":
            versions = client.search_model_versions(f"name='{name}'")
            if not versions:
                raise DeployError(f"{uri}: registered model {name!r} has no version at {where}")
            return max(versions, key=lambda found: int(found.version))
        return client.get_model_version(name, version)
    except MlflowException as error:
        missing = getattr(error, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"
        raise DeployError(f"{uri}: {'not found at' if missing else 'cannot ask the registry at'} {where}: {_first_line(error)}") from None


def _empty_target(folder: Path) -> None:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise DeployError(f"{folder} exists and is not an empty folder; pull into a new folder (nothing was changed)")


def pull(uri: str, folder: Path, tracking_uri: str | None = None, verify_key: Path | None = None) -> Verification:
    """Fetch the bundle of registry version ``uri`` into ``folder`` (new or empty) and verify it;
    returns what was checked. ``tracking_uri``: the MLflow server (default ``MLFLOW_TRACKING_URI``)."""
    folder = Path(folder)
    _empty_target(folder)
    client = _client(tracking_uri)
    where = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "MLflow's default tracking URI"
    version = _version(client, uri, where)
    expected = (version.tags or {}).get(MANIFEST_TAG)
    if not expected:
        raise DeployError(f"{uri} (run {version.run_id}) has no {MANIFEST_TAG} tag: it was not registered with a pipeline bundle "
                          "(register it from a run whose [trackers.mlflow] table has register_as)")
    artifact = (version.tags or {}).get(BUNDLE_TAG, "bundle")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.pull-", dir=folder.parent))
    try:
        from mlflow.artifacts import download_artifacts
        from mlflow.exceptions import MlflowException

        try:
            downloaded = Path(download_artifacts(run_id=version.run_id, artifact_path=artifact, dst_path=str(staging), tracking_uri=tracking_uri))
        except (MlflowException, OSError) as error:
            raise DeployError(f"{uri}: cannot download the bundle (artifact {artifact!r} of run {version.run_id}): {_first_line(error)}") from None
        try:
            checked = verify_bundle(downloaded, verify_key)
        except DeployError as error:  # named by the artifact's path in the run, not the staging folder that is removed
            raise DeployError(f"{uri} (run {version.run_id}): {str(error).replace(str(downloaded), artifact)}") from None
        if checked.manifest_sha256 != expected:
            raise DeployError(f"{uri}: the bundle downloaded from run {version.run_id} has manifest sha256 {checked.manifest_sha256}, "
                              f"but the registry version names {expected}: refused (the run's bundle was replaced after registration)")
        _empty_target(folder)
        if folder.exists():
            folder.rmdir()
        downloaded.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    checked.folder = folder
    return checked
