"""No answer is wrong in silence (issue 28, items 1, 4 and 6): a client's rows never change another
client's answers, whatever the batching; an output that is not finite is refused naming the row,
never labelled; a row far outside the training range is flagged (or, strictly, refused); and a
request, a port or a folder layout that would give a surprise gets a clear refusal instead."""

from __future__ import annotations

import json
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from bundles import INT8
from processes import deploy, free_port, serving
from samples import onnxruntime_outputs

FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
VICTIM, ATTACKER = [5.1, 3.5, 1.4, 0.2], [1e6, 1e6, 1e6, 1e6]
#: finite float32 inputs that overflow inside the suite's model (its logits come out NaN)
OVERFLOW = [3e38, -3e38, 3e38, -3e38]
#: the attack's bounds: requests per client and seconds in all
REQUESTS, SECONDS = 300, 60


def _csv(path: Path, rows: list[list[float]]) -> Path:
    path.write_text(",".join(FEATURES) + "\n" + "\n".join(",".join(map(repr, row)) for row in rows) + "\n")
    return path


def _infer_body(rows: list[list[float]]) -> dict:
    return {"inputs": [{"name": "input", "shape": [len(rows), 4], "datatype": "FP32", "data": [v for row in rows for v in row]}]}


def test_predict_flags_rows_outside_the_training_range_only_when_asked(iris_bundle, tmp_path):
    rows = _csv(tmp_path / "rows.csv", [VICTIM, ATTACKER, [5.1, 3.5, 30.0, 0.2]])
    plain = deploy("predict", iris_bundle, "--input", rows, cwd=tmp_path)
    assert plain.returncode == 0 and plain.stdout.splitlines()[0] == "label,probability_setosa,probability_versicolor,probability_virginica"
    flagged = deploy("predict", iris_bundle, "--input", rows, "--range-check", "flag", cwd=tmp_path)
    lines = flagged.stdout.splitlines()
    assert flagged.returncode == 0 and lines[0].endswith(",out_of_range")
    assert lines[1].endswith(",") and lines[2].endswith(",sepal length (cm); sepal width (cm); petal length (cm); petal width (cm)")
    assert lines[3].endswith(",petal length (cm)")
    as_json = deploy("predict", iris_bundle, "--input", rows, "--range-check", "flag", "--output", tmp_path / "out.json", cwd=tmp_path)
    records = json.loads((tmp_path / "out.json").read_text())
    assert as_json.returncode == 0 and [record["out_of_range"] for record in records] == [[], FEATURES, ["petal length (cm)"]]
    strict = deploy("predict", iris_bundle, "--input", rows, "--range-check", "refuse", "--output", tmp_path / "strict.csv", cwd=tmp_path)
    assert strict.returncode == 2 and not (tmp_path / "strict.csv").exists()
    assert re.search(r"rows\.csv, line 3: data row 2: 'sepal length \(cm\)' is 1000000\.0, outside the training range \[[\d.]+, [\d.]+\] "
                     r"by more than the margin \(0\.5 of the range: allowed \[[-\d.]+, [\d.]+\]\); refusing it", strict.stderr), strict.stderr
    wide = deploy("predict", iris_bundle, "--input", _csv(tmp_path / "near.csv", [[5.1, 3.5, 30.0, 0.2]]), "--range-check", "refuse",
                  "--range-margin", "100", cwd=tmp_path)
    assert wide.returncode == 0, wide.stderr  # a wider margin lets the same row through


def test_an_output_that_is_not_finite_is_refused_naming_the_row(iris_bundle, tmp_path):
    rows = [VICTIM, OVERFLOW]
    outputs = onnxruntime_outputs(iris_bundle / "model.onnx", np.array(rows, dtype=np.float32))
    assert not np.isfinite(outputs["logits"][1]).all(), "this row no longer overflows the model: choose another"
    result = deploy("predict", iris_bundle, "--input", _csv(tmp_path / "rows.csv", rows), "--output", tmp_path / "out.csv", cwd=tmp_path)
    assert result.returncode == 2 and not (tmp_path / "out.csv").exists()
    assert "rows.csv, line 3: data row 2: the model's output 'logits' is not finite" in result.stderr
    assert "no answer computed from it can be trusted, so none is given" in result.stderr and "setosa" not in result.stderr


@pytest.fixture(scope="module")
def server(iris_bundle: Path, tmp_path_factory: pytest.TempPathFactory):
    """The float model and its int8_dynamic variant, both with batching on and a 20 ms window (so that
    concurrent requests would share batches), and a strict copy refusing rows outside the range."""
    folder = tmp_path_factory.mktemp("answers")
    config = folder / "serve.toml"
    config.write_text(f'[[models]]\nbundle = "{iris_bundle}"\nname = "iris_int8"\nversion = "1"\nvariant = "{INT8}"\n\n'
                      f'[[models]]\nbundle = "{iris_bundle}"\nname = "iris_strict"\nversion = "1"\nrange_check = "refuse"\n')
    args = [f"iris:1={iris_bundle}", "--config", str(config), "--max-queue-delay-us", "20000", "--max-batch-size", "64",
            "--max-request-rows", "100", "--no-access-log"]
    with serving(args, folder) as running:
        yield running


def test_one_clients_rows_never_change_another_clients_answers(server, iris_bundle):
    """The attack of issue 28: three clients send a row far outside the training range while a fourth
    sends an iris row, all to the dynamically quantized variant with batching on. Run together in one
    call, the attacker's row does change the victim's answer; through the server, not once."""
    variant = iris_bundle / f"model.{INT8}.onnx"
    alone = onnxruntime_outputs(variant, np.array([VICTIM], dtype=np.float32))["probabilities"][0]
    together = onnxruntime_outputs(variant, np.array([ATTACKER, VICTIM], dtype=np.float32))["probabilities"][1]
    assert np.abs(together - alone).max() > 1e-3, "batched with the attacker's row the victim's answer must move, or this proves nothing"
    state = {"stop": False}
    attacks: list[httpx.Response] = []

    def attack() -> None:
        with httpx.Client(timeout=30) as client:
            for _ in range(REQUESTS):
                if state["stop"]:
                    return
                attacks.append(client.post(f"{server.url}/v2/models/iris_int8/infer", json=_infer_body([ATTACKER])))

    attackers = [threading.Thread(target=attack) for _ in range(3)]
    for thread in attackers:
        thread.start()
    answers, deadline = [], time.monotonic() + SECONDS
    try:
        with httpx.Client(timeout=30) as client:
            while len(answers) < REQUESTS and time.monotonic() < deadline:
                response = client.post(f"{server.url}/v2/models/iris_int8/infer", json=_infer_body([VICTIM]))
                assert response.status_code == 200, response.text
                answer = response.json()
                assert "parameters" not in answer  # the victim's row is inside the training range: nothing flagged
                answers.append(next(o["data"] for o in answer["outputs"] if o["name"] == "probabilities"))
    finally:
        state["stop"] = True
        for thread in attackers:
            thread.join(SECONDS)
    changed = sum(not np.allclose(answer, alone, rtol=1e-6, atol=1e-7) for answer in answers)
    assert len(answers) >= 100 and changed == 0, f"{changed} of {len(answers)} answers changed"
    assert attacks and all(response.status_code == 200 for response in attacks)  # the attackers are answered too
    assert all(response.json()["parameters"] == {"out_of_range_rows": [0]} for response in attacks)  # and their rows flagged
    config = httpx.get(f"{server.url}/v2/models/iris_int8/versions/1/config").json()
    assert "dynamic_batching" not in config and config["parameters"]["requests_share_batches"] == {"string_value": "false"}
    parameters = httpx.get(f"{server.url}/v2/models/iris_int8").json()["parameters"]
    assert parameters["batch_independent"] is False and parameters["requests_share_batches"] is False


def test_the_float_model_still_batches_requests_together(server):
    """The control: the same settings batch the batch-independent float model (so the test above
    was run where batching happens)."""
    def send() -> None:
        with httpx.Client(timeout=30) as client:
            for _ in range(40):
                assert client.post(f"{server.url}/v2/models/iris/infer", json=_infer_body([VICTIM])).status_code == 200

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SECONDS)
    metrics = httpx.get(f"{server.url}/metrics").text
    count = float(re.search(r'pipeline_serve_batch_size_count\{model="iris",version="1"\} ([\d.e+]+)', metrics).group(1))
    rows = float(re.search(r'pipeline_serve_batch_size_sum\{model="iris",version="1"\} ([\d.e+]+)', metrics).group(1))
    assert rows >= 160 and rows / count > 1.5, (rows, count)
    assert httpx.get(f"{server.url}/v2/models/iris").json()["parameters"]["requests_share_batches"] is True


def test_a_model_whose_rows_run_alone_reports_one_row_per_call(server):
    """``pipeline_serve_batch_size`` counts rows per onnxruntime call: a request of five rows to the
    batch-dependent variant is five calls of one row each, not one batch of five."""
    def batch_sizes() -> tuple[float, float]:
        text = httpx.get(f"{server.url}/metrics").text
        found = [re.search(rf'pipeline_serve_batch_size_{part}\{{model="iris_int8",version="1"\}} ([\d.e+]+)', text) for part in ("count", "sum")]
        return (float(found[0].group(1)), float(found[1].group(1))) if found[0] and found[1] else (0.0, 0.0)

    calls, rows = batch_sizes()
    response = httpx.post(f"{server.url}/v2/models/iris_int8/infer", json=_infer_body([VICTIM] * 5))
    assert response.status_code == 200, response.text
    after = batch_sizes()
    assert (after[0] - calls, after[1] - rows) == (5.0, 5.0)
    statistics = httpx.get(f"{server.url}/v2/models/iris_int8/stats").json()["model_stats"][0]
    assert (statistics["execution_count"], statistics["inference_count"]) == after  # the statistics extension agrees
    assert {int(entry["batch_size"]) for entry in statistics["batch_stats"]} == {1}


def test_rows_outside_the_training_range_are_flagged_in_the_answer_or_refused(server):
    flagged = httpx.post(f"{server.url}/v2/models/iris/infer", json=_infer_body([VICTIM, ATTACKER, VICTIM])).json()
    assert flagged["parameters"] == {"out_of_range_rows": [1]}
    predicted = httpx.post(f"{server.url}/v2/models/iris/predict", json=[VICTIM, ATTACKER]).json()["predictions"]
    assert "out_of_range" not in predicted[0] and predicted[1]["out_of_range"] == FEATURES
    refused = httpx.post(f"{server.url}/v2/models/iris_strict/infer", json=_infer_body([VICTIM, ATTACKER]))
    assert refused.status_code == 400
    assert refused.json()["error"].startswith("input 'input': data row 2: 'sepal length (cm)' is 1000000.0, outside the training range")
    assert httpx.post(f"{server.url}/v2/models/iris_strict/infer", json=_infer_body([VICTIM])).status_code == 200


def test_an_output_that_is_not_finite_is_a_400_naming_the_row(server):
    response = httpx.post(f"{server.url}/v2/models/iris/infer", json=_infer_body([VICTIM, OVERFLOW]))
    assert response.status_code == 400
    assert response.json()["error"].startswith("input 'input': data row 2: the model's output 'logits' is not finite")
    predicted = httpx.post(f"{server.url}/v2/models/iris/predict", json=[OVERFLOW])
    assert predicted.status_code == 400 and "request body: data row 1: the model's output" in predicted.json()["error"]


def test_nested_data_exactly_as_the_shape_is_taken(server):
    flat = httpx.post(f"{server.url}/v2/models/iris/infer", json=_infer_body([VICTIM, VICTIM])).json()
    nested = httpx.post(f"{server.url}/v2/models/iris/infer",
                        json={"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": [VICTIM, VICTIM]}]}).json()
    assert nested["outputs"] == flat["outputs"]


def test_a_request_with_more_rows_than_the_limit_is_refused(server):
    response = httpx.post(f"{server.url}/v2/models/iris/infer", json=_infer_body([VICTIM] * 101))
    assert response.status_code == 400
    assert response.json()["error"] == ("input 'input' holds 101 rows, over this server's limit of 100 per request (--max-request-rows); "
                                        "send them in several requests, or predict a file with `pipeline-deploy predict`")
    assert httpx.post(f"{server.url}/v2/models/iris/infer", json=_infer_body([VICTIM] * 100)).status_code == 200


def test_a_port_in_use_is_exit_2_before_the_server_says_it_started(iris_bundle, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = deploy("serve", iris_bundle, "--host", "127.0.0.1", "--port", port, cwd=tmp_path)
    assert result.returncode == 2 and "startup complete" not in result.stdout + result.stderr
    assert f"error: cannot listen on 127.0.0.1 port {port}: Address already in use; another process listens there" in result.stderr


def test_a_host_that_does_not_resolve_is_named(iris_bundle, tmp_path):
    result = deploy("serve", iris_bundle, "--host", "no-such-host.invalid", "--port", free_port(), cwd=tmp_path)
    assert result.returncode == 2 and "error: --host 'no-such-host.invalid' is not an address this machine can listen on" in result.stderr


def test_a_folder_name_is_a_version_only_when_it_is_a_number(iris_bundle, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(iris_bundle, runs / "try" / "bundle")
    shutil.copytree(iris_bundle, tmp_path / "models" / "iris" / "3")
    with serving([str(runs / "try"), f"numbered={tmp_path / 'models' / 'iris' / '3'}", "--no-access-log"], tmp_path) as running:
        assert httpx.get(f"{running.url}/v2/models/iris").json()["versions"] == ["1"]
        assert httpx.get(f"{running.url}/v2/models/numbered").json()["versions"] == ["3"]


def _peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), from Linux's /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak memory from Linux's /proc")
def test_one_request_at_the_body_limit_stays_within_the_documented_memory_bound(iris_bundle, tmp_path):
    """docs/deploy.md: a request costs at most about 14x --max-body-bytes while it is parsed. The worst
    JSON for memory is the shortest numbers ("0," each); here a 1 MiB limit and a body just under it,
    refused for its rows (over --max-request-rows) after the parse, as a hostile client's would be."""
    limit = 1024 * 1024
    with serving([str(iris_bundle), "--max-body-bytes", str(limit), "--no-access-log"], tmp_path) as running:
        values = (limit - 100) // 2 // 4 * 4
        header = f'{{"inputs":[{{"name":"input","shape":[{values // 4},4],"datatype":"FP32","data":['
        body = (header + ",".join(["0"] * values) + "]}]}").encode()
        assert len(body) <= limit
        before = _peak_rss_mb(running.process.pid)
        response = httpx.post(f"{running.url}/v2/models/iris/infer", content=body, timeout=60)
        assert response.status_code == 400 and "over this server's limit of 4096 per request" in response.json()["error"]
        grown = _peak_rss_mb(running.process.pid) - before
        assert grown <= 16 * limit / 2**20, f"one request grew the peak memory by {grown:.0f} MB"
        over = httpx.post(f"{running.url}/v2/models/iris/infer", content=body + b" " * (limit - len(body) + 1), timeout=60)
        assert over.status_code == 400 and f"over this server's limit of {limit}" in over.json()["error"]
