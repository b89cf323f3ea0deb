"""Request ids on the REST side, by httpx against a real server: a client's ``X-Request-ID`` comes
back in the response header, in the access log line and in an error body; a request without one, or
with one that could split or pad a log line, gets a made id, unique per request. (The gRPC side's
ids are tested in test_grpc.py.)"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from processes import Server, serving

MADE = re.compile(r"[0-9a-f]{12}-[0-9a-f]+")


@pytest.fixture(scope="module")
def server(iris_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving([f"iris:1={iris_bundle}"], tmp_path_factory.mktemp("ids")) as running:
        yield running


def _logged(server: Server, text: str) -> bool:
    deadline = time.monotonic() + 5  # the access log is flushed in blocks
    while time.monotonic() < deadline:
        if text in server.output():
            return True
        time.sleep(0.1)
    return False


def test_a_client_id_is_returned_and_logged(server):
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]}
    response = httpx.post(f"{server.url}/v2/models/iris/infer", json=body, headers={"X-Request-ID": "checkout-7781"})
    assert response.status_code == 200 and response.headers["x-request-id"] == "checkout-7781"
    assert _logged(server, '"POST /v2/models/iris/infer HTTP/1.1" 200')
    assert re.search(r'"POST /v2/models/iris/infer HTTP/1.1" 200 [0-9.]+ms id=checkout-7781', server.output())


def test_an_error_body_carries_the_id(server):
    for path, status in (("/v2/models/absent/infer", 404), ("/v2/models/iris/config/extra", 404), ("/v2/models/iris", 200)):
        response = httpx.post(f"{server.url}{path}", json={}, headers={"X-Request-ID": f"e-{status}"}) if status == 404 \
            else httpx.get(f"{server.url}{path}", headers={"X-Request-ID": "meta"})
        assert response.status_code == status, response.text
        assert response.headers["x-request-id"] in (f"e-{status}", "meta")
        if status != 200:
            assert response.json()["request_id"] == f"e-{status}"
    bad = httpx.post(f"{server.url}/v2/models/iris/infer", content=b"{", headers={"X-Request-ID": "broken-body"})
    assert bad.status_code == 400 and bad.json()["request_id"] == "broken-body" and "not valid JSON" in bad.json()["error"]


@pytest.mark.parametrize("given", [None, "", "has space", "x" * 129, "tab\there", "naïve"])
def test_a_missing_or_unusable_id_is_replaced_by_a_made_one(server, given):
    headers = {} if given is None else {"X-Request-ID": given.encode("utf-8")}
    ids = {httpx.get(f"{server.url}/v2/health/ready", headers=headers).headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3 and all(MADE.fullmatch(made) for made in ids), ids
