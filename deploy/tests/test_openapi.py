"""The OpenAPI document of the REST routes (serve/openapi.json, served at ``GET /openapi.json``): it
names every route the server has and no other, and a property-based fuzzer that reads it
(schemathesis) finds no 5xx and no hang on a live server on the loopback address, bounded in
examples per operation and in time. The fuzzer runs twice: on the document as it is (random model
names: routing, 404s and every body shape), and with the path parameters pinned to the served models
and one unknown name, so that generated bodies reach the models' checks."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pipeline_core_deploy.serve.app import StarletteRoutes, openapi_document
from pipeline_core_deploy.serve.dataplane import DataPlane, ServerSettings
from pipeline_core_deploy.serve.metrics import Metrics
from pipeline_core_deploy.serve.models import Repository

from processes import Server, serving

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
FUZZ_SECONDS = 240  # the bound on one fuzzer run; each takes about 20 s on the 2-core machine
HOT_ROUTES = {(method, f"{prefix}/{action}") for method in ("POST",) for action in ("infer", "predict")
              for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}")}


@pytest.fixture(scope="module")
def server(bundle_of: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving([f"iris:1={bundle_of['iris']}", f"image:1={bundle_of['image']}", "--no-access-log"], tmp_path_factory.mktemp("openapi")) as running:
        yield running


def documented() -> set[tuple[str, str]]:
    paths = json.loads(openapi_document())["paths"]
    return {(method.upper(), path) for path, operations in paths.items() for method in operations}


def test_the_document_names_every_route_and_no_other():
    plane = DataPlane(Repository([]), ServerSettings(), Metrics())
    routed = {(method, route.path) for route in StarletteRoutes(plane).routes() for method in route.methods if method != "HEAD"}
    assert documented() == routed | HOT_ROUTES


def test_the_server_serves_the_document(server):
    response = httpx.get(f"{server.url}/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.content == openapi_document() and response.json()["openapi"].startswith("3.")


def _fuzz(location: str, base: str | None, folder: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [str(SCHEMATHESIS), "run", location, *(["--url", base] if base else []), "--checks", "not_a_server_error",
               "--max-examples", "20", "--request-timeout", "10", "--seed", "7", "--workers", "1", "--no-color", *extra]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=FUZZ_SECONDS)


def test_fuzzing_the_document_finds_no_server_error(server, tmp_path):
    done = _fuzz(f"{server.url}/openapi.json", None, tmp_path)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "Tested: " in done.stdout
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200, server.output()[-3000:]


def test_fuzzing_the_served_models_finds_no_server_error(server, tmp_path):
    document = json.loads(openapi_document())
    for operations in document["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                parameter["schema"] = {"enum": ["iris", "image", "absent"]} if parameter["name"] == "name" else {"enum": ["1", "9"]}
    (tmp_path / "pinned.json").write_text(json.dumps(document))
    # unloading would leave the other operations nothing to reach; the first run unloads and loads
    done = _fuzz(str(tmp_path / "pinned.json"), server.url, tmp_path, "--exclude-path-regex", "/unload$")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200, server.output()[-3000:]
