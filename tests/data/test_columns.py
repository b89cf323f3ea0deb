"""Typed table columns (pipeline_core.data.columns, the csv dataset): the inference rules, the
encodings fitted on the training split only, blanks in every position, and the errors that name
the column and line."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline_core import ConfigError, DatasetContext
from pipeline_core.data.columns import MISSING_LEVEL, fit_column, infer_kind, parse_column
from pipeline_core_plugins.datasets.csv_file import csv_dataset

from helpers import write_mixed_table


def _kind(cells, declared=None, max_categories=50):
    return infer_kind("c", cells, declared, max_categories, "t.csv")


class TestInference:
    def test_numbers_with_blanks_are_numbers(self):
        assert _kind(["1", "2.5", "", "NA", "-3e2", " n/a "]) == "number"

    def test_yes_no_spellings_are_binary_but_ones_and_zeros_stay_numbers(self):
        assert _kind(["Yes", "no", "TRUE", "f", ""]) == "binary"
        assert _kind(["1", "0", "1"]) == "number"
        assert _kind(["1", "0", "1"], declared="binary") == "binary"

    def test_text_is_a_category_up_to_the_limit(self):
        assert _kind(["a", "b", "a", "NA"]) == "category"
        with pytest.raises(ConfigError, match=r"column 'c' has 4 distinct text values, more than max_categories = 3.*features"):
            _kind(["a", "b", "c", "d"], max_categories=3)

    def test_a_declared_type_overrides(self):
        assert _kind(["1", "2", "3"], declared="category") == "category"

    @pytest.mark.parametrize("cells, message", [
        (["1", "x", "2"], "column 'c' mixes numbers ('1') and text ('x')"),
        (["", "NA", "null"], "column 'c' is blank in every row"),
    ])
    def test_undecidable_columns_are_refused_by_name(self, cells, message):
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            _kind(cells)

    def test_a_string_in_a_declared_number_column_names_its_line(self):
        with pytest.raises(ConfigError, match=r"t.csv: line 4, column 'c': 'x' is not a number"):
            parse_column("c", "number", ["1", "2", "x"], "t.csv")

    def test_an_infinite_number_names_its_line(self):
        with pytest.raises(ConfigError, match=r"line 3, column 'c': 'inf' is not a finite number"):
            parse_column("c", "number", ["1", "inf"], "t.csv")

    def test_an_unknown_yes_no_value_names_its_line(self):
        with pytest.raises(ConfigError, match=r"line 3, column 'c': 'maybe' is not a yes/no value"):
            parse_column("c", "binary", ["yes", "maybe"], "t.csv")


class TestEncoding:
    def test_numbers_are_filled_and_scaled_with_training_statistics(self):
        train = np.array([1.0, 3.0, np.nan, 5.0])
        column = fit_column("x", "number", train, fill="mean", missing_indicator=True, standardize=True)
        assert column.fill == 3.0 and column.indicator
        encoded = column.encode(np.array([np.nan, 3.0, 100.0]))
        assert encoded[0, 0] == encoded[1, 0] == 0.0  # a blank is the training mean: 0 once standardized
        assert encoded[:, 1].tolist() == [1.0, 0.0, 0.0]
        median = fit_column("x", "number", np.array([1.0, 2.0, 10.0]), fill="median", missing_indicator=True, standardize=False)
        assert median.fill == 2.0 and not median.indicator  # no blank in training: no was-missing column
        assert median.encode(np.array([np.nan]))[0, 0] == 2.0  # yet a blank at prediction time is filled all the same

    def test_categories_unknown_bucket_and_missing_value(self):
        with_blanks = fit_column("c", "category", np.array(["b", "a", "", "a"], dtype=object), fill="mean",
                                 missing_indicator=False, standardize=True)
        assert with_blanks.levels == ("a", "b", MISSING_LEVEL)
        encoded = with_blanks.encode(np.array(["a", "", "zebra", "NA"], dtype=object))
        assert encoded.tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 1]]
        without = fit_column("c", "category", np.array(["a", "b"], dtype=object), fill="mean", missing_indicator=False, standardize=True)
        assert without.encode(np.array(["", "b"], dtype=object)).tolist() == [[0, 0], [0, 1]]  # a blank it never saw: unknown

    def test_binary_is_plus_one_minus_one_and_zero_for_a_blank(self):
        column = fit_column("b", "binary", np.array(["yes", "", "no"], dtype=object), fill="mean", missing_indicator=False, standardize=True)
        assert column.encode(np.array(["YES", "n", ""], dtype=object)).tolist() == [[1, 0], [-1, 0], [0, 1]]


class TestCsvColumns:
    def test_mixed_table_is_typed_and_fitted_on_the_training_split(self, tmp_path):
        write_mixed_table(tmp_path)
        data = csv_dataset(DatasetContext(0, tmp_path), path="table.csv", target="species", missing_indicator=True)
        columns = data.columns
        assert columns is not None
        assert columns.kinds() == {"island": "category", "bill": "number", "mass": "number", "sex": "category", "tagged": "binary"}
        train = columns.splits["train"]
        bill = columns.encoder.columns[1]
        assert math.isclose(bill.fill, float(np.nanmean(train["bill"])), rel_tol=1e-6)  # the training split's mean, not the file's
        assert data.spec.input_shape == (len(columns.encoder.encoded_names),)
        assert data.splits["train"].inputs.shape[1] == data.spec.input_shape[0]
        assert not np.isnan(data.splits["test"].inputs.numpy()).any()

    def test_split_columns_is_the_api_a_dataset_of_its_own_calls(self):
        from pipeline_core import SplitOptions, is_blank, split_columns
        from pipeline_core.engine import input_range

        cells = {"colour": ["red", "blue", "", "red"] * 10, "size": ["1", "NA", "3", "4"] * 10}
        data = split_columns(cells, np.array([0, 1] * 20), SplitOptions(), task="binary", seed=0, classes=("no", "yes"), where="mine")
        assert data.columns.kinds() == {"colour": "category", "size": "number"}
        assert is_blank(" NA ") and is_blank("") and not is_blank("0")
        assert len(input_range(data)["min"]) == data.spec.input_shape[0]  # the network's range: what batch independence probes
        with pytest.raises(ConfigError, match="mine: line 3, column 'size': 'big' is not a number"):
            split_columns({"size": ["1", "big"]}, np.array([0, 1]), SplitOptions(), task="binary", seed=0, declared={"size": "number"}, where="mine")

    def test_all_numeric_files_are_read_as_before(self, tmp_path):
        (tmp_path / "n.csv").write_text("a,b,y\n" + "\n".join(f"{i},{i * 2},{i % 2}" for i in range(30)))
        data = csv_dataset(DatasetContext(0, tmp_path), path="n.csv", target="y")
        assert data.columns is None and data.spec.feature_names == ("a", "b")

    def test_a_blank_target_is_refused_naming_its_lines(self, tmp_path):
        (tmp_path / "t.csv").write_text("a,y\n1,x\n2,\n3,z\n4,NA\n")
        with pytest.raises(ConfigError, match=r"the target column 'y' is blank on line\(s\) 3, 5"):
            csv_dataset(DatasetContext(0, tmp_path), path="t.csv", target="y")

    def test_an_all_blank_column_is_refused(self, tmp_path):
        (tmp_path / "t.csv").write_text("a,empty,y\n" + "\n".join(f"{i},,{i % 2}" for i in range(10)))
        with pytest.raises(ConfigError, match="column 'empty' is blank in every row"):
            csv_dataset(DatasetContext(0, tmp_path), path="t.csv", target="y")

    def test_the_datasets_default_limit_is_the_documented_one(self):
        import inspect

        from pipeline_core.data.columns import MAX_CATEGORIES

        assert inspect.signature(csv_dataset).parameters["max_categories"].default == MAX_CATEGORIES

    def test_declared_columns_must_be_features(self, tmp_path):
        write_mixed_table(tmp_path)
        with pytest.raises(ConfigError, match=r"\[data.columns\] names \['nope'\]"):
            csv_dataset(DatasetContext(0, tmp_path), path="table.csv", target="species", columns={"nope": "number"})

    def test_parquet_is_read_as_the_csv_is(self, tmp_path):
        pyarrow = pytest.importorskip("pyarrow")
        import pyarrow.parquet as parquet

        path = write_mixed_table(tmp_path)
        import csv

        with open(path) as stream:
            rows = list(csv.reader(stream))
        header, body = rows[0], rows[1:]
        columns = {name: [None if row[i] in ("", "NA", "N/A") else row[i] for row in body] for i, name in enumerate(header)}
        columns["bill"] = [None if v is None else float(v) for v in columns["bill"]]
        parquet.write_table(pyarrow.table(columns), tmp_path / "table.parquet")
        from_csv = csv_dataset(DatasetContext(0, tmp_path), path="table.csv", target="species")
        from_parquet = csv_dataset(DatasetContext(0, tmp_path), path="table.parquet", target="species")
        assert from_parquet.columns.kinds() == from_csv.columns.kinds()
        assert np.array_equal(from_parquet.splits["train"].inputs.numpy(), from_csv.splits["train"].inputs.numpy())
