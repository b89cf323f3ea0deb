"""The MLflow tracker against a real tracking server (``mlflow server`` on 127.0.0.1, a SQLite
backend and a local artifact folder in tmp_path, one per module, stopped after): a run with its
parameters, epochs, artifacts and registered model; a failed run resumed into the same MLflow run;
a sweep as a parent run with nested trials; a registered version pulled by the torch-free deploy
side and answering as the run reported."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

mlflow = pytest.importorskip("mlflow")  # the test extra brings it: pip install -e '.[test]'

from mlflow import MlflowClient  # noqa: E402

from pipeline_core.pipeline.runner import load_pipeline, run_pipeline  # noqa: E402

from helpers import BIN, IRIS_FAST, free_port, invoke, start  # noqa: E402

SERVER_START_SECONDS = 120


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = folder / "server.log"
    command = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination", str(folder / "artifacts")]
    with open(log, "wb") as stream:
        process = subprocess.Popen(command, stdout=stream, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            if process.poll() is not None:
                raise AssertionError(f"mlflow server exited with {process.returncode}:\n{log.read_text(errors='replace')}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"mlflow server not up in {SERVER_START_SECONDS} s:\n{log.read_text(errors='replace')}")
            time.sleep(0.2)
        yield url
    finally:
        # the server's own group: it and the workers it started. SIGKILL at once: on SIGTERM it waited out
        # the 5 s allowed every time, and its database and artifact folder are thrown away with tmp_path
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def tracked(text: str, url: str, **options: str) -> str:
    table = "".join(f'{key} = "{value}"\n' for key, value in {"tracking_uri": url, **options}.items())
    return textwrap.dedent(text).lstrip() + "\n[trackers.mlflow]\n" + table


def mlflow_run(run_dir: Path) -> str:
    return json.loads((run_dir / "mlflow.json").read_text())["run_id"]


def steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted(metric.step for metric in client.get_metric_history(run_id, key))


# ---------------------------------------------------------------------------------------------
# A run, its model, the registry, and the deploy side


@pytest.fixture(scope="module")
def registered(server: str, tmp_path_factory: pytest.TempPathFactory):
    """One iris run logged and registered as ``iris-tracked``: (its RunContext, the MLflow client)."""
    folder = tmp_path_factory.mktemp("registered")
    path = folder / "pipeline.toml"
    path.write_text(tracked(IRIS_FAST, server, experiment="tracked", register_as="iris-tracked")
                    .replace('[train.loss]', '[evaluate]\nmetrics = ["loss", "accuracy"]\n\n[train.loss]'))
    config, host = load_pipeline(path)
    run = run_pipeline(config, host, out=folder / "run", quiet=True)
    return run, MlflowClient(server)


def test_a_run_is_an_mlflow_run_with_everything_of_its_folder(registered):
    run, client = registered
    logged = client.get_run(mlflow_run(run.run_dir))
    assert logged.info.status == "FINISHED"
    assert client.get_experiment(logged.info.experiment_id).name == "tracked"
    params = logged.data.params
    assert params["trackers.mlflow.tracking_uri"] == client.tracking_uri
    assert params["train.optimizer.lr"] == "0.01" and params["model.hidden_sizes"] == "[16, 8]" and params["trackers.mlflow.register_as"] == "iris-tracked"
    assert steps(client, logged.info.run_id, "train_loss") == [1, 2, 3]  # each epoch with its step
    metrics = json.loads((run.run_dir / "metrics.json").read_text())
    assert logged.data.metrics["test.accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert logged.data.metrics["test.loss"] == pytest.approx(metrics["test"]["loss"])
    tags = logged.data.tags
    assert tags["pipeline.config_sha256"] == run.config.sha256() and tags["pipeline.seed"] == "3"
    assert tags["torch.version"] and tags["pipeline.version"]
    artifacts = {item.path for item in client.list_artifacts(logged.info.run_id)}
    assert {"report.html", "plots", "metrics.json", "history.csv", "bundle", "config.toml", "training.json"} <= artifacts
    assert "status.json" not in artifacts  # it still said "running" when the tracker logged; the MLflow run's status says it
    bundle = {item.path for item in client.list_artifacts(logged.info.run_id, "bundle")}
    assert {f"bundle/{p.name}" for p in (run.run_dir / "bundle").iterdir()} == bundle
    history = Path(mlflow.artifacts.download_artifacts(run_id=logged.info.run_id, artifact_path="history.csv", tracking_uri=client.tracking_uri))
    assert history.read_text() == (run.run_dir / "history.csv").read_text()


def test_the_registered_version_is_the_onnx_model_and_leads_back_to_its_bundle(registered, tmp_path):
    run, client = registered
    import hashlib

    version = client.get_model_version("iris-tracked", "1")
    assert version.run_id == mlflow_run(run.run_dir)
    manifest = hashlib.sha256((run.run_dir / "bundle" / "manifest.json").read_bytes()).hexdigest()
    assert version.tags["pipeline.bundle_manifest_sha256"] == manifest
    mlflow.set_tracking_uri(client.tracking_uri)
    model = mlflow.pyfunc.load_model("models:/iris-tracked/1")
    assert model.metadata.signature is not None and model.metadata.get_input_schema().input_types()
    test = run.data.splits["test"]
    rows = test.inputs.numpy().astype(np.float32)
    answers = model.predict(rows)
    logits = answers["logits"] if isinstance(answers, dict) else np.asarray(answers)
    accuracy = float((np.asarray(logits).argmax(axis=1) == test.targets.numpy()).mean())
    assert accuracy == pytest.approx(run.metrics["test"]["accuracy"])


PULL_WITHOUT_TORCH = """
import sys
sys.modules["torch"] = None  # any import of torch now fails
sys.modules["pipeline_core"] = None
sys.argv = ["pipeline-deploy", *sys.argv[1:]]
from pipeline_core_deploy.cli import main
main()
"""


def deploy_without_torch(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PULL_WITHOUT_TORCH, *map(str, args)], capture_output=True, text=True, timeout=120)


def test_a_pulled_version_predicts_and_serves_the_runs_test_metrics_without_torch(registered, tmp_path):
    run, client = registered
    pulled = tmp_path / "pulled"
    done = deploy_without_torch("pull", "models:/iris-tracked/1", pulled, "--tracking-uri", client.tracking_uri)
    assert done.returncode == 0, done.stderr
    assert "pulled models:/iris-tracked/1" in done.stdout
    assert sorted(p.name for p in pulled.iterdir()) == sorted(p.name for p in (run.run_dir / "bundle").iterdir())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left

    test = run.data.splits["test"]
    features = json.loads((pulled / "metadata.json").read_text())["feature_names"]
    classes = json.loads((pulled / "metadata.json").read_text())["classes"]
    rows = tmp_path / "test.csv"
    with open(rows, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(features)
        writer.writerows(test.inputs.tolist())
    truth = [classes[i] for i in test.targets.tolist()]
    done = deploy_without_torch("predict", pulled, "--input", rows, "--output", tmp_path / "answers.json")
    assert done.returncode == 0, done.stderr
    labels = [record["label"] for record in json.loads((tmp_path / "answers.json").read_text())]
    assert np.mean([a == b for a, b in zip(labels, truth, strict=True)]) == pytest.approx(run.metrics["test"]["accuracy"])

    serve = start([str(pulled)], tmp_path, command=[sys.executable, "-c", PULL_WITHOUT_TORCH, "serve"])
    try:
        name = json.loads((pulled / "metadata.json").read_text())["pipeline"]
        response = httpx.post(f"{serve.url}/v2/models/{name}/predict", json=test.inputs.tolist(), timeout=30)
        assert response.status_code == 200, response.text
        assert [record["label"] for record in response.json()["predictions"]] == labels
    finally:
        assert serve.stop() == 0, serve.output()

    again = deploy_without_torch("pull", "models:/iris-tracked/1", pulled, "--tracking-uri", client.tracking_uri)
    assert again.returncode == 2 and "is not an empty folder" in again.stderr and "Traceback" not in again.stderr
    missing = deploy_without_torch("pull", "models:/iris-tracked/7", tmp_path / "other", "--tracking-uri", client.tracking_uri)
    assert missing.returncode == 2 and "not found" in missing.stderr and not (tmp_path / "other").exists()


def test_a_version_whose_manifest_hash_is_not_its_bundles_is_refused(registered, tmp_path):
    """A registry version that names another bundle than the one its run holds (the run's bundle
    replaced after registration, or a hand-made version): refused, and nothing lands in the folder."""
    run, client = registered
    run_id = mlflow_run(run.run_dir)
    version = client.create_model_version("iris-tracked", f"runs:/{run_id}/model", run_id=run_id)
    client.set_model_version_tag("iris-tracked", version.version, "pipeline.bundle_manifest_sha256", "0" * 64)
    done = deploy_without_torch("pull", f"models:/iris-tracked/{version.version}", tmp_path / "pulled", "--tracking-uri", client.tracking_uri)
    assert done.returncode == 2, done.stderr
    assert "but the registry version names " + "0" * 64 in done.stderr and not (tmp_path / "pulled").exists()
    assert not list(tmp_path.iterdir())  # the download's staging folder is gone too


# ---------------------------------------------------------------------------------------------
# A failed run, resumed into the same MLflow run


FAILING_PLUGIN = """
import os
from pipeline_core import hookimpl

@hookimpl
def on_epoch_end(run, epoch, metrics):
    if epoch == 3 and os.environ.get("FAIL_AT_EPOCH_3"):
        raise RuntimeError("the machine fell over at epoch 3")
"""


def test_a_failed_run_ends_failed_with_its_error_and_its_resume_continues_it(server, write_pipeline, tmp_path):
    (tmp_path / "falls.py").write_text(FAILING_PLUGIN)
    text = tracked(IRIS_FAST.replace("seed = 3", 'seed = 3\nplugins = ["falls.py"]').replace("epochs = 3", "epochs = 4\ncheckpoint_every = 1"), server)
    path = write_pipeline(text)
    run_dir = tmp_path / "run"
    failed = invoke("run", path, "--out", run_dir, env={"FAIL_AT_EPOCH_3": "1"})
    assert failed.exit_code == 1, failed.output
    client = MlflowClient(server)
    run_id = mlflow_run(run_dir)
    logged = client.get_run(run_id)
    assert logged.info.status == "FAILED"
    assert "the machine fell over at epoch 3" in logged.data.tags["pipeline.error"] and logged.data.tags["pipeline.failed_stage"] == "train"
    assert steps(client, run_id, "train_loss")[:2] == [1, 2]  # the epochs that ran were logged before the run ended

    resumed = invoke("run", run_dir, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert mlflow_run(run_dir) == run_id  # the same MLflow run, continued
    logged = client.get_run(run_id)
    assert logged.info.status == "FINISHED" and logged.data.tags["pipeline.resumed"] == "true"
    assert set(steps(client, run_id, "train_loss")) == {1, 2, 3, 4}
    assert "test.accuracy" in logged.data.metrics
    assert len(client.search_runs([logged.info.experiment_id])) == 1


# ---------------------------------------------------------------------------------------------
# A sweep: a parent run, each trial nested


SWEEP = """
[pipeline]
name = "iris_sweep"
seed = 0

[data]
name = "iris"
val_size = 0.25

[model]
name = "mlp"
hidden_sizes = [8]

[train]
epochs = 4
batch_size = 16

[train.optimizer]
name = "sgd"
lr = 0.1

[train.loss]
name = "cross_entropy"

[evaluate]
metrics = ["loss", "accuracy"]

[sweep]
objective = "val_loss"
trials = 3
sampler = "grid"
pruner = { name = "median", startup_trials = 1 }

[sweep.parameters]
"train.optimizer.lr" = { type = "categorical", choices = [0.3, 0.00001] }
"model.hidden_sizes" = { type = "categorical", choices = [[8], [4]] }
"""


def test_a_sweep_is_a_parent_run_with_a_nested_run_per_trial(server, write_pipeline, tmp_path):
    path = write_pipeline(tracked(SWEEP, server))
    done = invoke("sweep", path, "--artifacts", tmp_path / "artifacts")
    assert done.exit_code == 0, done.output
    folder = tmp_path / "artifacts" / "iris_sweep" / "sweeps" / "iris_sweep"
    client = MlflowClient(server)
    parent = client.get_run(mlflow_run(folder))
    assert parent.info.status == "FINISHED" and parent.data.tags["pipeline.sweep.study"] == "iris_sweep"
    assert parent.data.params["sweep.objective"] == "val_loss"
    assert {item.path for item in client.list_artifacts(parent.info.run_id)} >= {"sweep.json", "best.toml", "report.html"}
    record = json.loads((folder / "sweep.json").read_text())
    assert parent.data.metrics["best.value"] == pytest.approx(record["best"]["value"])

    trials = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(trials) == 3
    pruned = 0
    for trial in trials:
        number = int(trial.data.tags["pipeline.sweep.trial"])
        trial_dir = folder / "trials" / f"{number:04d}"
        assert mlflow_run(trial_dir) == trial.info.run_id
        config = tomllib.loads((trial_dir / "config.toml").read_text())
        assert float(trial.data.params["train.optimizer.lr"]) == config["train"]["optimizer"]["lr"]
        assert trial.data.params["model.hidden_sizes"] == json.dumps(config["model"]["hidden_sizes"])
        status = json.loads((trial_dir / "status.json").read_text())["status"]
        if status == "pruned":
            pruned += 1
            assert trial.info.status == "KILLED" and trial.data.tags["pipeline.status"] == "pruned"
        else:
            assert trial.info.status == "FINISHED"
            metrics = json.loads((trial_dir / "metrics.json").read_text())
            assert trial.data.metrics["sweep.objective"] == pytest.approx(metrics["validation"]["loss"])
        assert steps(client, trial.info.run_id, "val_loss")  # the values the pruner judged, per epoch
    assert pruned == record["trials"]["pruned"]


# ---------------------------------------------------------------------------------------------
# Mistakes: one clear line, before anything runs


def test_an_unreachable_server_stops_the_run_at_its_start_in_one_line(write_pipeline, tmp_path):
    path = write_pipeline(tracked(IRIS_FAST, f"http://127.0.0.1:{free_port()}"))
    done = invoke("run", path, "--out", tmp_path / "run")  # an unexpected exception would be raised here, not caught
    assert done.exit_code == 2
    lines = done.output.strip().splitlines()
    assert len(lines) == 1 and "does not answer" in lines[0] and "the run is not started" in lines[0], done.output
    assert not (tmp_path / "run" / "history.csv").exists() and not (tmp_path / "run" / "mlflow.json").exists()


@pytest.mark.parametrize("table, message", [
    ('[trackers.mlfow]\ntracking_uri = "http://127.0.0.1:1"', "unknown tracker 'mlfow'; did you mean 'mlflow'?"),
    ('[trackers.mlflow]\nexperment = "x"', "trackers.mlflow.experment: unknown key; did you mean 'experiment'?"),
    ('[trackers.mlflow]\nregister_as = "/iris"', "register_as '/iris': a registered model's name is"),
    ('[trackers.mlflow]\nname = "mlflow"', "a tracker is named by its table"),
], ids=["tracker", "option", "model-name", "name"])
def test_a_bad_trackers_table_is_exit_2_naming_the_key(write_pipeline, table, message):
    path = write_pipeline(IRIS_FAST + "\n" + table + "\n")
    done = invoke("validate", path)
    assert done.exit_code == 2 and message in done.output, done.output


def test_a_server_that_answers_even_with_an_error_is_reachable():
    """A tracking server behind a proxy may answer /health with 401 or 404: it is there, and the
    client's own requests (with its credentials) decide the rest; only no answer stops the run."""
    import http.server
    import threading

    from pipeline_core import ConfigError
    from pipeline_core_plugins.trackers.mlflow_runs import check_reachable

    class Refuses(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            self.send_response(401)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    proxy = http.server.HTTPServer(("127.0.0.1", 0), Refuses)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        check_reachable(f"http://127.0.0.1:{proxy.server_port}")
    finally:
        proxy.shutdown()
        proxy.server_close()
    with pytest.raises(ConfigError, match="does not answer"):
        check_reachable(f"http://127.0.0.1:{free_port()}")


def test_a_password_in_the_tracking_uri_is_not_shown_in_the_runs_parameters():
    from pipeline_core_plugins.trackers.mlflow_runs import shown

    assert shown("https://team:s3cret@mlflow.example:5000/") == "https://team:***@mlflow.example:5000/"
    assert shown("http://127.0.0.1:5000") == "http://127.0.0.1:5000" and shown("") == ""
