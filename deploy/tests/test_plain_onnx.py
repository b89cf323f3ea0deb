"""A plain ``.onnx`` file, as every other model server takes one: ``serve`` and ``predict`` run it
with its input, outputs and types read from the graph, and say it is unverified (at start, in the
model metadata, in predict's warnings); what needs a bundle (``--verify-key``, ``--variant``,
``verify``, ``sign``) is refused with a message; a model repository folder holding ``model.onnx``
(Triton's layout) is served the same way. Answers are checked against onnxruntime on the same file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
import tritonclient.http as triton

from bundles import copy_bundle, make_model, sample_inputs
from processes import deploy, free_port, serving
from samples import onnxruntime_outputs


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-output MLP saved as a bare ``model.onnx``, no metadata, no manifest, in Triton's layout."""
    folder = tmp_path_factory.mktemp("plain") / "repository" / "scorer" / "3"
    folder.mkdir(parents=True)
    onnx.save_model(make_model("multiclass", seed=4), str(folder / "model.onnx"))
    return folder / "model.onnx"


def test_predict_runs_a_plain_file_and_says_it_is_unverified(plain, tmp_path):
    rows = sample_inputs("multiclass", count=5)
    np.save(tmp_path / "rows.npy", rows)
    done = deploy("predict", plain, "--input", "rows.npy", "--output", "out.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "plain ONNX file, not a bundle: UNVERIFIED" in done.stderr
    with open(tmp_path / "out.csv") as stream:
        written = [[float(v) for v in row] for row in list(csv.reader(stream))[1:]]
    first = next(iter(onnxruntime_outputs(plain, rows).values()))
    np.testing.assert_allclose(np.asarray(written), first.reshape(5, -1), rtol=1e-6)


def test_serve_takes_a_plain_file_and_the_metadata_says_unverified(plain, tmp_path):
    rows = sample_inputs("multiclass", count=4)
    wanted = onnxruntime_outputs(plain, rows)
    with serving([f"scorer={plain}"], tmp_path) as server:
        assert "UNVERIFIED: a plain ONNX file" in server.output()
        metadata = httpx.get(f"{server.url}/v2/models/scorer").json()
        assert metadata["parameters"]["verified"] is False and metadata["versions"] == ["3"]  # the folder's number
        assert [o["name"] for o in metadata["outputs"]] == list(wanted)
        client = triton.InferenceServerClient(url=server.address)
        tensor = triton.InferInput(metadata["inputs"][0]["name"], list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows)
        result = client.infer("scorer", [tensor])
        for name, value in wanted.items():
            np.testing.assert_allclose(result.as_numpy(name), value, rtol=1e-6)
        bad = httpx.post(f"{server.url}/v2/models/scorer/infer", json={"inputs": [
            {"name": metadata["inputs"][0]["name"], "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]})
        assert bad.status_code == 400 and "expected [N, 4]" in bad.json()["error"]


def test_a_repository_folder_holding_model_onnx_is_served(plain, tmp_path):
    with serving(["--model-repository", str(plain.parents[2])], tmp_path) as server:
        index = httpx.post(f"{server.url}/v2/repository/index").json()
        assert [(e["name"], e["version"], e["state"]) for e in index] == [("scorer", "3", "READY")]
        assert httpx.get(f"{server.url}/v2/models/scorer").json()["parameters"]["verified"] is False


@pytest.mark.parametrize(("command", "words"), [
    (["predict", "--input", "rows.npy", "--verify-key", "team.pub"], "--verify-key: "),
    (["predict", "--input", "rows.npy", "--variant", "int8_dynamic"], "--variant: "),
    (["verify"], "there is no manifest to verify it against"),
    (["sign", "--key", "team.key"], "a signature covers a bundle's manifest"),
])
def test_what_needs_a_bundle_is_refused_for_a_plain_file(plain, tmp_path, command, words):
    np.save(tmp_path / "rows.npy", sample_inputs("multiclass", count=2))
    assert deploy("keygen", "--out", tmp_path, "--name", "team", cwd=tmp_path).returncode == 0
    done = deploy(command[0], plain, *command[1:], cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert words in done.stderr and "plain ONNX file" in done.stderr and "Traceback" not in done.stderr


def test_a_plain_file_with_two_inputs_is_refused_with_why(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["sum"])], "two", [
        helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 2]), helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["batch", 2])])
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), str(tmp_path / "two.onnx"))
    (tmp_path / "rows.json").write_text(json.dumps([[1.0, 2.0]]))
    done = deploy("predict", "two.onnx", "--input", "rows.json", cwd=tmp_path)
    assert done.returncode == 2 and "takes 2 inputs (a, b); a model served here takes one" in done.stderr, done.stderr


def test_a_bundle_never_becomes_a_plain_file_by_losing_its_manifest(iris_bundle, tmp_path):
    """The model file of a bundle, named alone, and a repository folder whose bundle lost its
    manifest are refused: removing a file must not turn a verified bundle into an unverified one
    that is served."""
    np.save(tmp_path / "rows.npy", sample_inputs("multiclass", count=2))
    done = deploy("predict", iris_bundle / "model.onnx", "--input", "rows.npy", cwd=tmp_path)
    assert done.returncode == 2 and "belongs to a bundle (manifest.json, metadata.json beside it)" in done.stderr, done.stderr
    repository = tmp_path / "repository"
    stripped = copy_bundle(iris_bundle, repository)
    (stripped / "manifest.json").unlink()
    done = deploy("serve", "--model-repository", repository, "--port", str(free_port()), cwd=tmp_path)
    assert done.returncode == 2 and "manifest is missing" in done.stderr and "UNVERIFIED" not in done.stdout + done.stderr, done.stderr
