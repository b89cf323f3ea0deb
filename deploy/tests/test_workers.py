"""``serve --workers 2``: two processes on one REST port and one gRPC port, answered by real clients on
new connections (so the kernel spreads them): every answer right; ``/metrics`` and the statistics
the same whichever worker answers, and counting every worker's requests; an unload or load done by
one worker seen by all once it is answered; a worker killed with SIGKILL started again, serving what
the others serve; SIGTERM stopping every process with exit code 0."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc

from processes import Server, deploy, free_port, metric, start
from samples import metadata_of, onnxruntime_outputs, rows_for


@pytest.fixture(scope="module")
def server(iris_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start([f"iris:1={iris_bundle}", "--workers", "2"], tmp_path_factory.mktemp("workers"), grpc=True)
    try:
        _wait_for(lambda: len(_worker_pids(running)) == 2 and running.output().count("Application startup complete") >= 2, running)
        yield running
    finally:
        if running.process.poll() is None:
            running.stop()


def _worker_pids(server: Server) -> dict[int, int]:
    """Worker index → pid of its newest process, from the supervisor's log."""
    return {int(index): int(pid) for index, pid in re.findall(r"worker (\d+) started \(pid (\d+)\)", server.output())}


def _wait_for(condition, server: Server, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, server.output()[-4000:]
        time.sleep(0.1)


def _infer(server: Server, rows: np.ndarray) -> httpx.Response:
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": list(rows.shape), "data": rows.ravel().tolist()}],
            "outputs": [{"name": "probabilities"}]}
    return httpx.post(f"{server.url}/v2/models/iris/infer", json=body, timeout=30)  # a new connection each time


def test_both_workers_answer_and_the_figures_are_merged(server, iris_bundle):
    rows = rows_for(metadata_of(iris_bundle), 40).astype(np.float32)
    wanted = onnxruntime_outputs(iris_bundle / "model.onnx", rows)["probabilities"]
    for row, expected in zip(rows, wanted, strict=True):
        response = _infer(server, row[None])
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(np.asarray(response.json()["outputs"][0]["data"], np.float32), expected, rtol=1e-6)
    client = triton_grpc.InferenceServerClient(url=server.grpc_address)
    tensor = triton_grpc.InferInput("input", [2, 4], "FP32")
    tensor.set_data_from_numpy(rows[:2])
    np.testing.assert_allclose(client.infer("iris", [tensor]).as_numpy("probabilities"), wanted[:2], rtol=1e-6)
    series = 'pipeline_serve_requests_total{code="200",endpoint="infer",model="iris",protocol="http",version="1"}'
    scrapes = {metric(server, series) for _ in range(6)}
    assert scrapes == {40.0}, scrapes  # the same merged count whichever worker answers the scrape
    time.sleep(1.0)  # each worker writes its statistics at most every half second
    successes = {httpx.get(f"{server.url}/v2/models/iris/stats").json()["model_stats"][0]["inference_stats"]["success"]["count"]
                 for _ in range(6)}
    assert successes == {41}, successes  # 40 REST requests and one gRPC request, over both workers


def test_an_unload_and_a_load_reach_every_worker(server):
    rows = np.array([[5.1, 3.5, 1.4, 0.2]], np.float32)
    assert httpx.post(f"{server.url}/v2/repository/models/iris/unload").status_code == 200
    assert {_infer(server, rows).status_code for _ in range(10)} == {404}
    assert httpx.post(f"{server.url}/v2/repository/models/iris/load").status_code == 200
    assert {_infer(server, rows).status_code for _ in range(10)} == {200}


def test_a_killed_worker_is_started_again_and_serves_what_the_others_serve(server):
    rows = np.array([[5.1, 3.5, 1.4, 0.2]], np.float32)
    assert httpx.post(f"{server.url}/v2/repository/models/iris/unload").status_code == 200
    before = _worker_pids(server)
    os.kill(before[1], signal.SIGKILL)
    _wait_for(lambda: _worker_pids(server)[1] != before[1] and server.output().count("Application startup complete") >= 3, server)
    assert "worker 1 (pid" in server.output() and "died" in server.output()
    assert {_infer(server, rows).status_code for _ in range(12)} == {404}  # the new worker replayed the unload
    assert httpx.post(f"{server.url}/v2/repository/models/iris/load").status_code == 200
    assert {_infer(server, rows).status_code for _ in range(12)} == {200}


def test_sigterm_stops_every_worker_and_exits_0(server):
    pids = list(_worker_pids(server).values())
    assert server.stop() == 0, server.output()[-3000:]
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_grpc_port_in_use_stops_the_workers_before_they_start(iris_bundle, tmp_path):
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = deploy("serve", iris_bundle, "--port", str(free_port()), "--grpc-port", str(port), "--workers", "2", cwd=tmp_path)
    assert done.returncode == 2 and f"cannot listen for gRPC on 127.0.0.1 port {port}" in done.stderr, done.stdout + done.stderr
    assert "worker 0 started" not in done.stdout + done.stderr
