"""A model trained on a table with strings and blanks (issue 33): model.onnx takes the raw columns
and answers them as the training pipeline does, checked at export (held-out rows and probes) and
here from the deploy side: a CSV or JSON file with blanks in every spelling, a category never seen
in training, columns in another order; and each bad cell refused by line and column. A real run,
real files, the bundle's own torch-free predict.py."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import numpy as np
import onnx
import onnxruntime
import pytest
from click.testing import CliRunner

from pipeline_core.cli import cli
from pipeline_core.data.columns import ColumnEncoder, ColumnEncoding
from pipeline_core.engine import Noise, Tolerance, attach_columns, check_raw_columns
from pipeline_core_deploy import predict

from helpers import free_port, start, write_mixed_table

PIPELINE = """
[pipeline]
name = "table"
seed = 1

[data]
name = "csv"
path = "table.csv"
target = "species"
missing_indicator = true

[model]
name = "mlp"
hidden_sizes = [16]

[train]
epochs = 15
batch_size = 16

[train.optimizer]
name = "adam"
lr = 0.02

[train.loss]
name = "cross_entropy"

[export]
formats = ["onnx", "torchscript"]
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("table")
    write_mixed_table(folder)
    (folder / "pipeline.toml").write_text(textwrap.dedent(PIPELINE).lstrip())
    result = CliRunner().invoke(cli, ["run", str(folder / "pipeline.toml"), "--out", str(folder / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    return folder / "run"


def _session_answers(bundle: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], feeds)[0]


def test_the_export_checked_raw_rows_and_probes(run_dir):
    report = json.loads((run_dir / "export_report.json").read_text())
    raw = report["onnx"]["raw_columns"]
    assert raw["passed"] and raw["error_ratio"] <= 1.0
    assert raw["probes"] == 5 + 1 + 2  # a blank in each column, all blank, an unseen value in each category
    assert "encoded matrix" in report["torchscript"]["takes"]
    metadata = json.loads((run_dir / "bundle" / "metadata.json").read_text())
    assert [c["name"] for c in metadata["columns"]] == ["island", "bill", "mass", "sex", "tagged"]
    assert metadata["columns"][0]["values"] == ["North", "South"]
    assert metadata["batch_independent"] == {"model.onnx": True}
    graph = onnxruntime.InferenceSession(str(run_dir / "bundle" / "model.onnx")).get_inputs()
    assert [(i.name, i.type) for i in graph] == [("island", "tensor(string)"), ("bill", "tensor(float)"), ("mass", "tensor(float)"),
                                                 ("sex", "tensor(string)"), ("tagged", "tensor(string)")]


ROWS_CSV = """\
tagged,mass,bill,sex,island
yes,3510,40.1,male,North
,,,,
NO,NA,46.0,N/A,Atlantis
True,4300,,female,South
"""


def test_predict_answers_raw_rows_as_the_model_takes_them(run_dir, tmp_path):
    (tmp_path / "rows.csv").write_text(ROWS_CSV)
    out = tmp_path / "out.json"
    assert predict.predict(run_dir, tmp_path / "rows.csv", out) == 4
    records = json.loads(out.read_text())
    nan = np.nan
    feeds = {  # the same rows, fed to onnxruntime by hand: blanks as NaN and "", columns by name
        "island": np.array([["North"], [""], ["Atlantis"], ["South"]], dtype=object),
        "bill": np.array([[40.1], [nan], [46.0], [nan]], dtype=np.float32),
        "mass": np.array([[3510], [nan], [nan], [4300]], dtype=np.float32),
        "sex": np.array([["male"], [""], [""], ["female"]], dtype=object),
        "tagged": np.array([["yes"], [""], ["NO"], ["True"]], dtype=object),
    }
    expected = _session_answers(run_dir / "bundle", feeds)
    got = np.array([[r[f"probability_{c}"] for c in "ABC"] for r in records])
    assert np.allclose(got, expected, rtol=0, atol=1e-7)
    as_json = tmp_path / "rows.json"  # JSON records: null is a blank, numbers are numbers
    as_json.write_text(json.dumps([{"island": "Atlantis", "bill": 46.0, "mass": None, "sex": None, "tagged": "no"}]))
    out_json = tmp_path / "out2.json"
    predict.predict(run_dir, as_json, out_json)
    assert json.loads(out_json.read_text())[0] == records[2]


@pytest.mark.parametrize("text, message", [
    ("island,bill,mass,sex,tagged\nNorth,forty,3500,male,yes\n", "line 2: data row 1, column 'bill': 'forty' is not a number"),
    ("island,bill,mass,sex,tagged\nNorth,40,3500,male,maybe\n", "column 'tagged': 'maybe' is not a yes/no value"),
    ("island,bill,mass,sex\nNorth,40,3500,male\n", "missing column(s) ['tagged']"),
    ("island,bill,mass,sex,tagged\nNorth,inf,3500,male,yes\n", "column 'bill': 'inf' is not finite"),
])
def test_bad_cells_are_refused_by_line_and_column(run_dir, tmp_path, text, message):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(predict.DeployError) as caught:
        predict.predict(run_dir, tmp_path / "bad.csv", tmp_path / "out.csv")
    assert message in str(caught.value)
    assert not (tmp_path / "out.csv").exists()


def test_parquet_rows_with_nulls_answer_as_the_csv_does(run_dir, tmp_path):
    pyarrow = pytest.importorskip("pyarrow")
    import pyarrow.parquet as parquet

    (tmp_path / "rows.csv").write_text(ROWS_CSV)
    predict.predict(run_dir, tmp_path / "rows.csv", tmp_path / "from_csv.json")
    columns = {"tagged": ["yes", None, "NO", "True"], "mass": [3510.0, None, None, 4300.0], "bill": [40.1, None, 46.0, None],
               "sex": ["male", None, None, "female"], "island": ["North", None, "Atlantis", "South"]}
    parquet.write_table(pyarrow.table(columns), tmp_path / "rows.parquet")
    predict.predict(run_dir, tmp_path / "rows.parquet", tmp_path / "from_parquet.json")
    assert json.loads((tmp_path / "from_parquet.json").read_text()) == json.loads((tmp_path / "from_csv.json").read_text())


def test_npy_is_refused_with_the_reason(run_dir, tmp_path):
    np.save(tmp_path / "rows.npy", np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(predict.DeployError, match="raw table columns.*cannot hold"):
        predict.predict(run_dir, tmp_path / "rows.npy")


def test_numbers_far_outside_their_training_range_are_flagged_or_refused(run_dir, tmp_path):
    (tmp_path / "rows.csv").write_text("island,bill,mass,sex,tagged\nNorth,40,3500,male,yes\nSouth,,900000,female,no\nNorth,,,,\n")
    out = tmp_path / "out.json"
    predict.predict(run_dir, tmp_path / "rows.csv", out, range_check="flag")
    assert [record["out_of_range"] for record in json.loads(out.read_text())] == [[], ["mass"], []]  # a blank is never out of range
    with pytest.raises(predict.DeployError, match=r"line 3: data row 2: 'mass' is 900000.0, outside the training range"):
        predict.predict(run_dir, tmp_path / "rows.csv", tmp_path / "refused.json", range_check="refuse")
    metadata = json.loads((run_dir / "bundle" / "metadata.json").read_text())
    mass = next(c for c in metadata["columns"] if c["name"] == "mass")
    assert 3000 < mass["min"] < mass["max"] < 5000


def test_the_bundles_own_predict_script_reads_raw_columns_without_torch(run_dir, tmp_path):
    (tmp_path / "rows.csv").write_text(ROWS_CSV)
    blocker = tmp_path / "block" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch is blocked in this test')\n")
    result = subprocess.run([sys.executable, "-P", str(run_dir / "bundle" / "predict.py"), str(run_dir / "bundle"), "--input",
                             str(tmp_path / "rows.csv")], capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(tmp_path / "block"), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("label,") and len(result.stdout.splitlines()) == 5


@pytest.fixture(scope="module")
def served(run_dir, tmp_path_factory):
    """The raw-column bundle served over REST and gRPC, with a batching window so requests share batches."""
    tmp = tmp_path_factory.mktemp("served")
    grpc_port = free_port()
    server = start([str(run_dir / "bundle"), "--grpc-port", str(grpc_port), "--max-queue-delay-us", "2000"], tmp)
    yield server, grpc_port
    assert server.stop() == 0, server.output()


FEEDS = {  # three rows: a blank in every string spelling, a NaN number, an unseen category
    "island": np.array([["North"], [""], ["Atlantis"]], dtype=object),
    "bill": np.array([[40.1], [np.nan], [46.0]], dtype=np.float32),
    "mass": np.array([[3510], [np.nan], [np.nan]], dtype=np.float32),
    "sex": np.array([["male"], ["NA"], [""]], dtype=object),
    "tagged": np.array([["yes"], [""], ["NO"]], dtype=object),
}


def _inputs(module, binary: bool = True):
    inputs = []
    for name in ["tagged", "mass", "bill", "sex", "island"]:  # any order
        value = FEEDS[name]
        tensor = module.InferInput(name, list(value.shape), "FP32" if value.dtype == np.float32 else "BYTES")
        tensor.set_data_from_numpy(value, **({"binary_data": binary} if module.__name__.endswith("http") else {}))
        inputs.append(tensor)
    return inputs


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_http_sends_one_input_per_column(run_dir, served, binary):
    import tritonclient.http as triton

    server, _ = served
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    metadata = client.get_model_metadata("table")
    assert [(i["name"], i["datatype"], i["shape"]) for i in metadata["inputs"]] == [
        ("island", "BYTES", [-1, 1]), ("bill", "FP32", [-1, 1]), ("mass", "FP32", [-1, 1]), ("sex", "BYTES", [-1, 1]), ("tagged", "BYTES", [-1, 1])]
    assert metadata["parameters"]["columns"][0]["values"] == ["North", "South"]
    if not binary:  # JSON has no NaN: a blank number is null
        body = {"inputs": [{"name": n, "datatype": "FP32" if v.dtype == np.float32 else "BYTES", "shape": list(v.shape),
                            "data": [None if isinstance(x, float) and np.isnan(x) else x for x in v.reshape(-1).tolist()]}
                           for n, v in FEEDS.items()]}
        answer = httpx.post(f"{server.url}/v2/models/table/infer", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        got = np.array(next(o for o in answer.json()["outputs"] if o["name"] == "probabilities")["data"]).reshape(3, 3)
    else:
        got = client.infer("table", _inputs(triton)).as_numpy("probabilities")
    assert np.allclose(got, _session_answers(run_dir / "bundle", {k: v for k, v in FEEDS.items()}), rtol=0, atol=1e-7)
    records = [{"island": "Atlantis", "bill": 46.0, "mass": None, "sex": "", "tagged": "NO"}]  # row 3 of FEEDS, as JSON records
    answer = httpx.post(f"{server.url}/v2/models/table/predict", json=records, timeout=30)
    assert answer.status_code == 200, answer.text
    assert np.allclose([answer.json()["predictions"][0][f"probability_{c}"] for c in "ABC"], got[2], rtol=0, atol=1e-7)


def test_tritonclient_grpc_and_bad_cells_get_invalid_argument(run_dir, served):
    import tritonclient.grpc as triton_grpc
    from tritonclient.utils import InferenceServerException

    _, grpc_port = served
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    got = client.infer("table", _inputs(triton_grpc)).as_numpy("probabilities")
    assert np.allclose(got, _session_answers(run_dir / "bundle", FEEDS), rtol=0, atol=1e-7)
    bad = _inputs(triton_grpc)
    bad[0].set_data_from_numpy(np.array([["yes"], ["maybe"], ["no"]], dtype=object))  # 'tagged'
    with pytest.raises(InferenceServerException) as caught:
        client.infer("table", bad)
    assert "StatusCode.INVALID_ARGUMENT" in str(caught.value.status()) and "data row 2, column 'tagged': 'maybe' is not a yes/no value" in caught.value.message()


@pytest.mark.parametrize("change, message", [
    (lambda inputs: inputs[:-1], "missing ['tagged']"),
    (lambda inputs: [{**inputs[0], "datatype": "FP32"}, *inputs[1:]], "input 'island': datatype 'FP32' does not match the model's; expected BYTES"),
    (lambda inputs: [{**inputs[0], "shape": [3]}, *inputs[1:]], "input 'island': shape [3] does not match the model's input; expected [N, 1]"),
    (lambda inputs: [{**inputs[0], "data": [1, 2, 3]}, *inputs[1:]], "input 'island': data row 1 holds 1; a BYTES column takes strings"),
    (lambda inputs: [*inputs[:1], {**inputs[1], "data": ["40", None, 46]}, *inputs[2:]], "input 'bill': data row 1 holds '40'; a FP32 column takes numbers"),
    (lambda inputs: [{**inputs[0], "shape": [2, 1], "data": ["North", "South"]}, *inputs[1:]], "every column holds one value per row"),
])
def test_bad_column_tensors_get_400_saying_what_is_expected(served, change, message):
    server, _ = served
    inputs = [{"name": n, "datatype": "FP32" if v.dtype == np.float32 else "BYTES", "shape": list(v.shape),
               "data": [None if isinstance(x, float) and np.isnan(x) else x for x in v.reshape(-1).tolist()]} for n, v in FEEDS.items()]
    answer = httpx.post(f"{server.url}/v2/models/table/infer", json={"inputs": change(inputs)}, timeout=30)
    assert answer.status_code == 400 and message in answer.json()["error"], answer.text


def test_the_raw_check_fails_when_the_graph_encodes_differently(run_dir):
    """The end-to-end check can fail: a graph whose fill value is not the training one answers blank rows wrong."""
    import torch

    module = torch.jit.load(str(run_dir / "bundle" / "model.torchscript.pt"))
    network = onnx.load(str(run_dir / "bundle" / "model.onnx"))
    metadata = json.loads((run_dir / "bundle" / "metadata.json").read_text())

    encodings = []
    for entry in metadata["columns"]:
        if entry["type"] == "number":
            encodings.append(ColumnEncoding(entry["name"], "number", entry["fill"], entry["mean"], entry["std"], len(entry["encoded_as"]) == 2))
        elif entry["type"] == "category":
            levels = tuple(name.split("=", 1)[1] for name in entry["encoded_as"])
            encodings.append(ColumnEncoding(entry["name"], "category", levels=levels))
        else:
            encodings.append(ColumnEncoding(entry["name"], "binary", indicator=len(entry["encoded_as"]) == 2))
    right = ColumnEncoder(tuple(encodings))
    wrong = ColumnEncoder(tuple(e if e.name != "mass" else ColumnEncoding("mass", "number", e.fill + 500, e.mean, e.std, e.indicator)
                                for e in encodings))
    # the shipped graph is rebuilt from its network (the nodes after the encoding) with the wrong fill value
    del network.graph.node[: len([n for n in network.graph.node if n.output[0].startswith("columns::")]) + 1]
    del network.graph.input[:]
    network.graph.input.extend([onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", len(right.encoded_names)])])
    kept = {name for node in network.graph.node for name in node.input}
    initializers = [i for i in network.graph.initializer if i.name in kept]
    del network.graph.initializer[:]
    network.graph.initializer.extend(initializers)
    bad = onnxruntime.InferenceSession(attach_columns(network, wrong).SerializeToString())
    good = onnxruntime.InferenceSession(attach_columns(network, right).SerializeToString())
    rows = {"island": np.array(["North", "South"], dtype=object), "bill": np.array([40.0, 45.0]), "mass": np.array([3500.0, 4000.0]),
            "sex": np.array(["male", "female"], dtype=object), "tagged": np.array(["yes", "no"], dtype=object)}
    noise = Noise({"logits": np.full(3, 1e-6), "probabilities": np.full(3, 1e-7)}, "test", 2)

    def answers(session):
        return lambda feeds: dict(zip(["logits", "probabilities"], session.run(["logits", "probabilities"], feeds), strict=True))

    class Reference(torch.nn.Module):
        def forward(self, x):
            return module(x)

    assert check_raw_columns(answers(good), Reference(), right, rows, ("logits", "probabilities"), noise, Tolerance())["passed"]
    failed = check_raw_columns(answers(bad), Reference(), right, rows, ("logits", "probabilities"), noise, Tolerance())
    assert not failed["passed"] and "probe row" in failed["worst"]


def test_the_server_flags_a_number_far_outside_its_training_range(served):
    server, _ = served
    far = {**{n: v.copy() for n, v in FEEDS.items()}, "mass": np.array([[3500], [9e5], [np.nan]], dtype=np.float32)}
    body = {"inputs": [{"name": n, "datatype": "FP32" if v.dtype == np.float32 else "BYTES", "shape": list(v.shape),
                        "data": [None if isinstance(x, float) and np.isnan(x) else x for x in v.reshape(-1).tolist()]} for n, v in far.items()]}
    answer = httpx.post(f"{server.url}/v2/models/table/infer", json=body, timeout=30)
    assert answer.status_code == 200 and answer.json()["parameters"]["out_of_range_rows"] == [1], answer.text


def test_deploy_reads_the_same_cells_as_blanks_as_training():
    """The deploy side keeps its own copy of the blank tokens (it must not import the core): a token
    added to one and not the other would train a blank as a category and serve it as missing."""
    from pipeline_core.data.columns import BLANK_TOKENS as trained
    from pipeline_core_deploy.table_columns import BLANK_TOKENS as served

    assert served == trained
