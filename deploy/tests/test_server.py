"""``pipeline-deploy serve`` in a subprocess, driven by the real tritonclient and httpx: its answers
are what onnxruntime computes from each bundle's graph; a bad request is a 400 with the protocol's
``{"error": ...}``; SIGTERM exits 0. One server for the module serves every kind of bundle."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from bundles import INT8
from processes import Server, serving
from samples import metadata_of, onnxruntime_outputs, rows_for

MODELS = ("iris", "binary", "regression", "image")
DATATYPES = {"float32": "FP32", "uint8": "UINT8"}


@pytest.fixture(scope="module")
def server(bundle_of: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Every session bundle as ``NAME:1``, and the iris bundle's int8 variant as ``iris_int8`` (from a
    --config file); stopped with SIGTERM after the module's tests, which must exit 0."""
    folder = tmp_path_factory.mktemp("server")
    config = folder / "serve.toml"
    config.write_text(f'[[models]]\nbundle = "{bundle_of["iris"]}"\nname = "iris_int8"\nversion = "1"\nvariant = "{INT8}"\n')
    with serving([*(f"{name}:1={bundle_of[name]}" for name in MODELS), "--config", str(config), "--no-access-log"], folder) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: Server) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=server.address)


def infer(client: triton.InferenceServerClient, name: str, rows: np.ndarray, binary: bool) -> dict[str, np.ndarray]:
    """Every output of model ``name`` for ``rows``, by tritonclient (JSON or binary tensors)."""
    tensor = triton.InferInput("input", list(rows.shape), DATATYPES[rows.dtype.name])
    tensor.set_data_from_numpy(rows, binary_data=binary)
    result = client.infer(name, [tensor], model_version="1")
    return {output["name"]: result.as_numpy(output["name"]) for output in result.get_response()["outputs"]}


def test_ready_live_and_every_model_ready(server, client):
    response = httpx.get(f"{server.url}/v2/health/ready")
    assert response.status_code == 200 and response.json() == {"ready": True}
    assert client.is_server_live() and client.is_server_ready()
    assert all(client.is_model_ready(name, "1") for name in (*MODELS, "iris_int8"))
    assert not client.is_model_ready("absent")


@pytest.mark.parametrize("name", MODELS)
def test_model_metadata_states_the_bundle(client, bundle_of, name):
    stated = metadata_of(bundle_of[name])
    metadata = client.get_model_metadata(name, "1")
    assert metadata["platform"] == "onnxruntime_onnx" and metadata["versions"] == ["1"]
    assert metadata["inputs"] == [{"name": "input", "datatype": DATATYPES[stated["input"]["dtype"]], "shape": [-1, *stated["input"]["shape"][1:]]}]
    assert metadata["outputs"] == [{"name": o["name"], "datatype": "FP32", "shape": [-1, *o["shape"][1:]]} for o in stated["outputs"]]
    parameters = metadata["parameters"]
    assert parameters["task"] == stated["task"] and parameters["classes"] == stated["classes"]
    assert parameters["feature_names"] == stated["feature_names"]
    assert parameters.get("image") == stated.get("image")


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("name", MODELS)
def test_infer_answers_what_onnxruntime_computes(client, bundle_of, name, binary):
    rows = rows_for(metadata_of(bundle_of[name]), 6)
    found = infer(client, name, rows, binary)
    wanted = onnxruntime_outputs(bundle_of[name] / "model.onnx", rows)
    assert list(found) == list(wanted)
    for output, values in wanted.items():
        assert found[output].dtype == np.float32 and found[output].shape == values.shape
        np.testing.assert_allclose(found[output], values, rtol=1e-6, atol=1e-7, err_msg=output)


def test_the_int8_variant_serves_its_own_file_one_row_at_a_time(client, iris_bundle):
    """The variant quantizes its activations per call and the bundle records it as not batch
    independent: the server runs each row of a request alone, so each answer is onnxruntime's for
    that row alone, whatever rows came with it."""
    variant = iris_bundle / f"model.{INT8}.onnx"
    rows = rows_for(metadata_of(iris_bundle), 6)
    alone = np.concatenate([onnxruntime_outputs(variant, rows[i : i + 1])["logits"] for i in range(len(rows))])
    assert not np.allclose(alone, onnxruntime_outputs(variant, rows)["logits"], rtol=1e-6), "these rows cannot tell a batch from rows alone"
    found = infer(client, "iris_int8", rows, binary=True)
    np.testing.assert_allclose(found["logits"], alone, rtol=1e-6, atol=1e-7)
    figures = client.get_model_metadata("iris_int8", "1")["parameters"]
    assert figures["variant"] == INT8 and figures["variant_figures"]["file"] == variant.name


@pytest.mark.parametrize(("body", "words"), [
    ({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1.0, 2.0, 3.0]}]}, ["shape [1, 3]", "expected [N, 4]"]),
    ({"inputs": [{"name": "pixels", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}]}, ["inputs ['pixels']", "one input 'input'"]),
    ({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1.0, "x", 3.0, 4.0]}]}, ["('x')", "numbers only"]),
], ids=["width", "name", "not-a-number"])
def test_a_bad_request_is_a_400_with_an_error(server, body, words):
    response = httpx.post(f"{server.url}/v2/models/iris/versions/1/infer", json=body)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert list(answer) == ["error", "request_id"] and isinstance(answer["error"], str)
    assert answer["request_id"] == response.headers["x-request-id"]  # one id in the body, the header and the access log
    assert all(word in answer["error"] for word in words), answer["error"]
    assert "Traceback" not in answer["error"]


def test_tritonclient_hears_the_400(client):
    tensor = triton.InferInput("input", [1, 3], "FP32")
    tensor.set_data_from_numpy(np.ones((1, 3), dtype=np.float32))
    with pytest.raises(InferenceServerException) as caught:
        client.infer("iris", [tensor], model_version="1")
    assert caught.value.status() == "400"


def test_sigterm_lets_the_server_exit_0(iris_bundle, tmp_path):
    """Its own server, stopped in the test: a request answered, then SIGTERM, exit 0, port closed."""
    with serving([f"iris:1={iris_bundle}", "--no-access-log"], tmp_path) as running:
        rows = rows_for(metadata_of(iris_bundle), 2)
        response = httpx.post(f"{running.url}/v2/models/iris/predict", json=rows.tolist())
        assert response.status_code == 200 and len(response.json()["predictions"]) == 2
    assert running.process.returncode == 0
    assert "stopped" in running.output()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{running.url}/v2/health/live", timeout=2)
