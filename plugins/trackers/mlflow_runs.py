"""One pipeline run (or one sweep) as an MLflow run, through MLflow's own client.

The MLflow run's id is kept in the run folder (``mlflow.json``), so ``pipeline run --resume``
continues the same MLflow run, and in a sweep's folder, so each trial can name its parent. Epoch
rows are batched and sent asynchronously: they are gathered for :data:`SEND_SECONDS`, then sent in
one ``log_batch(synchronous=False)`` that training does not wait for (one request per epoch made
the iris job's 200 short epochs about 20% slower on a 2-core machine; batched, the server sees a few
requests a run and the UI is at most that many seconds behind). :meth:`TrackedRun.flush` sends what
is left and waits for every pending batch before the run ends.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline_core import ConfigError, atomic_write
from pipeline_core_plugins.trackers.mlflow_settings import MlflowSettings

#: the file of a run folder (or a sweep folder) that names its MLflow run
RECORD = "mlflow.json"
#: how long the check at the start waits for the tracking server
REACH_SECONDS = 5.0
#: MLflow's limits on one ``log_batch`` call and on a parameter's value
BATCH_METRICS, BATCH_PARAMS, PARAM_CHARS = 1000, 100, 6000
#: how long epoch rows are gathered before they are sent in one request
SEND_SECONDS = 2.0
TAG_PREFIX = "pipeline."


def tracking_uri(settings: MlflowSettings) -> str:
    """The table's ``tracking_uri``, else MLflow's own choice (``MLFLOW_TRACKING_URI``, then its default)."""
    import mlflow

    return settings.tracking_uri or mlflow.get_tracking_uri()


def check_reachable(uri: str) -> None:
    """Stop at the start, in one line, when the tracking server does not answer: training is not
    started without its tracker (a team that keeps its runs in MLflow would lose this one there)."""
    if not uri.startswith(("http://", "https://")):
        return
    health = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(health, timeout=REACH_SECONDS, context=_tls_context()) as answer:  # noqa: S310 (http(s), checked above)
            answer.read()
    except urllib.error.HTTPError:
        return  # it answered (a proxy's 401 or 404 included): the client's own requests say the rest
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise ConfigError(
            f"trackers.mlflow: the MLflow tracking server at {uri} does not answer ({reason}); the run is not started. "
            "Start the server, correct tracking_uri (or MLFLOW_TRACKING_URI), or remove [trackers.mlflow] to train without it"
        ) from None


def _tls_context() -> ssl.SSLContext:
    """TLS as MLflow's client is told to check it: ``MLFLOW_TRACKING_SERVER_CERT_PATH`` (a CA bundle)
    or ``MLFLOW_TRACKING_INSECURE_TLS``."""
    context = ssl.create_default_context(cafile=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None)
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


def client_for(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def experiment_id(client: Any, name: str) -> str:
    """The experiment ``name``, created if it does not exist (by another process meanwhile, too)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            raise ConfigError(f"trackers.mlflow: experiment {name!r} is deleted on the tracking server; restore it or choose another name")
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name))
    except MlflowException:  # created by a process beside this one
        return str(client.get_experiment_by_name(name).experiment_id)


def flatten(table: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """``{"train": {"optimizer": {"lr": 0.1}}}`` → ``("train.optimizer.lr", "0.1")``: the resolved
    configuration as MLflow parameters; a list is one parameter, written as JSON."""
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from flatten(value, name + ".")
        else:
            text = json.dumps(value) if isinstance(value, (list, tuple, bool)) or value is None else str(value)
            yield name, text if len(text) <= PARAM_CHARS else text[: PARAM_CHARS - 3] + "..."


def shown(uri: str) -> str:
    """``uri`` without a password (``http://me:secret@host`` → ``http://me:***@host``), for parameters others read."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


def git_commit(folder: Path) -> str | None:
    """The commit of the git work tree holding ``folder``, if any."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    return (items[start : start + size] for start in range(0, len(items), size))


@dataclass
class TrackedRun:
    """An MLflow run this process logs to."""

    client: Any
    uri: str
    run_id: str
    experiment_id: str
    pending: list[Any] = field(default_factory=list)  # RunOperations of asynchronous batches
    gathered: list[Any] = field(default_factory=list)  # epoch metrics not sent yet
    sent: float = field(default_factory=time.monotonic)  # when gathered rows were last sent

    @classmethod
    def start(cls, uri: str, experiment: str, name: str, tags: dict[str, str], parent: str | None = None) -> TrackedRun:
        client = client_for(uri)
        found = experiment_id(client, experiment)
        if parent is not None:
            tags = {**tags, "mlflow.parentRunId": parent}
        created = client.create_run(found, tags=tags, run_name=name)
        return cls(client, uri, created.info.run_id, found)

    @classmethod
    def reopen(cls, record: dict[str, Any]) -> TrackedRun:
        """The MLflow run a record names, set running again (a resumed run, a continued sweep)."""
        client = client_for(record["tracking_uri"])
        client.update_run(record["run_id"], status="RUNNING")
        return cls(client, record["tracking_uri"], record["run_id"], record["experiment_id"])

    def record(self) -> dict[str, str]:
        return {"tracking_uri": self.uri, "experiment_id": self.experiment_id, "run_id": self.run_id}

    def save(self, folder: Path) -> None:
        atomic_write(folder / RECORD, lambda temp: temp.write_text(json.dumps(self.record(), indent=2) + "\n", encoding="utf-8"))

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        for chunk in _chunks([Param(key, value) for key, value in params.items()], BATCH_PARAMS):
            self.client.log_batch(self.run_id, params=chunk)

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(key, value) for key, value in tags.items()])

    def log_metrics(self, values: dict[str, float], step: int) -> None:
        """Numbers only (a confusion matrix is an artifact), sent now."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, step) for key, value in values.items() if isinstance(value, (int, float))]
        for chunk in _chunks(metrics, BATCH_METRICS):
            self.client.log_batch(self.run_id, metrics=chunk)

    def gather(self, values: dict[str, float], step: int) -> None:
        """An epoch's row, sent with the others gathered once :data:`SEND_SECONDS` passed (not waited for)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.gathered += [Metric(key, float(value), now, step) for key, value in values.items() if isinstance(value, (int, float))]
        if time.monotonic() - self.sent >= SEND_SECONDS or len(self.gathered) >= BATCH_METRICS:
            self._send()

    def _send(self) -> None:
        gathered, self.gathered, self.sent = self.gathered, [], time.monotonic()
        for chunk in _chunks(gathered, BATCH_METRICS):
            operation = self.client.log_batch(self.run_id, metrics=chunk, synchronous=False)
            if operation is not None:
                self.pending.append(operation)

    def flush(self) -> None:
        """Send the rows gathered and wait for every asynchronous batch; the first that failed raises here."""
        self._send()
        pending, self.pending = self.pending, []
        for operation in pending:
            operation.wait()

    def log_files(self, folder: Path, names: Iterable[str]) -> None:
        """Each of ``names`` (a file or a folder of ``folder``) as an artifact at the same path."""
        for name in names:
            path = folder / name
            if path.is_dir():
                self.client.log_artifacts(self.run_id, str(path), name)
            elif path.is_file():
                parent = str(Path(name).parent)
                self.client.log_artifact(self.run_id, str(path), None if parent == "." else parent)

    def end(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status=status)


def read_record(folder: Path) -> dict[str, Any] | None:
    path = folder / RECORD
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def run_files(run_dir: Path, skip: tuple[str, ...]) -> list[str]:
    """The run folder's top-level files and folders, except ``skip``: what MLflow gets as artifacts."""
    return sorted(p.name for p in run_dir.iterdir() if not p.name.startswith(".") and p.name not in skip)




