"""``train.validate_every``: the validation split is scored every N epochs and on the last one. The
weights, the training columns and the final metrics are those of a run validated every epoch; the
other rows have no val_ columns; what reads a val_ column every epoch is refused before training."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from click.testing import CliRunner

from pipeline_core.cli import cli

MOONS = """
[pipeline]
name = "every"
seed = 0
stages = ["load_data", "build_model", "train", "evaluate"]

[data]
name = "moons"
samples = 200
val_size = 0.25

[model]
name = "mlp"
hidden_sizes = [8]

[train]
epochs = 20
batch_size = "full"
{extra}

[train.optimizer]
name = "sgd"
lr = 0.2
momentum = 0.9

[train.loss]
name = "bce_with_logits"

[evaluate]
metrics = ["loss", "accuracy", "f1"]
"""


def run(write_pipeline, out: Path, extra: str = "", *arguments: str) -> tuple[int, str]:
    path = write_pipeline(MOONS.replace("{extra}", extra), name=f"{out.name}.toml")
    result = CliRunner().invoke(cli, ["run", str(path), "--out", str(out), *arguments])
    return result.exit_code, result.output


def history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.csv", encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


def test_validated_epochs_train_the_same_model(tmp_path, write_pipeline):
    code, output = run(write_pipeline, tmp_path / "each")
    assert code == 0, output
    code, output = run(write_pipeline, tmp_path / "seventh", "validate_every = 7", "--progress", "lines")
    assert code == 0, output
    each, seventh = history(tmp_path / "each"), history(tmp_path / "seventh")
    assert len(each) == len(seventh) == 20
    assert list(seventh[0]) == list(each[0]) == [  # the same columns in the same order, though epoch 1 had no val_ ones
        "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_f1", "lr", "seconds"]
    validated = [int(row["epoch"]) for row in seventh if row["val_loss"]]
    assert validated == [7, 14, 20]  # every 7th epoch and the last
    for row, full in zip(seventh, each, strict=True):
        assert (row["train_loss"], row["train_accuracy"], row["lr"]) == (full["train_loss"], full["train_accuracy"], full["lr"])
        for column in ("val_loss", "val_accuracy", "val_f1"):
            assert row[column] == (full[column] if int(row["epoch"]) in validated else "")
    for name in ("metrics.json", "weights.pt"):
        assert (tmp_path / "seventh" / name).read_bytes() == (tmp_path / "each" / name).read_bytes()

    # the curves leave the epochs that were not validated out (None in their data), and the
    # progress lines show the last validated epoch's values on the others
    curves = json.loads((tmp_path / "seventh" / "plots" / "index.json").read_text())
    series = curves["curves"]["data"]["series"]
    assert [value is not None for value in series["val_loss"]] == [epoch in validated for epoch in range(1, 21)]
    assert len(series["train_loss"]) == 20 and None not in series["train_loss"]
    line = " ".join(output.split("epoch 16/20")[1].split("epoch 18/20")[0].split())  # the console may wrap it
    assert f"val_loss {float(seventh[13]['val_loss']):.4f}" in line and "(epoch 14)" in line


def test_early_stopping_on_a_validation_column_needs_every_epoch(tmp_path, write_pipeline):
    path = write_pipeline(MOONS.replace("{extra}", "validate_every = 5\n\n[train.early_stopping]\nmonitor = \"val_loss\"\npatience = 3"))
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2
    assert "train.validate_every: early_stopping.monitor is 'val_loss'" in result.output
    assert "set validate_every = 1, or monitor a training column such as 'train_loss'" in result.output
    ok = write_pipeline(MOONS.replace("{extra}", "validate_every = 5\n\n[train.early_stopping]\nmonitor = \"train_loss\"\npatience = 3"))
    assert CliRunner().invoke(cli, ["validate", str(ok)]).exit_code == 0


def test_a_scheduler_watching_a_validation_column_is_refused_before_training(tmp_path, write_pipeline):
    extra = 'validate_every = 4\n\n[train.scheduler]\nname = "reduce_on_plateau"\nmonitor = "val_loss"'
    code, output = run(write_pipeline, tmp_path / "plateau", extra)
    assert code == 2, output
    assert "train.scheduler 'reduce_on_plateau' watches 'val_loss' every epoch, but train.validate_every = 4" in output
    assert not (tmp_path / "plateau" / "history.csv").exists()
    code, output = run(write_pipeline, tmp_path / "plateau_train", extra.replace('"val_loss"', '"train_loss"'))
    assert code == 0, output


def test_a_sweep_reports_only_validated_epochs(tmp_path, write_pipeline):
    text = MOONS.replace("{extra}", "validate_every = 4") + (
        '\n[sweep]\nobjective = "val_accuracy"\ntrials = 2\nreport_every = 6\n\n[sweep.parameters]\n'
        '"train.optimizer.lr" = { type = "float", low = 0.01, high = 1.0, log = true }\n'
    )
    result = CliRunner().invoke(cli, ["validate", str(write_pipeline(text))])
    assert result.exit_code == 2
    assert "sweep.report_every: the pruner is told the objective every 6 epochs, but train.validate_every = 4" in result.output
    assert CliRunner().invoke(cli, ["validate", str(write_pipeline(text.replace("report_every = 6", "report_every = 8")))]).exit_code == 0
