"""`pipeline serve`: the Open Inference Protocol server, driven by the real tritonclient and httpx
against a real server started as a subprocess on a free loopback port. Answers are compared with
predict.py's; bad input, overload, SIGTERM and bad bundles are checked end to end."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from pipeline_core_deploy import predict
from pipeline_core_deploy.serve.config import model_specs, parse_bundle_argument
from pipeline_core_deploy.serve.hot_routes import match

from helpers import BIN, Server, free_port, start

FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
NAME = "iris_fast"


@pytest.fixture(scope="module")
def repository(iris_bundle, tmp_path_factory) -> Path:
    """A Triton-style layout: models/iris_fast/1 and models/iris_fast/2 (copies stay sealed)."""
    root = tmp_path_factory.mktemp("models")
    for version in ("1", "2"):
        shutil.copytree(iris_bundle, root / NAME / version)
    return root


@pytest.fixture(scope="module")
def server(repository, iris_bundle, tmp_path_factory) -> Iterator[Server]:
    """Two versions of one model, the same bundle under another name with its own batching (from a
    config file), a 20 ms batching window so concurrent requests share batches, a small body limit."""
    tmp = tmp_path_factory.mktemp("server")
    config = tmp / "serve.toml"
    config.write_text(textwrap.dedent(f"""
        [defaults]
        max_queue_delay_us = 20000

        [[models]]
        bundle = {str(iris_bundle)!r}
        name = "other"
        version = "7"
        max_batch_size = 4
    """))
    running = start([str(repository / NAME / "1"), str(repository / NAME / "2"), "--config", str(config),
                     "--max-batch-size", "8", "--max-body-bytes", "65536"], tmp)
    yield running
    assert running.stop() == 0, running.output()


def expected(bundle: Path, rows, tmp: Path) -> list[dict]:
    """What predict.py answers for ``rows`` written to a JSON file (the records it writes)."""
    (tmp / "rows.json").write_text(json.dumps(rows))
    assert predict.predict(bundle, tmp / "rows.json", tmp / "out.json") == len(rows)
    return json.loads((tmp / "out.json").read_text())


def predict_py_error(bundle: Path, content: str, tmp: Path) -> str:
    """predict.py's message for a JSON file, without the file name it starts with."""
    (tmp / "bad.json").write_text(content)
    with pytest.raises(predict.DeployError) as caught:
        predict.predict(bundle, tmp / "bad.json")
    return str(caught.value).replace(str(tmp / "bad.json"), "")


# ---------------------------------------------------------------------------------------------
# The protocol, with the real tritonclient


def test_tritonclient_health_metadata_and_config(server):
    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(NAME) and client.is_model_ready(NAME, "1") and client.is_model_ready("other", "7")
    assert not client.is_model_ready("absent")
    metadata = client.get_model_metadata(NAME)
    assert metadata["name"] == NAME and metadata["versions"] == ["1", "2"] and metadata["platform"] == "onnxruntime_onnx"
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    assert metadata["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 3]},
                                   {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}]
    assert metadata["parameters"]["feature_names"] == FEATURES
    assert metadata["parameters"]["classes"] == ["setosa", "versicolor", "virginica"]
    config = client.get_model_config("other", "7")
    assert config["max_batch_size"] == 4 and config["dynamic_batching"]["max_queue_delay_microseconds"] == 20000
    assert client.get_model_config(NAME)["max_batch_size"] == 8
    server_metadata = client.get_server_metadata()
    assert server_metadata["name"] == "pipeline-core-deploy" and "binary_tensor_data" in server_metadata["extensions"]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_infer_matches_predict_py(server, iris_bundle, tmp_path, binary):
    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    tensor = triton.InferInput("input", [len(ROWS), 4], "FP32")
    tensor.set_data_from_numpy(np.array(ROWS, dtype=np.float32), binary_data=binary)
    outputs = [triton.InferRequestedOutput("probabilities", binary_data=binary)]
    result = client.infer(NAME, [tensor], model_version="1", outputs=outputs, request_id="req-42")
    response = result.get_response()
    assert response["model_name"] == NAME and response["model_version"] == "1" and response["id"] == "req-42"
    assert [o["name"] for o in response["outputs"]] == ["probabilities"]  # only what was asked for
    assert result.as_numpy("logits") is None
    probabilities = result.as_numpy("probabilities")
    records = expected(iris_bundle, ROWS, tmp_path)
    assert probabilities.shape == (3, 3) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities, [[r[f"probability_{c}"] for c in ("setosa", "versicolor", "virginica")] for r in records], rtol=1e-6)
    # no outputs named: every output, and the newest version
    every = client.infer(NAME, [tensor])
    assert every.get_response()["model_version"] == "2"
    assert every.as_numpy("logits").shape == (3, 3)
    np.testing.assert_allclose(every.as_numpy("probabilities"), probabilities, rtol=1e-6)


def test_unknown_model_or_version_is_404_with_what_exists(server):
    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    with pytest.raises(InferenceServerException, match=r"unknown model 'absent'; this server has \['iris_fast', 'other'\]"):
        client.get_model_metadata("absent")
    for path in ("/v2/models/absent/infer", f"/v2/models/{NAME}/versions/9/infer"):
        response = httpx.post(server.url + path, json={"inputs": []})
        assert response.status_code == 404
    assert response.json() == {"error": "model 'iris_fast' has no version '9'; it has ['1', '2']", "request_id": response.headers["x-request-id"]}
    assert httpx.get(f"{server.url}/v2/models/{NAME}/versions/9/ready").status_code == 404
    response = httpx.get(f"{server.url}/v3/anything")
    assert response.status_code == 404 and response.json()["error"].startswith("GET /v3/anything: Not Found")
    response = httpx.get(f"{server.url}/v2/models/{NAME}/infer")
    assert response.status_code == 405 and response.json()["error"].startswith("GET /v2/models/iris_fast/infer: Method Not Allowed")


def test_curl_style_json_infer_and_named_model(server, iris_bundle, tmp_path):
    body = {"id": "a", "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [ROWS[1]]}]}  # nested data is fine
    response = httpx.post(f"{server.url}/v2/models/other/versions/7/infer", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model_name"] == "other" and answer["model_version"] == "7" and answer["id"] == "a"
    logits = next(o for o in answer["outputs"] if o["name"] == "logits")
    assert logits["shape"] == [1, 3] and logits["datatype"] == "FP32"
    label = ["setosa", "versicolor", "virginica"][int(np.argmax(logits["data"]))]
    assert label == expected(iris_bundle, [ROWS[1]], tmp_path)[0]["label"]


# ---------------------------------------------------------------------------------------------
# The convenience endpoint


@pytest.mark.parametrize("body", [
    ROWS,
    {"inputs": ROWS},
    {"instances": [{name: row[i] for i, name in reversed(list(enumerate(FEATURES)))} for row in ROWS]},  # keyed, any order
], ids=["rows", "inputs", "objects"])
def test_predict_endpoint_answers_predict_py_records(server, iris_bundle, tmp_path, body):
    response = httpx.post(f"{server.url}/v2/models/{NAME}/predict", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model_name"] == NAME and answer["model_version"] == "2"
    records = expected(iris_bundle, ROWS, tmp_path)
    assert [r["label"] for r in answer["predictions"]] == [r["label"] for r in records]
    for got, want in zip(answer["predictions"], records, strict=True):
        assert set(got) == set(want)
        assert all(got[k] == pytest.approx(want[k], rel=1e-6) for k in want if k != "label")


# ---------------------------------------------------------------------------------------------
# Bad input: 400 with predict.py's message, never a traceback


@pytest.mark.parametrize("content", [
    "[[5.1, 3.5, 1.4]]",
    "[[1, 2, 3, 4], [1, NaN, 3, 4]]",
    '[{"sepal length (cm)": 1, "petal width": 2}]',
    '[["a", "b", "c", "d"]]',
    "[[1, 2, 3, 4], [1, 2]]",
    "[]",
    '{"rows": []}',
], ids=["short-row", "nan", "feature-names", "strings", "ragged", "empty", "no-inputs"])
def test_predict_endpoint_bad_rows_get_predict_py_message(server, iris_bundle, tmp_path, content):
    response = httpx.post(f"{server.url}/v2/models/{NAME}/predict", content=content)
    assert response.status_code == 400
    message = response.json()["error"]
    assert message.startswith("request body")
    assert message.removeprefix("request body") == predict_py_error(iris_bundle, content, tmp_path)
    assert "Traceback" not in response.text


@pytest.mark.parametrize("tensor, rows_for_predict_py, message", [
    ({"shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4, 1, float("nan"), 3, 4]}, "[[1, 2, 3, 4], [1, NaN, 3, 4]]",
     "row 2 holds a value that is not finite (NaN or infinity)"),
    ({"shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1e39, 0.2]}, "[[5.1, 3.5, 1e39, 0.2]]",
     "the model takes float32 inputs, which reach"),
], ids=["nan", "beyond-float32"])
def test_infer_bad_rows_get_predict_py_message(server, iris_bundle, tmp_path, tensor, rows_for_predict_py, message):
    body = json.dumps({"inputs": [{"name": "input", **tensor}]})
    response = httpx.post(f"{server.url}/v2/models/{NAME}/infer", content=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error == f"input 'input'{predict_py_error(iris_bundle, rows_for_predict_py, tmp_path)}"
    assert message in error


@pytest.mark.parametrize("body, message", [
    ({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]},
     "input 'input': datatype 'FP64' does not match the model's; expected FP32 (shape [-1, 4])"),
    ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]},
     "inputs ['x'] do not match the model's; it takes one input 'input' (FP32, shape [-1, 4])"),
    ({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]},
     "input 'input': 'data' holds 4 value(s) but shape [2, 4] needs 8"),
    ({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": ["a", "b", "c", "d"]}]},
     "input 'input': 'data' holds a string ('a'); a FP32 tensor takes numbers only"),
    # strict V2 input: the model's shape exactly, batch axis first; data flat or nested as the shape; numbers only
    ({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [5.1, 3.5, 1.4]}]},
     "input 'input': shape [1, 3] does not match the model's input; expected [N, 4] (N rows, the batch axis first)"),
    ({"inputs": [{"name": "input", "shape": [4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]},
     "input 'input': shape [4] does not match the model's input; expected [N, 4] (N rows, the batch axis first)"),
    ({"inputs": [{"name": "input", "shape": [1, 2, 2], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]},
     "input 'input': shape [1, 2, 2] does not match the model's input; expected [N, 4]"),
    ({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": [[1, 2], [3, 4], [5, 6], [7, 8]]}]},
     "input 'input': 'data' is nested as [4, 2], but the shape says [2, 4]; send it flat (8 values) or nested exactly as the shape"),
    ({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": [[1, 2, 3, 4], [5, 6, 7]]}]},
     "input 'input': 'data' is a ragged list"),
    ({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, "2", 1.4, 0.2]}]},
     "input 'input': 'data' holds a string ('2'); a FP32 tensor takes numbers only"),
    ({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, True, 1.4, 0.2]}]},
     "input 'input': 'data' holds a boolean (True); a FP32 tensor takes numbers only"),
    ({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, None, 1.4, 0.2]}]},
     "input 'input': 'data' holds null (None); a FP32 tensor takes numbers only"),
    ({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": "5.1,3.5,1.4,0.2"}]},
     "input 'input': 'data' must be a list of numbers, flat or nested as the shape [1, 4] says"),
    ({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}], "outputs": [{"name": "scores"}]},
     "unknown output 'scores'; the model's outputs are ['logits', 'probabilities']"),
    ({"inputs": "nope"}, "'inputs' must be a list of tensors; the model takes 'input' (FP32, shape [-1, 4])"),
], ids=["datatype", "input-name", "count", "strings", "short-row", "no-batch-axis", "same-count-other-shape", "nested-otherwise", "ragged",
        "quoted-number", "boolean", "null", "data-not-a-list", "output-name", "inputs-type"])
def test_infer_bad_tensors_get_400_saying_what_is_expected(server, body, message):
    response = httpx.post(f"{server.url}/v2/models/{NAME}/infer", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_not_json_and_oversized_bodies_get_400(server):
    response = httpx.post(f"{server.url}/v2/models/{NAME}/infer", content=b"{not json")
    assert response.status_code == 400 and response.json()["error"].startswith("the request body is not valid JSON")
    big = json.dumps({"inputs": [{"name": "input", "shape": [5000, 4], "datatype": "FP32", "data": [1.0] * 20000}]})
    assert len(big) > 65536
    response = httpx.post(f"{server.url}/v2/models/{NAME}/infer", content=big)
    assert response.status_code == 400
    assert "over this server's limit of 65536 (--max-body-bytes)" in response.json()["error"]


@pytest.mark.parametrize("path, expected", [
    ("/v2/models/iris/infer", ("iris", None, "infer")),
    ("/v2/models/iris/versions/3/predict", ("iris", "3", "predict")),
    ("/v2/models/a.b-c_1/versions/20261202-101500/infer/", ("a.b-c_1", "20261202-101500", "infer")),
    ("/v2/models/iris", None), ("/v2/models/iris/ready", None), ("/v2/models//infer", None),
    ("/v2/models/iris/versions//infer", None), ("/v2/models/iris/versions/1/2/infer", None), ("/v3/models/iris/infer", None),
])
def test_hot_route_matching(path, expected):
    """What the plain-ASGI routes take; every other path is left to Starlette's router."""
    assert match(path, frozenset({"infer", "predict"})) == expected


def test_body_in_chunks_and_compressed_body(server):
    """A chunked upload (several ASGI body messages) is joined; a compressed one is refused by name."""
    body = json.dumps({"inputs": [{"name": "input", "shape": [3, 4], "datatype": "FP32", "data": ROWS}]}).encode()
    pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
    chunked = httpx.post(f"{server.url}/v2/models/{NAME}/infer", content=iter(pieces))
    whole = httpx.post(f"{server.url}/v2/models/{NAME}/infer", content=body)
    assert chunked.status_code == whole.status_code == 200, chunked.text
    assert chunked.json() == whole.json()
    response = httpx.post(f"{server.url}/v2/models/{NAME}/predict", content=body, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert response.json() == {"error": "Content-Encoding 'gzip' is not supported; send the body uncompressed",
                               "request_id": response.headers["x-request-id"]}


# ---------------------------------------------------------------------------------------------
# Dynamic batching


def test_concurrent_callers_each_get_their_own_rows(server, iris_bundle):
    """48 callers with distinct rows (1–5 each) and one larger than max_batch_size (8), all at once."""
    session = predict.open_bundle(iris_bundle).session
    generator = np.random.default_rng(0)
    requests = [generator.normal(4, 2, (int(generator.integers(1, 6)), 4)).astype(np.float32) for _ in range(48)]
    requests.append(generator.normal(4, 2, (50, 4)).astype(np.float32))
    before = _batch_counts(server)
    answers: dict[int, np.ndarray] = {}
    barrier = threading.Barrier(len(requests))

    def call(index: int) -> None:
        client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
        tensor = triton.InferInput("input", list(requests[index].shape), "FP32")
        tensor.set_data_from_numpy(requests[index])
        barrier.wait(timeout=60)
        answers[index] = client.infer(NAME, [tensor], request_id=str(index)).as_numpy("logits")

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(answers) == list(range(len(requests)))
    for index, rows in enumerate(requests):
        (want,) = session.run(["logits"], {"input": rows})
        np.testing.assert_allclose(answers[index], want, rtol=1e-5, atol=1e-6)
    after = _batch_counts(server)
    batches, rows = after[0] - before[0], after[1] - before[1]
    assert rows == sum(len(r) for r in requests)
    assert batches < len(requests)  # some requests shared a batch


def _batch_counts(server: Server) -> tuple[float, float]:
    text = httpx.get(f"{server.url}/metrics").text
    count = _sample(text, f'pipeline_serve_batch_size_count{{model="{NAME}",version="2"}}')
    total = _sample(text, f'pipeline_serve_batch_size_sum{{model="{NAME}",version="2"}}')
    return count, total


def _sample(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


# ---------------------------------------------------------------------------------------------
# Operations


def test_metrics_and_access_log(server):
    httpx.post(f"{server.url}/v2/models/{NAME}/versions/1/infer",
               json={"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": ROWS[0]}]})
    httpx.get(f"{server.url}/v2/models/made-up-{time.time_ns()}")
    response = httpx.get(f"{server.url}/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert _sample(text, f'pipeline_serve_requests_total{{code="200",endpoint="infer",model="{NAME}",protocol="http",version="1"}}') >= 1
    assert _sample(text, 'pipeline_serve_requests_total{code="404",endpoint="model_metadata",model="",protocol="http",version=""}') >= 1
    assert "made-up" not in text  # unknown names never become labels
    assert f'pipeline_serve_request_duration_seconds_bucket{{endpoint="infer",le="0.001",model="{NAME}",protocol="http",version="1"}}' in text
    assert f'pipeline_serve_batch_size_bucket{{le="1.0",model="{NAME}",version="1"}}' in text
    assert f'pipeline_serve_queue_depth{{model="{NAME}",version="1"}} 0.0' in text
    line = f'"POST /v2/models/{NAME}/versions/1/infer HTTP/1.1" 200'
    deadline = time.monotonic() + 30  # the access log is flushed in blocks, every half second
    while line not in server.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert line in server.output()


def _infer_in_thread(url: str, results: list, index: int) -> threading.Thread:
    def call() -> None:
        body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": ROWS[index % 3]}]}
        try:
            results[index] = httpx.post(url, json=body, timeout=60).status_code
        except httpx.HTTPError as error:
            results[index] = repr(error)

    thread = threading.Thread(target=call)
    thread.start()
    return thread


def _wait_for_queue(server: Server, depth: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _sample(httpx.get(f"{server.url}/metrics").text, f'pipeline_serve_queue_depth{{model="{NAME}",version="1"}}') == depth:
            return
        time.sleep(0.05)
    raise AssertionError(f"queue never reached {depth}")


def test_full_queue_answers_503_at_once(repository, tmp_path):
    """Requests wait 3 s for a fuller batch; with two queued, a third is refused without waiting."""
    server = start([str(repository / NAME / "1"), "--max-queue-size", "2", "--max-queue-delay-us", "3000000",
                    "--max-batch-size", "100"], tmp_path)
    try:
        url = f"{server.url}/v2/models/{NAME}/infer"
        results: list = [None, None]
        threads = [_infer_in_thread(url, results, i) for i in range(2)]
        _wait_for_queue(server, 2)
        response = httpx.post(url, json={"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": ROWS[0]}]})
        assert response.status_code == 503
        assert response.json()["error"] == "the queue holds 2 requests (max_queue_size 2); retry later"
        for thread in threads:
            thread.join(60)
        assert results == [200, 200]
    finally:
        assert server.stop() == 0


def test_sigterm_finishes_requests_in_flight_and_exits_0(repository, tmp_path):
    server = start([str(repository / NAME / "1"), "--max-queue-delay-us", "3000000", "--max-batch-size", "100"], tmp_path)
    url = f"{server.url}/v2/models/{NAME}/infer"
    results: list = [None] * 5
    threads = [_infer_in_thread(url, results, i) for i in range(5)]
    _wait_for_queue(server, 5)  # all five are in flight, waiting for their batch
    server.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the listening socket closes; the five are still being answered
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=1):
                time.sleep(0.05)
        except OSError:
            break
    else:
        raise AssertionError("the server still accepts connections after SIGTERM")
    for thread in threads:
        thread.join(60)
    assert results == [200] * 5
    assert server.process.wait(60) == 0, server.output()
    assert "Traceback" not in server.output()


# ---------------------------------------------------------------------------------------------
# Bad bundles and bad configuration: refused at start, exit code 2


def _refused(args: list[str], command: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*(command or [str(BIN / "pipeline-deploy"), "serve"]), *args, "--port", str(free_port())],
                          capture_output=True, text=True, timeout=120)


def test_tampered_or_incomplete_bundle_is_refused_at_start(iris_bundle, tmp_path):
    tampered = Path(shutil.copytree(iris_bundle, tmp_path / "tampered"))
    with open(tampered / "model.onnx", "ab") as stream:
        stream.write(b"\0")
    result = _refused([str(tampered)])
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "does not match its sha256 in manifest.json" in result.stderr
    assert "Traceback" not in result.stderr
    incomplete = Path(shutil.copytree(iris_bundle, tmp_path / "incomplete"))
    (incomplete / "manifest.json").unlink()
    result = _refused([str(incomplete)], [str(BIN / "pipeline"), "serve"])  # the training CLI says the same
    assert result.returncode == 2 and "the bundle's manifest is missing" in result.stderr


def test_bad_configuration_is_refused_at_start(repository, tmp_path):
    result = _refused([str(repository / NAME / "1"), f"{NAME}:1={repository / NAME / '2'}"])
    assert result.returncode == 2 and f"two bundles would both be '{NAME}' version '1'" in result.stderr
    (tmp_path / "serve.toml").write_text('[defaults]\nmax_batch = 8\n')
    result = _refused([str(repository / NAME / "1"), "--config", str(tmp_path / "serve.toml")])
    assert result.returncode == 2 and "serve.toml: [defaults]: unknown key 'max_batch'; valid keys:" in result.stderr
    result = _refused([])
    assert result.returncode == 2 and "no bundle to serve" in result.stderr


def test_bundle_arguments_and_config_precedence(tmp_path):
    spec = parse_bundle_argument("iris:3=runs/a/bundle")
    assert (spec.path, spec.name, spec.version) == (Path("runs/a/bundle"), "iris", "3")
    assert parse_bundle_argument("runs/a/bundle").name is None
    (tmp_path / "serve.toml").write_text('[defaults]\nmax_batch_size = 8\nmax_queue_size = 5\n\n'
                                         '[[models]]\nbundle = "b"\nmax_batch_size = 2\n')
    cli_model, file_model = model_specs(["a"], tmp_path / "serve.toml", {"max_queue_size": 9, "max_batch_size": None})
    assert (cli_model.batching.max_batch_size, cli_model.batching.max_queue_size) == (8, 9)  # file defaults < flags
    assert (file_model.batching.max_batch_size, file_model.batching.max_queue_size) == (2, 9)  # < the model's table
    assert file_model.path == tmp_path / "b"


# ---------------------------------------------------------------------------------------------
# Without PyTorch


SERVE_WITHOUT_TORCH = """
import sys
sys.modules["torch"] = None  # any import of torch now fails
{block}
sys.argv = ["pipeline", "serve", *sys.argv[1:]]
from {module} import main
main()
"""


@pytest.mark.parametrize("module, block", [
    ("pipeline_core_deploy.cli", 'sys.modules["pipeline_core"] = None'),  # the deploy console script needs neither
    ("pipeline_core.cli", ""),  # `pipeline serve` loads no torch either
], ids=["pipeline-deploy", "pipeline"])
def test_serves_with_torch_blocked(iris_bundle, tmp_path, module, block):
    code = SERVE_WITHOUT_TORCH.format(block=block, module=module)
    server = start([str(iris_bundle)], tmp_path, command=[sys.executable, "-c", code])
    try:
        response = httpx.post(f"{server.url}/v2/models/{NAME}/predict", json=ROWS)
        assert response.status_code == 200, response.text
        assert len(response.json()["predictions"]) == 3
    finally:
        assert server.stop() == 0, server.output()
