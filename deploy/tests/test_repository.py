"""Triton's model repository extension on a running server, by the real tritonclient (HTTP and gRPC):
``--model-repository DIR`` serves every model folder by its name (a bundle, or numbered version
folders); ``load`` brings in a folder added later and replaces a changed model only once the new one
is verified and ready (requests sent meanwhile are all answered, by the old model or the new); a
failed load leaves the old version serving and says why; ``unload`` lets queued requests finish and
then answers 404; a signed model is re-verified against the key on every load."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from bundles import build_bundle
from processes import Server, deploy, metric, serving
from samples import metadata_of, onnxruntime_outputs, rows_for


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``iris/`` (a bundle) and ``binary/1``, ``binary/2`` (Triton's layout)."""
    folder = tmp_path_factory.mktemp("repository")
    build_bundle(folder / "iris", seed=0)
    build_bundle(folder / "binary" / "1", "binary", seed=1)
    build_bundle(folder / "binary" / "2", "binary", seed=2)
    (folder / "README.txt").write_text("plain files beside the model folders are skipped\n")
    return folder


@pytest.fixture(scope="module")
def server(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(["--model-repository", str(repository)], tmp_path_factory.mktemp("serve"), grpc=True) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: Server) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=server.address)


def probabilities(server: Server, name: str, rows: np.ndarray, version: str | None = None) -> httpx.Response:
    path = f"/v2/models/{name}" + (f"/versions/{version}" if version else "") + "/infer"
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": list(rows.shape), "data": rows.ravel().tolist()}],
            "outputs": [{"name": "probabilities"}]}
    return httpx.post(server.url + path, json=body, timeout=30)


def answer(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    return np.asarray(output["data"], np.float32).reshape(output["shape"])


def replace_folder(target: Path, build) -> None:
    """Put a new bundle where ``target`` is, as a deploy script would: built beside it, then swapped in."""
    staging = target.with_name(f".{target.name}.new")
    shutil.rmtree(staging, ignore_errors=True)
    build(staging)
    shutil.rmtree(target)
    staging.rename(target)


def test_the_index_lists_every_model_folder_and_version(client):
    index = client.get_model_repository_index()
    assert sorted((entry["name"], entry["version"], entry["state"]) for entry in index) == [
        ("binary", "1", "READY"), ("binary", "2", "READY"), ("iris", "1", "READY")]


def test_a_folder_added_later_is_served_once_loaded(server, client, repository):
    rows = rows_for(metadata_of(repository / "iris"), 3).astype(np.float32)
    assert probabilities(server, "late", rows).status_code == 404
    assert [entry for entry in client.get_model_repository_index() if entry["name"] == "late"] == []
    build_bundle(repository / "late", seed=9)
    client.load_model("late")
    wanted = onnxruntime_outputs(repository / "late" / "model.onnx", rows)["probabilities"]
    np.testing.assert_allclose(answer(probabilities(server, "late", rows)), wanted, rtol=1e-6)
    assert ("late", "1", "READY") in [(e["name"], e["version"], e["state"]) for e in client.get_model_repository_index()]


def test_a_reload_replaces_the_model_without_a_failed_request(server, client, repository):
    rows = rows_for(metadata_of(repository / "iris"), 4).astype(np.float32)
    old = onnxruntime_outputs(repository / "iris" / "model.onnx", rows)["probabilities"]
    np.testing.assert_allclose(answer(probabilities(server, "iris", rows)), old, rtol=1e-6)
    replace_folder(repository / "iris", lambda folder: build_bundle(folder, seed=5))
    new = onnxruntime_outputs(repository / "iris" / "model.onnx", rows)["probabilities"]
    assert not np.allclose(old, new)
    seen: list = []
    stop = threading.Event()

    def keep_asking() -> None:
        while not stop.is_set() and len(seen) < 400:
            response = probabilities(server, "iris", rows)
            seen.append(answer(response) if response.status_code == 200 else response)

    askers = [threading.Thread(target=keep_asking) for _ in range(3)]
    for asker in askers:
        asker.start()
    try:
        triton_grpc.InferenceServerClient(url=server.grpc_address).load_model("iris")
    finally:
        stop.set()
        for asker in askers:
            asker.join(30)
    assert seen and all(isinstance(got, np.ndarray) for got in seen), [got for got in seen if not isinstance(got, np.ndarray)][:3]
    assert all(np.allclose(got, old, rtol=1e-6) or np.allclose(got, new, rtol=1e-6) for got in seen)
    np.testing.assert_allclose(answer(probabilities(server, "iris", rows)), new, rtol=1e-6)


def test_a_failed_load_leaves_the_old_version_serving_and_says_why(server, client, repository):
    rows = rows_for(metadata_of(repository / "iris"), 2).astype(np.float32)
    before = answer(probabilities(server, "iris", rows))
    with open(repository / "iris" / "MODEL_CARD.md", "a") as card:
        card.write("\nedited after sealing\n")
    with pytest.raises(InferenceServerException) as caught:
        client.load_model("iris")
    assert "failed to load model 'iris'" in caught.value.message() and "MODEL_CARD.md" in caught.value.message()
    assert "go on serving" in caught.value.message()
    np.testing.assert_array_equal(answer(probabilities(server, "iris", rows)), before)
    entry = next(e for e in client.get_model_repository_index() if e["name"] == "iris")
    assert entry["state"] == "READY" and entry["reason"].startswith("the last load failed") and "MODEL_CARD.md" in entry["reason"]
    replace_folder(repository / "iris", lambda folder: build_bundle(folder, seed=5))
    client.load_model("iris")
    assert next(e for e in client.get_model_repository_index() if e["name"] == "iris")["reason"] == ""


def test_unload_lets_queued_requests_finish_then_answers_404(tmp_path):
    """A model configured on the command line (not from a repository folder), with a 3 s batching
    delay that holds requests in its queue while the unload arrives (long enough for all six to
    arrive first on a loaded machine)."""
    bundle = build_bundle(tmp_path / "binary", "binary", seed=2)
    rows = rows_for(metadata_of(bundle), 6).astype(np.float32)
    wanted = onnxruntime_outputs(bundle / "model.onnx", rows)
    results: list = []
    with serving([f"binary:2={bundle}", "--max-queue-delay-us", "3000000", "--no-access-log"], tmp_path) as server:
        client = triton.InferenceServerClient(url=server.address)

        def ask(row: np.ndarray) -> None:
            body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, len(row)], "data": row.tolist()}]}
            results.append(httpx.post(f"{server.url}/v2/models/binary/versions/2/infer", json=body, timeout=30))

        askers = [threading.Thread(target=ask, args=(row,)) for row in rows]
        for asker in askers:
            asker.start()
        deadline = time.monotonic() + 10
        while _queued(server) < len(rows) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert _queued(server) == len(rows), "the requests did not reach the queue"
        client.unload_model("binary")
        for asker in askers:
            asker.join(30)
        assert [r.status_code for r in results] == [200] * 6, [r.text for r in results]
        first = next(iter(wanted))
        for response in results:
            value = np.asarray(next(o for o in response.json()["outputs"] if o["name"] == first)["data"], np.float32)
            assert any(np.allclose(value, row, rtol=1e-6) for row in wanted[first].reshape(len(rows), -1))
        gone = probabilities(server, "binary", rows[:1])
        assert gone.status_code == 404 and "unknown model 'binary'" in gone.json()["error"]
        assert not client.is_model_ready("binary")
        entry = next(e for e in client.get_model_repository_index() if e["name"] == "binary")
        assert (entry["state"], entry["reason"]) == ("UNAVAILABLE", "unloaded")
        assert httpx.post(f"{server.url}/v2/repository/index", json={"ready": True}).json() == []
        client.load_model("binary")  # from where the command line configured it
        assert client.is_model_ready("binary", "2")


def _queued(server: Server) -> float:
    return metric(server, 'pipeline_serve_queue_depth{model="binary",version="2"}')


@pytest.mark.parametrize(("name", "body", "words"), [
    ("nowhere", {}, ["cannot load model 'nowhere'", "--model-repository", "iris"]),
    ("iris", {"parameters": {"config": "{}"}}, ["parameters ['config'] are not supported"]),
    ("iris", [1], ["must be a JSON object"]),
])
def test_a_load_that_cannot_be_done_is_a_400_naming_why(server, name, body, words):
    response = httpx.post(f"{server.url}/v2/repository/models/{name}/load", json=body)
    assert response.status_code == 400, response.text
    assert all(word in response.json()["error"] for word in words), response.json()
    assert httpx.post(f"{server.url}/v2/repository/models/never/unload").status_code == 400


def test_a_signed_model_is_verified_again_on_load(iris_bundle, tmp_path):
    keys = tmp_path / "keys"
    assert deploy("keygen", "--out", keys, "--name", "team", cwd=tmp_path).returncode == 0
    bundle = build_bundle(tmp_path / "iris", seed=0)
    assert deploy("sign", bundle, "--key", keys / "team.key", cwd=tmp_path).returncode == 0
    rows = rows_for(metadata_of(bundle), 2).astype(np.float32)
    with serving([f"iris={bundle}", "--verify-key", str(keys / "team.pub"), "--no-access-log"], tmp_path) as server:
        client = triton.InferenceServerClient(url=server.address)
        before = answer(probabilities(server, "iris", rows))
        replace_folder(bundle, lambda folder: build_bundle(folder, seed=3))  # a new model, not signed
        with pytest.raises(InferenceServerException) as caught:
            client.load_model("iris")
        assert "signature" in caught.value.message() or "signed" in caught.value.message(), caught.value.message()
        np.testing.assert_array_equal(answer(probabilities(server, "iris", rows)), before)
        assert deploy("sign", bundle, "--key", keys / "team.key", cwd=tmp_path).returncode == 0
        client.load_model("iris")
        wanted = onnxruntime_outputs(bundle / "model.onnx", rows)["probabilities"]
        np.testing.assert_allclose(answer(probabilities(server, "iris", rows)), wanted, rtol=1e-6)


def test_a_request_read_for_a_replaced_version_goes_to_its_replacement_only_if_it_reads_rows_alike(tmp_path):
    """In process, on the real data plane: rows put in one version's feature order are answered by
    a replacement with the same features, and refused (503, retry) by one whose features are in
    another order, which would take every value for another feature and answer wrong."""
    import asyncio

    from pipeline_core_deploy.serve.batching import Overloaded
    from pipeline_core_deploy.serve.dataplane import DataPlane, ServerSettings
    from pipeline_core_deploy.serve.metrics import Metrics
    from pipeline_core_deploy.serve.models import ModelSpec, Repository, open_models

    first = build_bundle(tmp_path / "first", seed=0)
    names = metadata_of(first)["feature_names"]
    alike = build_bundle(tmp_path / "alike", seed=5)
    reordered = build_bundle(tmp_path / "reordered", seed=5, metadata={"feature_names": list(reversed(names))})
    rows = rows_for(metadata_of(first), 2).astype(np.float32)

    async def scenario() -> None:
        plane = DataPlane(Repository(open_models([ModelSpec(first, "iris", "1")])), ServerSettings(), Metrics())
        async with plane.running():
            for replacement, answered in ((alike, True), (reordered, False)):
                old = plane.model("iris")
                [new] = open_models([ModelSpec(replacement, "iris", "1")])
                plane.attach(new)
                plane.repository.replace("iris", [new])
                assert old.batcher is not None
                await old.batcher.retire()
                if answered:
                    records = await plane.predict(old, rows)
                    wanted = onnxruntime_outputs(replacement / "model.onnx", rows)["probabilities"]
                    np.testing.assert_allclose([[r[k] for k in r if k.startswith("probability_")] for r in records], wanted, rtol=1e-6)
                else:
                    with pytest.raises(Overloaded, match="reads rows differently"):
                        await plane.predict(old, rows)

    asyncio.run(scenario())
