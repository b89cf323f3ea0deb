"""Reading rows (issue 20, items 10 and 11): one row numbering in every message (data rows counted
from 1, plus the file's line for a CSV), NaN and infinity named by column, a duplicated header column
called duplicated, and the fast CSV path (NumPy's parser) reading exactly what the cell-by-cell
reader reads, which still explains every bad cell. Real CSV, JSON and NPY files, a real bundle."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline_core.cli import cli
from pipeline_core_deploy import predict

from helpers import IRIS_FAST

FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
HEADER = ",".join(FEATURES)
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    (folder / "pipeline.toml").write_text(textwrap.dedent(IRIS_FAST).lstrip())
    result = CliRunner().invoke(cli, ["run", str(folder / "pipeline.toml"), "--out", str(folder / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    return folder / "run" / "bundle"


@pytest.fixture(scope="module")
def opened(bundle) -> predict.Bundle:
    return predict.open_bundle(bundle)


def _predict(bundle: Path, path: Path, *args: str):
    return CliRunner().invoke(cli, ["predict", str(bundle), "--input", str(path), *args], catch_exceptions=False)


def _error(bundle: Path, path: Path) -> str:
    result = _predict(bundle, path)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result.output


@pytest.mark.parametrize("name, content, message", [
    # a header, a blank line, then a bad cell: line 4 of the file, data row 2
    ("word.csv", f"{HEADER}\n5.1,3.5,1.4,0.2\n\n6.7,3.0,abc,2.3\n", "word.csv, line 4: data row 2, column 'petal length (cm)': 'abc' is not a number"),
    ("noheader.csv", "5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n\n6.7,3.0,,2.3\n", "noheader.csv, line 4: data row 3, column 'petal length (cm)': '' is not a number"),
    ("short.csv", f"\n{HEADER}\n5.1,3.5,1.4,0.2\n5.1,3.5,1.4\n", "short.csv, line 4: data row 2 has 3 values; the bundle expects 4 float32 value(s) per row"),
    ("nan.csv", f"{HEADER}\n5.1,3.5,1.4,0.2\n6.7,nan,5.2,2.3\n", "nan.csv, line 3: data row 2 holds a value that is not finite (NaN or infinity) in column 'sepal width (cm)': nan"),
    ("inf.csv", "5.1,3.5,1.4,0.2\n\n\n6.7,3.0,5.2,-Infinity\n", "inf.csv, line 4: data row 2 holds a value that is not finite (NaN or infinity) in column 'petal width (cm)': -inf"),
    # the header's order is not the model's: the message names the feature, not the file's position
    ("reordered.csv", "petal width (cm),sepal length (cm),petal length (cm),sepal width (cm)\n0.2,5.1,1.4,inf\n",
     "reordered.csv, line 2: data row 1 holds a value that is not finite (NaN or infinity) in column 'sepal width (cm)': inf"),
    ("duplicated.csv", "sepal length (cm),sepal width (cm),sepal width (cm),petal width (cm)\n1,2,3,4\n",
     "duplicated.csv, line 1: the header names 'sepal width (cm)' 2 times (columns 2, 3); each column may appear once; the bundle expects the columns"),
    # beyond float32 (what the model takes): refused in any format, not passed on as infinity
    ("huge.csv", "5.1,3.5,1.4,0.2\n6.7,3.0,5.2,1e300\n", "huge.csv, line 2: data row 2, column 'petal width (cm)' holds 1e+300: the model takes float32 inputs"),
    ("huge.json", "[[1, 2, 3, 4], [1, 2, -1e39, 4]]", "huge.json: data row 2, column 'petal length (cm)' holds -1e+39: the model takes float32 inputs"),
    ("nan.json", "[[1, 2, 3, 4], [1, NaN, 3, 4]]", "nan.json: data row 2 holds a value that is not finite (NaN or infinity) in column 'sepal width (cm)': nan"),
    ("ragged.json", "[[1, 2, 3, 4], [1, 2, 3]]", "ragged.json: every value must be a number and every row the same length; data row 2 has shape [3], data row 1 [4]"),
    ("text.json", '[[1, 2, 3, 4], [1, "two", 3, 4]]', "text.json: data row 2 holds 'two' (str), which is not a JSON number"),
    ("quoted.json", '[[1, 2, 3, 4], [1, "2", 3, 4]]', "quoted.json: data row 2 holds '2' (str), which is not a JSON number"),
    ("boolean.json", '[[1, 2, 3, 4], [1, 2, true, 4]]', "boolean.json: data row 2 holds True (bool), which is not a JSON number"),
    ("ragged.json", '[[1, 2, 3, 4], [1, 2, 3]]', "ragged.json: every value must be a number and every row the same length; data row 2 has shape [3], data row 1 [4]"),
    ("objects.json", json.dumps([dict(zip(FEATURES, ROWS[0], strict=True)), {"sepal length (cm)": 1}]), "objects.json: data row 2: missing column(s)"),
    ("utf16.csv", "5,1;3,5\n".encode("utf-16"), "utf16.csv is not UTF-8 text"),
])
def test_row_messages_count_data_rows_and_name_the_line_and_column(bundle, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    output = _error(bundle, path)
    assert message in output
    if name == "duplicated.csv":
        assert "missing" not in output and "unknown" not in output


def test_npy_infinity_names_row_and_column(bundle, tmp_path):
    rows = np.array(ROWS * 3)
    rows[7, 3] = np.inf
    np.save(tmp_path / "rows.npy", rows)
    assert "rows.npy: data row 8 holds a value that is not finite (NaN or infinity) in column 'petal width (cm)': inf" in _error(bundle, tmp_path / "rows.npy")


TRICKY = [
    # what NumPy's parser reads: quoted numbers, CRLF, a byte-order mark, blank lines, spaces, exponents
    ('"5.1","3.5","1.4","0.2"\r\n6.7,3.0,5.2,2.3\r\n', [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]),
    (f"\ufeff{HEADER}\n\n 5.1 , 3.5,1.4 ,0.2\n\n6.7e0,+3.,.52e1,2.3", [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]),
    # what only the cell reader reads: a line of spaces, a row of empty cells, Python's underscores
    ("5.1,3.5,1.4,0.2\n   \n,,,\n6_7,3,5,2\n", [[5.1, 3.5, 1.4, 0.2], [67, 3, 5, 2]]),
]


@pytest.mark.parametrize("content, expected", TRICKY, ids=["quoted-crlf", "bom-header-blank", "cell-reader-only"])
def test_fast_and_cell_by_cell_csv_readers_agree(opened, tmp_path, content, expected):
    path = tmp_path / "rows.csv"
    path.write_text(content, encoding="utf-8", newline="")
    rows = predict.read_inputs(path, opened)
    np.testing.assert_array_equal(rows, np.array(expected, dtype=np.float32))
    header = content.lstrip("\ufeff").startswith("sepal")
    np.testing.assert_array_equal(predict._csv_cells(path, opened, FEATURES if header else None).astype(np.float32), rows)


def test_a_bad_cell_deep_in_a_large_file_gets_the_same_message(bundle, tmp_path):
    rng = np.random.default_rng(0)
    lines = [HEADER, *(",".join(f"{v:.3f}" for v in row) for row in rng.uniform(0, 8, size=(20_000, 4)))]
    lines[15_001] = "5.1,3.5,1.4,O.2"  # a letter O for a zero, on line 15,002
    (tmp_path / "big.csv").write_text("\n".join(lines) + "\n")
    assert "big.csv, line 15002: data row 15001, column 'petal width (cm)': 'O.2' is not a number" in _error(bundle, tmp_path / "big.csv")


def test_predictions_are_written_in_chunks_exactly_as_one_piece(bundle, opened, tmp_path, monkeypatch):
    rows = np.array(ROWS * 3)
    np.save(tmp_path / "rows.npy", rows)
    whole = predict.predictions(opened, opened.run(rows.astype(np.float32)))
    monkeypatch.setattr(predict, "OUTPUT_CHUNK", 2)  # five chunks of two rows, the last of one
    assert predict.predict(bundle, tmp_path / "rows.npy", tmp_path / "out.json") == 9
    assert (tmp_path / "out.json").read_text() == json.dumps(whole, indent=1) + "\n"
    predict.predict(bundle, tmp_path / "rows.npy", tmp_path / "out.csv")
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0] == "label,probability_setosa,probability_versicolor,probability_virginica" and len(lines) == 10
    assert [line.split(",")[0] for line in lines[1:]] == [record["label"] for record in whole]
    assert [float(v) for v in lines[1].split(",")[1:]] == [whole[0][f"probability_{c}"] for c in ("setosa", "versicolor", "virginica")]
    assert not list(tmp_path.glob(".*.tmp"))


def test_an_output_that_cannot_be_written_is_an_error_not_a_traceback(bundle, tmp_path):
    (tmp_path / "rows.json").write_text(json.dumps(ROWS))
    result = _predict(bundle, tmp_path / "rows.json", "--output", str(tmp_path / "absent" / "out.csv"))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"the folder {tmp_path / 'absent'} does not exist; create it first" in result.output and ".tmp" not in result.output
    (tmp_path / "readonly").mkdir(mode=0o500)
    result = _predict(bundle, tmp_path / "rows.json", "--output", str(tmp_path / "readonly" / "out.csv"))
    if os.geteuid() != 0:  # root writes anywhere
        assert result.exit_code == 2 and f"cannot write the predictions to {tmp_path / 'readonly' / 'out.csv'}" in result.output


@pytest.mark.parametrize(("output", "message"), [
    ("rows.csv", "is the input file; writing the predictions there would destroy the rows they came from"),
    ("pred.txt", "predictions are written as .csv or .json, and '.txt' is neither; name the file pred.csv or pred.json"),
    ("folder", "is a directory"),
])
def test_an_output_path_that_would_lose_or_mislabel_data_is_refused_before_any_work(bundle, tmp_path, output, message):
    (tmp_path / "rows.csv").write_text("\n".join(",".join(map(str, row)) for row in ROWS))
    (tmp_path / "folder").mkdir()
    before = (tmp_path / "rows.csv").read_bytes()
    result = _predict(bundle, tmp_path / "rows.csv", "--output", str(tmp_path / output))
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert (tmp_path / "rows.csv").read_bytes() == before and not (tmp_path / "pred.txt").exists()


@pytest.mark.parametrize(("separator", "name"), [(";", "semicolons"), ("\t", "tabs")])
def test_a_table_separated_by_something_else_than_commas_gets_a_hint(bundle, tmp_path, separator, name):
    header = separator.join(FEATURES)
    (tmp_path / "rows.csv").write_text(header + "\n" + "\n".join(separator.join(map(str, row)) for row in ROWS) + "\n")
    output = _error(bundle, tmp_path / "rows.csv")
    assert f"the file's first line has no commas but {name}: predict reads comma-separated values" in output
    (tmp_path / "plain.csv").write_text("\n".join(separator.join(map(str, row)) for row in ROWS) + "\n")
    assert f"has no commas but {name}" in _error(bundle, tmp_path / "plain.csv")


def test_a_bundle_copy_without_feature_names_numbers_columns(bundle, tmp_path):
    """A model whose data had no feature names: columns are numbered from 1 in every message."""
    copy = Path(shutil.copytree(bundle, tmp_path / "bundle"))
    opened = predict.open_bundle(copy)
    opened.metadata = {**opened.metadata, "feature_names": []}
    (tmp_path / "rows.csv").write_text("1,2,3,4\n1,2,x,4\n")
    with pytest.raises(predict.DeployError, match=r"rows.csv, line 2: data row 2, column 3: 'x' is not a number"):
        predict.read_inputs(tmp_path / "rows.csv", opened)
    with pytest.raises(predict.DeployError, match=r"data row 1 holds a value that is not finite \(NaN or infinity\) in column 2: nan"):
        predict.check_rows(np.array([[1, np.nan, 3, 4]]), opened, "request body")


def test_an_npy_of_another_layout_with_the_same_count_is_refused_not_guessed(bundle, tmp_path):
    np.save(tmp_path / "square.npy", np.array(ROWS[0], dtype=np.float32).reshape(1, 2, 2))
    output = _error(bundle, tmp_path / "square.npy")
    assert "square.npy: rows have shape [2, 2]; the bundle expects 4 float32 value(s) per row" in output
    np.save(tmp_path / "one.npy", np.array(ROWS[0], dtype=np.float32))  # one row without its batch axis is one row
    assert _predict(bundle, tmp_path / "one.npy").exit_code == 0


def test_parquet_rows_answer_as_the_csv_rows_and_a_null_is_refused(bundle, tmp_path):
    pyarrow = pytest.importorskip("pyarrow")
    import pyarrow.parquet as parquet

    (tmp_path / "rows.csv").write_text(HEADER + "\n" + "\n".join(",".join(map(str, row)) for row in ROWS) + "\n")
    columns = {name: [row[i] for row in ROWS] for i, name in reversed(list(enumerate(FEATURES)))}  # another column order
    parquet.write_table(pyarrow.table(columns), tmp_path / "rows.parquet")
    assert _predict(bundle, tmp_path / "rows.parquet").output == _predict(bundle, tmp_path / "rows.csv").output
    columns[FEATURES[1]][1] = None
    parquet.write_table(pyarrow.table(columns), tmp_path / "null.parquet")
    assert "null.parquet: data row 2 holds None, which is not a number" in _error(bundle, tmp_path / "null.parquet")
