"""``pipeline-deploy predict`` on bundles built without torch: what it writes is what onnxruntime
computes from the bundle's graph, for every input format and task; bad input exits 2 with a message
that says where, never a traceback."""

from __future__ import annotations

import pytest

from bundles import INT8
from processes import deploy
from samples import assert_same_columns, expected_predictions, metadata_of, read_columns, rows_for, write_inputs

CASES = [("iris", ".csv"), ("iris", ".json"), ("iris", ".npy"), ("binary", ".csv"), ("regression", ".json"),
         ("image", ".npy"), ("image", ".csv")]


@pytest.mark.parametrize(("name", "suffix"), CASES, ids=[f"{name}{suffix}" for name, suffix in CASES])
def test_predict_writes_what_onnxruntime_computes(bundle_of, tmp_path, name, suffix):
    bundle = bundle_of[name]
    metadata = metadata_of(bundle)
    rows = rows_for(metadata)
    source = write_inputs(tmp_path / f"rows{suffix}", rows, metadata["feature_names"])
    done = deploy("predict", bundle, "--input", source, "--output", "out.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"{len(rows)} predictions written to out.csv" in done.stderr
    assert_same_columns(read_columns(tmp_path / "out.csv"), expected_predictions(bundle, rows))


def test_the_int8_variant_runs_its_own_file_one_row_at_a_time(iris_bundle, tmp_path):
    """``--variant int8_dynamic`` runs model.int8_dynamic.onnx. Its activations are quantized per call,
    so a row's answer depends on the rows beside it; the bundle records it as not batch independent,
    and predict must run each row alone: its answers are onnxruntime's for each row alone."""
    rows = rows_for(metadata_of(iris_bundle))
    variant = f"model.{INT8}.onnx"
    alone = expected_predictions(iris_bundle, rows, variant, alone=True)
    assert alone != expected_predictions(iris_bundle, rows, variant), "these rows cannot tell a batch from rows alone"
    source = write_inputs(tmp_path / "rows.npy", rows, [])
    done = deploy("predict", iris_bundle, "--input", source, "--output", "out.csv", "--variant", INT8, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "so every row runs alone" in done.stderr
    found = read_columns(tmp_path / "out.csv")
    assert_same_columns(found, alone)
    assert found["probability_setosa"] != expected_predictions(iris_bundle, rows)["probability_setosa"], "model.onnx answered, not the variant"


def test_an_unknown_variant_is_refused_with_what_the_bundle_has(iris_bundle, tmp_path):
    source = write_inputs(tmp_path / "rows.npy", rows_for(metadata_of(iris_bundle)), [])
    done = deploy("predict", iris_bundle, "--input", source, "--variant", "fp16", cwd=tmp_path)
    assert done.returncode == 2
    assert f"has no such variant; it has float32 (model.onnx), {INT8} (model.{INT8}.onnx)" in done.stderr


def _spoil_csv(text: str) -> str:
    """The second data row's second column (its CSV file's third line) made 'abc'."""
    lines = text.splitlines()
    cells = lines[2].split(",")
    cells[1] = "abc"
    lines[2] = ",".join(cells)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("suffix", "spoil", "messages"), [
    (".csv", _spoil_csv, ["rows.csv, line 3: data row 2, column 'petal length (cm)': 'abc' is not a number"]),
    (".json", lambda text: text.replace("]]", ", 1.0]]"), ["rows.json: rows have shape [5]", "sepal length (cm), sepal width (cm)"]),
], ids=["csv-cell", "json-width"])
def test_bad_input_exits_2_saying_where(iris_bundle, tmp_path, suffix, spoil, messages):
    metadata = metadata_of(iris_bundle)
    source = write_inputs(tmp_path / f"rows{suffix}", rows_for(metadata, 3)[:1] if suffix == ".json" else rows_for(metadata, 3),
                          metadata["feature_names"])
    source.write_text(spoil(source.read_text()))
    done = deploy("predict", iris_bundle, "--input", source, "--output", "out.csv", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert all(message in done.stderr for message in messages), done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "out.csv").exists(), "a failed prediction left an output file"


def test_an_image_model_takes_a_folder_of_png_files(image_bundle, tmp_path):
    """PNG files are decoded with Pillow to the model's [1, 8, 8] uint8 pixels; each row names its file."""
    from PIL import Image

    rows = rows_for(metadata_of(image_bundle), 4)
    folder = tmp_path / "images"
    folder.mkdir()
    names = [f"digit_{i}.png" for i in range(len(rows))]
    for name, pixels in zip(names, rows, strict=True):
        Image.fromarray(pixels[0]).save(folder / name)  # 8-bit grey ("L")
    done = deploy("predict", image_bundle, "--input", folder, "--output", "out.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert_same_columns(read_columns(tmp_path / "out.csv"), {"file": names, **expected_predictions(image_bundle, rows)})


def test_a_parquet_input_without_pyarrow_says_what_to_install(iris_bundle, tmp_path):
    """The deploy environment does not carry pyarrow: a Parquet file is then one clear line, exit 2."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pyarrow is installed here; tests/deploy/test_predict_inputs.py reads Parquet with it")
    (tmp_path / "rows.parquet").write_bytes(b"PAR1 not read")
    done = deploy("predict", iris_bundle, "--input", "rows.parquet", cwd=tmp_path)
    assert done.returncode == 2 and "needs pyarrow: pip install pyarrow" in done.stderr and "Traceback" not in done.stderr
