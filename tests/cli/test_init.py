"""``pipeline init TABLE --target COLUMN``: the file it writes runs as it is, with the inferred column
types written out and the loss and metrics of the task; bad input is a clear error, exit 2."""

from __future__ import annotations

import tomllib

from helpers import invoke, write_mixed_table


def test_init_writes_a_pipeline_that_runs(tmp_path):
    table = write_mixed_table(tmp_path)
    result = invoke("init", table, "--target", "species")
    assert result.exit_code == 0, result.output
    written = tmp_path / "table.toml"
    config = tomllib.loads(written.read_text())
    assert config["data"]["columns"] == {"island": "category", "bill": "number", "mass": "number", "sex": "category", "tagged": "binary"}
    assert config["train"]["loss"]["name"] == "cross_entropy" and "accuracy" in config["evaluate"]["metrics"]
    run = invoke("run", written, "--out", tmp_path / "run", "--quiet", "--set", "train.epochs=2")
    assert run.exit_code == 0, run.output
    assert (tmp_path / "run" / "bundle" / "model.onnx").exists()


def test_a_numeric_regression_table_gets_mse_and_no_column_types(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "houses.csv").write_text("rooms,area,price\n" + "\n".join(f"{i % 5 + 1},{50 + i * 1.5},{100 + i * 3.7:.2f}" for i in range(60)))
    result = invoke("init", tmp_path / "data" / "houses.csv", "--target", "price", "--output", tmp_path / "houses.toml")
    assert result.exit_code == 0, result.output
    config = tomllib.loads((tmp_path / "houses.toml").read_text())
    assert config["data"]["path"] == "data/houses.csv" and "columns" not in config["data"]
    assert config["train"]["loss"]["name"] == "mse" and config["evaluate"]["metrics"] == ["loss", "mae", "r2"]
    run = invoke("run", tmp_path / "houses.toml", "--out", tmp_path / "run", "--quiet", "--set", "train.epochs=2")
    assert run.exit_code == 0, run.output


def test_an_existing_file_or_an_unknown_target_is_a_clear_error(tmp_path):
    table = write_mixed_table(tmp_path)
    (tmp_path / "table.toml").write_text("# mine\n")
    result = invoke("init", table, "--target", "species")
    assert result.exit_code == 2 and "already exists" in result.output and (tmp_path / "table.toml").read_text() == "# mine\n"
    result = invoke("init", table, "--target", "colour", "--output", tmp_path / "other.toml")
    assert result.exit_code == 2 and "no target column 'colour'" in result.output and not (tmp_path / "other.toml").exists()
