"""The gRPC front end (``--grpc-port``), driven by the real ``tritonclient.grpc`` (sync, asyncio and
streaming) and by tritonclient's own generated stubs for what its helpers never send (typed
contents): the answers are what onnxruntime computes from the bundle's graph and what the REST side
gives; bad requests get ``INVALID_ARGUMENT`` or ``NOT_FOUND`` with the REST side's message and the
request id; ``grpc.health.v1`` says SERVING; both front ends share one data plane (statistics and
metrics count both); SIGTERM lets in-flight RPCs finish and exits 0."""

from __future__ import annotations

import asyncio
import queue
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
import tritonclient.grpc.aio as triton_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from processes import Server, deploy, free_port, metric, serving, start
from samples import metadata_of, onnxruntime_outputs, rows_for


@pytest.fixture(scope="module")
def server(bundle_of: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("grpc")
    with serving([f"iris:1={bundle_of['iris']}", f"image:1={bundle_of['image']}"], folder, grpc=True) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: Server) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=server.grpc_address)


def iris_rows(bundle: Path, count: int = 12) -> np.ndarray:
    return rows_for(metadata_of(bundle), count).astype(np.float32)


def infer(client: triton.InferenceServerClient, name: str, rows: np.ndarray, **options) -> triton.InferResult:
    tensor = triton.InferInput("input", list(rows.shape), {"float32": "FP32", "uint8": "UINT8"}[rows.dtype.name])
    tensor.set_data_from_numpy(rows)
    return client.infer(name, [tensor], **options)


def test_health_metadata_and_config(server, client, iris_bundle):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("iris") and client.is_model_ready("iris", "1")
    assert not client.is_model_ready("absent")
    metadata = client.get_server_metadata()
    assert {"model_repository", "statistics"} <= set(metadata.extensions)
    model = client.get_model_metadata("iris", as_json=True)
    rest = httpx.get(f"{server.url}/v2/models/iris").json()
    assert [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in model["inputs"]] == \
        [(t["name"], t["datatype"], t["shape"]) for t in rest["inputs"]]
    config = client.get_model_config("iris", as_json=True)["config"]
    assert config["name"] == "iris" and config["input"][0]["data_type"] == "TYPE_FP32" and config["input"][0]["dims"] == ["4"]
    with grpc.insecure_channel(server.grpc_address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "inference.GRPCInferenceService"):
            assert health.Check(health_pb2.HealthCheckRequest(service=service)).status == health_pb2.HealthCheckResponse.SERVING


def test_infer_answers_what_onnxruntime_and_rest_answer(server, client, iris_bundle, image_bundle):
    for name, bundle in (("iris", iris_bundle), ("image", image_bundle)):
        rows = rows_for(metadata_of(bundle), 5)
        result = infer(client, name, rows)
        wanted = onnxruntime_outputs(bundle / "model.onnx", rows)
        assert set(wanted) == {output.name for output in result.get_response().outputs}
        for output, value in wanted.items():
            np.testing.assert_allclose(result.as_numpy(output), value, rtol=1e-6, atol=1e-7)
        if name == "iris":
            rest = httpx.post(f"{server.url}/v2/models/iris/infer", json={"inputs": [
                {"name": "input", "datatype": "FP32", "shape": list(rows.shape), "data": rows.ravel().tolist()}]}).json()
            probabilities = next(o for o in rest["outputs"] if o["name"] == "probabilities")
            np.testing.assert_array_equal(np.asarray(probabilities["data"], np.float32).reshape(5, -1), result.as_numpy("probabilities"))


def test_typed_contents_and_one_requested_output(server, iris_bundle):
    """Typed ``fp32_contents`` (what clients other than tritonclient send), with only one output asked for."""
    rows = iris_rows(iris_bundle, 3)
    request = service_pb2.ModelInferRequest(model_name="iris", id="typed-1")
    tensor = request.inputs.add(name="input", datatype="FP32", shape=list(rows.shape))
    tensor.contents.fp32_contents.extend(rows.ravel().tolist())
    request.outputs.add(name="probabilities")
    with grpc.insecure_channel(server.grpc_address) as channel:
        response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
    assert response.id == "typed-1" and [o.name for o in response.outputs] == ["probabilities"]
    got = np.frombuffer(response.raw_output_contents[0], np.float32).reshape(3, -1)
    np.testing.assert_allclose(got, onnxruntime_outputs(iris_bundle / "model.onnx", rows)["probabilities"], rtol=1e-6)


def _error(call) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as caught:
        call()
    return caught.value


@pytest.mark.parametrize(("shape", "datatype", "code", "words"), [
    ([1, 3], "FP32", "INVALID_ARGUMENT", ["shape [1, 3]", "expected [N, 4]"]),
    ([4], "FP32", "INVALID_ARGUMENT", ["shape [4]"]),
    ([1, 4], "FP64", "INVALID_ARGUMENT", ["datatype 'FP64'", "expected FP32"]),
])
def test_a_bad_request_is_invalid_argument_with_the_rest_message(client, shape, datatype, code, words):
    values = np.zeros(shape, dtype={"FP32": np.float32, "FP64": np.float64}[datatype])
    tensor = triton.InferInput("input", shape, datatype)
    tensor.set_data_from_numpy(values)
    error = _error(lambda: client.infer("iris", [tensor]))
    assert error.status() == f"StatusCode.{code}"
    assert all(word in error.message() for word in words), error.message()
    assert re.search(r"\(request id [0-9a-f]+-[0-9a-f]+\)", error.message()), error.message()


def test_nan_unknown_model_and_unknown_output(client, iris_bundle):
    rows = iris_rows(iris_bundle, 2)
    rows[1, 2] = np.nan
    error = _error(lambda: infer(client, "iris", rows))
    assert error.status() == "StatusCode.INVALID_ARGUMENT" and "row 2" in error.message() and "NaN" in error.message()
    error = _error(lambda: infer(client, "absent", iris_rows(iris_bundle, 1)))
    assert error.status() == "StatusCode.NOT_FOUND" and "unknown model 'absent'" in error.message() and "iris" in error.message()
    wanted = [triton.InferRequestedOutput("nope")]
    error = _error(lambda: infer(client, "iris", iris_rows(iris_bundle, 1), outputs=wanted))
    assert error.status() == "StatusCode.INVALID_ARGUMENT" and "unknown output 'nope'" in error.message()


def test_raw_contents_of_the_wrong_size_and_both_encodings_are_refused(server, iris_bundle):
    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        short = service_pb2.ModelInferRequest(model_name="iris", raw_input_contents=[b"\0" * 12])
        short.inputs.add(name="input", datatype="FP32", shape=[1, 4])
        both = service_pb2.ModelInferRequest(model_name="iris", raw_input_contents=[b"\0" * 16])
        tensor = both.inputs.add(name="input", datatype="FP32", shape=[1, 4])
        tensor.contents.fp32_contents.extend([0.0] * 4)
        for request, words in ((short, "holds 12 bytes"), (both, "not both")):
            with pytest.raises(grpc.RpcError) as caught:
                stub.ModelInfer(request)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and words in caught.value.details()


def test_the_request_id_is_taken_and_returned(server, iris_bundle):
    rows = iris_rows(iris_bundle, 1)
    request = service_pb2.ModelInferRequest(model_name="iris", raw_input_contents=[rows.tobytes()])
    request.inputs.add(name="input", datatype="FP32", shape=[1, 4])
    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        _, call = stub.ModelInfer.with_call(request, metadata=(("x-request-id", "order-42"),))
        assert dict(call.trailing_metadata())["x-request-id"] == "order-42"
        _, call = stub.ModelInfer.with_call(request)
        made = dict(call.trailing_metadata())["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]+-[0-9a-f]+", made)
    deadline = time.monotonic() + 5  # the access log is flushed in blocks
    while "id=order-42" not in server.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert re.search(r'"GRPC /inference.GRPCInferenceService/ModelInfer" OK [0-9.]+ms id=order-42', server.output())


def test_async_clients_share_batches_with_rest_and_get_their_own_rows(server, iris_bundle):
    """40 gRPC (asyncio client) and 40 REST requests at once, each of a different row: every answer
    is onnxruntime's for its own row."""
    rows = iris_rows(iris_bundle, 80)
    wanted = onnxruntime_outputs(iris_bundle / "model.onnx", rows)["probabilities"]

    async def main() -> list[np.ndarray]:
        async with triton_aio.InferenceServerClient(url=server.grpc_address) as grpc_client, httpx.AsyncClient() as http:
            async def by_grpc(row: np.ndarray) -> np.ndarray:
                tensor = triton_aio.InferInput("input", [1, 4], "FP32")
                tensor.set_data_from_numpy(row[None])
                return (await grpc_client.infer("iris", [tensor])).as_numpy("probabilities")[0]

            async def by_rest(row: np.ndarray) -> np.ndarray:
                body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": row.tolist()}]}
                answer = (await http.post(f"{server.url}/v2/models/iris/infer", json=body)).json()
                return np.asarray(next(o for o in answer["outputs"] if o["name"] == "probabilities")["data"], np.float32)

            return await asyncio.gather(*(by_grpc(row) if i % 2 else by_rest(row) for i, row in enumerate(rows)))

    answers = np.stack(asyncio.run(main()))
    np.testing.assert_allclose(answers, wanted, rtol=1e-6, atol=1e-7)


def test_streaming_answers_each_request_and_a_bad_one_with_its_message(client, iris_bundle):
    answers: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        rows = iris_rows(iris_bundle, 2)
        for index, batch in enumerate((rows[:1], np.zeros((1, 3), np.float32), rows[1:])):
            tensor = triton.InferInput("input", list(batch.shape), "FP32")
            tensor.set_data_from_numpy(batch)
            client.async_stream_infer("iris", [tensor], request_id=str(index))
        got = [answers.get(timeout=20) for _ in range(3)]
    finally:
        client.stop_stream()
    wanted = onnxruntime_outputs(iris_bundle / "model.onnx", rows)["probabilities"]
    (first, none1), (bad, error), (third, none3) = got
    assert none1 is None and none3 is None and bad is None
    np.testing.assert_allclose(first.as_numpy("probabilities")[0], wanted[0], rtol=1e-6)
    np.testing.assert_allclose(third.as_numpy("probabilities")[0], wanted[1], rtol=1e-6)
    assert "shape [1, 3]" in error.message()


def test_statistics_and_metrics_count_both_front_ends(server, client, iris_bundle):
    before = client.get_inference_statistics("iris", as_json=True)["model_stats"][0]
    rows = iris_rows(iris_bundle, 3)
    infer(client, "iris", rows)
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [3, 4], "data": rows.ravel().tolist()}]}
    assert httpx.post(f"{server.url}/v2/models/iris/infer", json=body).status_code == 200
    bad = triton.InferInput("input", [1, 3], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 3), np.float32))
    _error(lambda: client.infer("iris", [bad]))
    after = client.get_inference_statistics("iris", as_json=True)["model_stats"][0]
    count = lambda stats, key: int(stats["inference_stats"][key].get("count", 0))  # noqa: E731
    assert count(after, "success") - count(before, "success") == 2
    assert count(after, "fail") - count(before, "fail") == 1
    assert int(after["inference_count"]) - int(before.get("inference_count", 0)) == 6
    rest = httpx.get(f"{server.url}/v2/models/iris/stats").json()["model_stats"][0]
    batches = metric(server, 'pipeline_serve_batch_size_count{model="iris",version="1"}')
    rows_run = metric(server, 'pipeline_serve_batch_size_sum{model="iris",version="1"}')
    assert rest["execution_count"] == batches and rest["inference_count"] == rows_run
    assert metric(server, 'pipeline_serve_requests_total{code="INVALID_ARGUMENT",endpoint="infer",model="iris",protocol="grpc",version="1"}') >= 1
    successes = sum(metric(server, f'pipeline_serve_requests_total{{code="{code}",endpoint="infer",model="iris",protocol="{protocol}",version="1"}}')
                    for code, protocol in (("200", "http"), ("OK", "grpc")))
    assert successes == rest["inference_stats"]["success"]["count"]


def test_sigterm_lets_rpcs_in_flight_finish_and_exits_0(iris_bundle, tmp_path):
    """Requests held 400 ms in the batching queue when SIGTERM arrives are answered, and the server
    exits 0; afterwards nothing listens."""
    server = start([f"iris:1={iris_bundle}", "--max-queue-delay-us", "400000", "--max-batch-size", "64", "--no-access-log"], tmp_path, grpc=True)
    rows = iris_rows(iris_bundle, 8)
    results: list = []

    def call(row: np.ndarray) -> None:
        client = triton.InferenceServerClient(url=server.grpc_address)
        try:
            results.append(infer(client, "iris", row[None]).as_numpy("probabilities")[0])
        except InferenceServerException as error:
            results.append(error)

    threads = [threading.Thread(target=call, args=(row,)) for row in rows]
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # queued, waiting for the batch delay
    code = server.stop()
    for thread in threads:
        thread.join(30)
    assert code == 0, server.output()
    assert len(results) == 8 and all(isinstance(r, np.ndarray) for r in results), results
    wanted = onnxruntime_outputs(iris_bundle / "model.onnx", rows)["probabilities"]
    assert sorted(map(tuple, np.round(np.stack(results), 5))) == sorted(map(tuple, np.round(wanted, 5)))


def test_a_grpc_port_in_use_stops_the_server_with_exit_2(iris_bundle, tmp_path):
    port = free_port()
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = deploy("serve", iris_bundle, "--host", "127.0.0.1", "--port", str(free_port()), "--grpc-port", str(port), cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"cannot listen for gRPC on 127.0.0.1 port {port}" in done.stderr and "Traceback" not in done.stderr


def test_the_descriptor_set_holds_what_the_proto_files_declare():
    """``inference.binpb`` is compiled from the .proto files beside it: every message and RPC they
    declare is in it (a .proto edited without regenerating the set fails here)."""
    from pipeline_core_deploy.serve import protos

    folder = Path(protos.__file__).parent
    service = (folder / "grpc_service.proto").read_text()
    declared_rpcs = set(re.findall(r"^\s*rpc (\w+)\(", service, re.MULTILINE))
    assert declared_rpcs == set(protos.methods())
    for name in ("grpc_service", "model_config"):
        text = re.sub(r"//.*", "", (folder / f"{name}.proto").read_text())
        for message in re.findall(r"^message (\w+)", text, re.MULTILINE):
            assert protos.message(message).DESCRIPTOR.name == message
