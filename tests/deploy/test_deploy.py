"""The deploy bundle and `pipeline predict`: predictions equal the trained model's, bad input and
tampered bundles are refused with clear messages, and nothing on the path imports torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

from pipeline_core.cli import cli
from pipeline_core.run.artifacts import sha256

FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


@pytest.fixture
def bundle(trained_iris, tmp_path) -> Path:
    """A fresh copy of the bundle a test may tamper with."""
    return Path(shutil.copytree(trained_iris.run_dir / "bundle", tmp_path / "bundle"))


def _expected_labels(trained_iris, rows) -> list[str]:
    with torch.no_grad():
        logits = trained_iris.model.eval()(torch.tensor(rows, dtype=torch.float32))
    return [trained_iris.data.spec.classes[i] for i in logits.argmax(dim=1).tolist()]


def _predict(*args):
    return CliRunner().invoke(cli, ["predict", *map(str, args)], catch_exceptions=False)


def test_bundle_holds_everything_a_deployer_needs(trained_iris):
    folder = trained_iris.run_dir / "bundle"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["files"]) == {"model.onnx", "model.torchscript.pt", "model.pt2", "metadata.json", "MODEL_CARD.md", "predict.py"}
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == sha256(folder / name)
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["classes"] == ["setosa", "versicolor", "virginica"]
    assert metadata["feature_names"] == FEATURES
    assert metadata["input"] == {"name": "input", "shape": ["batch", 4], "dtype": "float32"}
    assert metadata["metrics"] == trained_iris.metrics["test"]
    run_manifest = json.loads((trained_iris.run_dir / "manifest.json").read_text())
    assert metadata["config_sha256"] == run_manifest["config_sha256"]
    onnx_props = {p.key: p.value for p in onnx.load(str(folder / "model.onnx")).metadata_props}
    assert json.loads(onnx_props["metrics"]) == trained_iris.metrics["test"]
    assert onnx_props["config_sha256"] == metadata["config_sha256"]
    card = (folder / "MODEL_CARD.md").read_text()
    assert "# Model card: iris_fast" in card
    assert f"| accuracy | {trained_iris.metrics['test']['accuracy']:.4f} |" in card
    assert "python -P predict.py . --input rows.csv" in card


def test_predict_csv_with_reordered_header_matches_the_trained_model(trained_iris, bundle, tmp_path):
    order = [2, 0, 3, 1]
    lines = [",".join(FEATURES[i] for i in order)] + [",".join(str(row[i]) for i in order) for row in ROWS]
    (tmp_path / "rows.csv").write_text("\n".join(lines) + "\n")
    result = _predict(bundle, "--input", tmp_path / "rows.csv", "--output", tmp_path / "out.json")
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "out.json").read_text())
    assert [r["label"] for r in records] == _expected_labels(trained_iris, ROWS)
    for record in records:
        total = sum(v for k, v in record.items() if k.startswith("probability_"))
        assert total == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("name, write", [
    ("rows.csv", lambda p: p.write_text("\n".join(",".join(map(str, r)) for r in ROWS))),
    ("rows.npy", lambda p: np.save(p, np.array(ROWS, dtype=np.float64))),
    ("rows.json", lambda p: p.write_text(json.dumps(ROWS))),
    ("rows.json", lambda p: p.write_text(json.dumps({"inputs": [dict(zip(FEATURES, r, strict=True)) for r in ROWS]}))),
])
def test_every_input_format_gives_the_same_labels(trained_iris, bundle, tmp_path, name, write):
    write(tmp_path / name)
    result = _predict(trained_iris.run_dir, "--input", tmp_path / name, "--batch-size", 2)  # a run folder works too
    assert result.exit_code == 0, result.output
    labels = [line.split(",")[0] for line in result.output.strip().splitlines()[1:]]
    assert labels == _expected_labels(trained_iris, ROWS)


@pytest.mark.parametrize("name, content, message", [
    ("three.csv", "5.1,3.5,1.4\n", "row 1 has 3 values; the bundle expects 4 float32 value(s) per row, shape [4]: sepal length (cm), sepal width (cm)"),
    ("word.csv", "5.1,3.5,abc,0.2\n", "row 1, column 'petal length (cm)': 'abc' is not a number"),
    ("empty.csv", "", "is empty: expected rows of 4 float32 value(s) per row"),
    ("header_only.csv", ",".join(FEATURES) + "\n", "has a header but no rows"),
    ("unknown.csv", "a,b,c,d\n1,2,3,4\n", "missing column(s) ['sepal length (cm)', 'sepal width (cm)', 'petal length (cm)', 'petal width (cm)']; unknown column(s) ['a', 'b', 'c', 'd']"),
    ("nan.json", "[[1, 2, 3, 4], [1, NaN, 3, 4]]", "row 2 holds a value that is not finite"),
    ("ragged.json", "[[1, 2, 3, 4], [1, 2]]", "every value must be a number and every row the same length"),
    ("strings.json", '[["a", "b", "c", "d"]]', "every value must be a number"),
    ("object.json", '{"rows": []}', "expected a list of rows, or an object with an 'inputs' list"),
    ("rows.txt", "1,2,3,4\n", "unsupported input format '.txt'; use one of .csv, .npy, .json"),
])
def test_bad_input_is_refused_with_what_was_expected(bundle, tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    result = _predict(bundle, "--input", tmp_path / name)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_npy_with_wrong_dtype_or_shape(bundle, tmp_path):
    np.save(tmp_path / "text.npy", np.array([["a", "b", "c", "d"]]))
    result = _predict(bundle, "--input", tmp_path / "text.npy")
    assert result.exit_code == 2 and "expected a numeric array, got dtype <U1" in result.output
    np.save(tmp_path / "wide.npy", np.zeros((3, 5)))
    result = _predict(bundle, "--input", tmp_path / "wide.npy")
    assert result.exit_code == 2 and "rows have shape [5]; the bundle expects 4 float32" in result.output


def test_missing_input_file(bundle, tmp_path):
    result = _predict(bundle, "--input", tmp_path / "absent.csv")
    assert result.exit_code == 2 and "input file not found" in result.output


def test_missing_bundle_file_is_named(bundle, tmp_path):
    (bundle / "model.onnx").unlink()
    (tmp_path / "rows.json").write_text(json.dumps(ROWS))
    result = _predict(bundle, "--input", tmp_path / "rows.json")
    assert result.exit_code == 2 and f"bundle file is missing: {bundle / 'model.onnx'}" in result.output


def test_tampered_model_is_refused(bundle, tmp_path):
    with open(bundle / "model.onnx", "ab") as stream:
        stream.write(b"\0")
    (tmp_path / "rows.json").write_text(json.dumps(ROWS))
    result = _predict(bundle, "--input", tmp_path / "rows.json")
    assert result.exit_code == 2
    assert "does not match its sha256 in manifest.json" in result.output and "refusing a modified bundle" in result.output


def test_bundle_without_manifest_is_refused(bundle, tmp_path):
    (bundle / "manifest.json").unlink()
    (tmp_path / "rows.json").write_text(json.dumps(ROWS))
    result = _predict(bundle, "--input", tmp_path / "rows.json")
    assert result.exit_code == 2 and "the bundle's manifest is missing" in result.output


def test_external_data_outside_the_bundle_is_refused(bundle, tmp_path):
    proto = onnx.load(str(bundle / "model.onnx"))
    onnx.save_model(proto, str(bundle / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    shutil.move(bundle / "weights.bin", tmp_path / "weights.bin")
    proto = onnx.load(str(bundle / "model.onnx"), load_external_data=False)
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../weights.bin"
    (bundle / "model.onnx").write_bytes(proto.SerializeToString())
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"]["model.onnx"]["sha256"] = sha256(bundle / "model.onnx")  # a consistent but hostile bundle
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "rows.json").write_text(json.dumps(ROWS))
    result = _predict(bundle, "--input", tmp_path / "rows.json")
    assert result.exit_code == 2
    assert "keeps weights in external data outside the bundle ('../weights.bin'); refused" in result.output


def test_predict_never_imports_torch(bundle, tmp_path):
    (tmp_path / "rows.json").write_text(json.dumps(ROWS))
    code = textwrap.dedent(f"""
        import sys
        from pipeline_core.cli import main
        sys.argv = ["pipeline", "predict", {str(bundle)!r}, "--input", {str(tmp_path / 'rows.json')!r}]
        try:
            main()
        except SystemExit as exit:
            assert exit.code in (0, None), exit.code
        print("torch imported:", "torch" in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("torch imported: False")
    assert result.stdout.count("\n") == 5  # header, three rows, the final line


def test_bundle_predict_script_runs_with_torch_and_pipeline_core_unavailable(trained_iris, bundle, tmp_path):
    """The script inside the bundle needs only NumPy and onnxruntime: block torch, the project and its
    deploy package (the script holds the deploy side's modules as one file)."""
    (tmp_path / "rows.csv").write_text("\n".join(",".join(map(str, r)) for r in ROWS))
    code = textwrap.dedent(f"""
        import runpy, sys
        sys.modules["torch"] = None
        sys.modules["pipeline_core"] = None
        sys.modules["pipeline_core_deploy"] = None
        sys.argv = ["predict.py", {str(bundle)!r}, "--input", {str(tmp_path / 'rows.csv')!r}, "--output", {str(tmp_path / 'out.csv')!r}]
        runpy.run_path({str(bundle / 'predict.py')!r}, run_name="__main__")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    labels = [line.split(",")[0] for line in (tmp_path / "out.csv").read_text().splitlines()[1:]]
    assert labels == _expected_labels(trained_iris, ROWS)


def test_bundle_predict_script_reports_bad_input_with_exit_code_2(bundle, tmp_path):
    (tmp_path / "rows.csv").write_text("1,2\n")
    result = subprocess.run([sys.executable, str(bundle / "predict.py"), str(bundle), "--input", str(tmp_path / "rows.csv")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "row 1 has 2 values" in result.stderr
