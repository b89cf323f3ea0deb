"""The ``[trackers.mlflow]`` table: where runs go, under which experiment, and which registered model
a run's model becomes a version of. Checked when the file is validated, so a typo, a bad name or a
missing ``mlflow`` package stops the run before any data is loaded (exit code 2)."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass

NAME = "mlflow"
INSTALL = "pip install -e '.[mlflow]'"
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\- ]*$")


@dataclass(frozen=True)
class MlflowSettings:
    """What a ``[trackers.mlflow]`` table asks for, every default written out."""

    #: the tracking server (``http://host:5000``) or store; empty: MLflow's own default, ``MLFLOW_TRACKING_URI``
    tracking_uri: str = ""
    #: the experiment the runs go to; empty: the pipeline's name
    experiment: str = ""
    #: a registered model's name: each successful run's model becomes its next version; empty: none
    register_as: str = ""


def mlflow_settings(*, tracking_uri: str = "", experiment: str = "", register_as: str = "") -> MlflowSettings:
    """Runs, models and sweeps in MLflow: parameters, per-epoch metrics, artifacts, the ONNX model, the registry."""
    return MlflowSettings(tracking_uri=tracking_uri, experiment=experiment, register_as=register_as)


def check(*, tracking_uri: str = "", experiment: str = "", register_as: str = "") -> None:
    """Raise ValueError for a table that cannot work, before anything runs."""
    if importlib.util.find_spec("mlflow") is None:
        raise ValueError(f"the mlflow tracker needs the mlflow package, which is not installed: {INSTALL}")
    if register_as and not _MODEL_NAME.match(register_as):
        raise ValueError(
            f"register_as {register_as!r}: a registered model's name is letters, digits, '_', '.', '-' and spaces, "
            "starting with a letter or digit (e.g. 'iris-classifier')"
        )
    if tracking_uri.startswith("models:/"):
        raise ValueError(f"tracking_uri {tracking_uri!r} is a model URI; give the tracking server's address, e.g. 'http://127.0.0.1:5000'")


mlflow_settings.pipeline_check = check  # type: ignore[attr-defined]
