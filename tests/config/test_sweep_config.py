"""A bad [sweep] table is refused before any trial runs, each problem with its file, line, dotted
key and (where one is close) the valid name: `pipeline validate` and `pipeline sweep` exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from pipeline_core.cli import cli
from pipeline_core.errors import ConfigError
from pipeline_core.pipeline.runner import load_pipeline

BASE = """\
[pipeline]
name = "moons_small"

[data]
name = "moons"
samples = 200
val_size = 0.25

[model]
name = "mlp"
hidden_sizes = [8, 8]

[train]
epochs = 5
batch_size = "full"

[train.optimizer]
name = "sgd"
lr = 0.1

[train.loss]
name = "bce_with_logits"

[evaluate]
metrics = ["loss", "accuracy"]

[sweep]
objective = "val_accuracy"
trials = 3

[sweep.parameters]
"train.optimizer.lr" = { type = "float", low = 0.01, high = 1.0, log = true }
"""  # [sweep] starts on line 27, its parameters on line 31; "train.optimizer.lr" is line 32

LR = '"train.optimizer.lr" = { type = "float", low = 0.01, high = 1.0, log = true }'

# (case id, the file's text, substrings the message must contain)
CASES = [
    ("a key that does not exist",
     BASE.replace(LR, '"train.optimizer.momentun" = { type = "float", low = 0.0, high = 0.9 }'),
     [':32: sweep.parameters."train.optimizer.momentun": train.optimizer.momentun: unknown key; did you mean \'momentum\'?',
      "[optimizer 'sgd']"]),
    ("a section that does not exist",
     BASE.replace(LR, '"modle.hidden_sizes" = { type = "categorical", choices = [[4], [8]] }'),
     [':32: sweep.parameters."modle.hidden_sizes": modle: unknown section; did you mean \'model\'?']),
    ("a value a range end takes is refused",
     BASE.replace(LR, '"model.dropout" = { type = "float", low = 0.0, high = 1.0 }'),
     [':32: sweep.parameters."model.dropout".high: 1.0 is refused: model.dropout: input should be less than 1, got 1.0 (float) [model \'mlp\']']),
    ("a choice is refused",
     BASE.replace(LR, '"model.hidden_sizes" = { type = "categorical", choices = [[8, 8], [16, "x"]] }'),
     [':32: sweep.parameters."model.hidden_sizes".choices[1]: [16, "x"] is refused: model.hidden_sizes[1]: input should be a valid integer']),
    ("a float range for an int key",
     BASE.replace(LR, '"train.epochs" = { type = "float", low = 5, high = 50 }'),
     [':32: sweep.parameters."train.epochs".low: 5.0 is refused: train.epochs: expected int, got 5.0 (float)']),
    ("a key inside a value",
     BASE.replace(LR, '"train.epochs.count" = { type = "int", low = 5, high = 50 }'),
     [':32: sweep.parameters."train.epochs.count":', "train.epochs is a value, not a table, so it has no key 'count'"]),
    ("a parameter of the sweep itself",
     BASE.replace(LR, '"sweep.trials" = { type = "int", low = 5, high = 50 }'),
     [':32: sweep.parameters."sweep.trials": a parameter cannot change the [sweep] table']),
    ("a parameter over the plugins",
     BASE.replace(LR, '"pipeline.plugins" = { type = "categorical", choices = [[], ["x.py"]] }'),
     [':32: sweep.parameters."pipeline.plugins": pipeline.plugins cannot be a parameter: plugins load before the file is validated']),
    ("an objective on the test split",
     BASE.replace('objective = "val_accuracy"', 'objective = "test_accuracy"'),
     [":28: sweep.objective: 'test_accuracy' is scored on the test split; trials are scored on the validation split only "
      "(the test split is used once, on the best trial); did you mean 'val_accuracy'? (choose one of: val_loss, val_accuracy)"]),
    ("a misspelled objective",
     BASE.replace('objective = "val_accuracy"', 'objective = "val_acuracy"'),
     [":28: sweep.objective: 'val_acuracy' is not a validation metric of this pipeline; did you mean 'val_accuracy'?"]),
    ("no validation split",
     BASE.replace("val_size = 0.25\n", ""),
     [":4: data: a sweep scores each trial on the validation split, and val_size = 0 makes none; set data.val_size (e.g. 0.2)"]),
    ("a validation split of zero",
     BASE.replace("val_size = 0.25", "val_size = 0.0"),
     [":7: data.val_size: a sweep scores each trial on the validation split, and val_size = 0 makes none"]),
    ("a searched validation split that can be zero",
     BASE.replace(LR, '"data.val_size" = { type = "categorical", choices = [0.0, 0.2] }'),
     [':32: sweep.parameters."data.val_size": a sweep scores each trial on the validation split, and val_size = 0 makes none; keep it above 0']),
    ("without the evaluate stage",
     BASE.replace('[pipeline]\nname = "moons_small"', '[pipeline]\nname = "moons_small"\nstages = ["load_data", "build_model", "train"]'),
     [":3: pipeline.stages: a sweep needs the stage(s) 'evaluate': each trial is trained, then scored on the validation split"]),
    ("an unknown sampler",
     BASE.replace("trials = 3", 'trials = 3\nsampler = "tpee"'),
     [":30: sweep.sampler: unknown sampler 'tpee'; did you mean 'tpe'? (choose one of: tpe, random, grid, cmaes)"]),
    ("a sampler option of the wrong type",
     BASE.replace("trials = 3", 'trials = 3\nsampler = { name = "tpe", seed = "1" }'),
     [":30: sweep.sampler.seed: expected int | none, got '1' (str) [sampler 'tpe']"]),
    ("an unknown pruner option",
     BASE.replace("trials = 3", 'trials = 3\npruner = { name = "median", warmup = 5 }'),
     [":30: sweep.pruner.warmup: unknown key; did you mean 'warmup_epochs'?", "[pruner 'median']"]),
    ("an unknown parameter type",
     BASE.replace('type = "float"', 'type = "floot"'),
     [':32: sweep.parameters."train.optimizer.lr".type: unknown type \'floot\'; did you mean \'float\'?']),
    ("a range the wrong way round",
     BASE.replace("low = 0.01, high = 1.0", "low = 1.0, high = 0.01"),
     [':32: sweep.parameters."train.optimizer.lr".high: high (0.01) must be above low (1.0)']),
    ("a log range from zero",
     BASE.replace("low = 0.01", "low = 0.0"),
     [':32: sweep.parameters."train.optimizer.lr".low: a log scale needs low > 0, got 0.0']),
    ("a choice listed twice",
     BASE.replace(LR, '"model.hidden_sizes" = { type = "categorical", choices = [[8], [8]] }'),
     [':32: sweep.parameters."model.hidden_sizes".choices: [8] listed more than once']),
    ("no budget",
     BASE.replace("trials = 3\n", ""),
     [":27: sweep: say how long to search: trials = N (finished trials in the study) and/or timeout = SECONDS"]),
    ("the grid sampler without a step",
     BASE.replace("trials = 3", 'trials = 3\nsampler = "grid"'),
     [':33: sweep.parameters."train.optimizer.lr".step: the grid sampler needs a step for a float parameter']),
    ("no parameters",
     BASE.replace("[sweep.parameters]\n" + LR + "\n", ""),
     [":27: sweep.parameters: missing required value"]),
    ("a grace period shorter than the heartbeat",
     BASE.replace("trials = 3", "trials = 3\nheartbeat_seconds = 10\ngrace_seconds = 5"),
     [":31: sweep.grace_seconds: grace_seconds (5) must exceed heartbeat_seconds (10)"]),
]


@pytest.mark.parametrize("text, expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_a_bad_search_space_names_its_line(text, expected, write_pipeline):
    path = write_pipeline(text)
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    message = str(caught.value)
    for piece in expected:
        assert piece in message, f"{piece!r} not in:\n{message}"
    assert str(path) in message


def test_a_good_search_space_validates(write_pipeline):
    config, _ = load_pipeline(write_pipeline(BASE))
    assert config.sweep is not None and config.sweep.resolved_direction == "maximize"
    assert config.sweep.sampler.name == "tpe" and config.sweep.pruner.name == "median"
    assert "sweep" not in config.resolved()  # a run's configuration does not include the search


def test_validate_checks_the_sweep_and_says_how_to_run_it(write_pipeline):
    path = write_pipeline(BASE)
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0
    assert f"[sweep]: valid (1 parameters, val_accuracy (maximize), sampler tpe, pruner median): `pipeline sweep {path}`" in result.output
    result = CliRunner().invoke(cli, ["validate", str(write_pipeline(BASE.replace("val_size = 0.25", "val_size = 0.0")))])
    assert result.exit_code == 2 and "data.val_size: a sweep scores each trial on the validation split" in result.output


def test_pipeline_run_of_a_sweep_file_is_one_plain_run(write_pipeline, tmp_path):
    result = CliRunner().invoke(cli, ["run", str(write_pipeline(BASE)), "--out", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 0, result.output
    assert "has a [sweep] table; this is one run with the values as written" in result.output
    assert (tmp_path / "run" / "bundle" / "manifest.json").is_file()


def test_a_bad_search_space_stops_the_sweep_before_any_trial(write_pipeline, tmp_path):
    path = write_pipeline(BASE.replace(LR, LR + '\n"model.dropout" = { type = "float", low = 0.0, high = 1.0 }'))
    result = CliRunner().invoke(cli, ["sweep", str(path), "--artifacts", str(tmp_path / "artifacts")])
    assert result.exit_code == 2
    assert ':33: sweep.parameters."model.dropout".high: 1.0 is refused' in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "artifacts").exists()  # no study, no trial folder


def test_data_without_a_validation_split_stops_the_sweep_before_any_trial(write_pipeline, tmp_path):
    """A dataset without a val_size option is loaded once before the first trial to find out."""
    text = BASE.replace('name = "moons"\nsamples = 200\nval_size = 0.25', 'name = "random_regression"\nrows = 32\nin_features = 4\nout_features = 1')
    text = text.replace('"bce_with_logits"', '"mse"').replace('["loss", "accuracy"]', '["loss", "mse"]').replace("val_accuracy", "val_mse")
    result = CliRunner().invoke(cli, ["sweep", str(write_pipeline(text)), "--artifacts", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "data 'random_regression' gives no validation split (it has test, train)" in result.output
    assert not list(tmp_path.glob("*/sweeps/*/trials"))


def test_an_objective_the_task_does_not_score_stops_the_sweep(write_pipeline, tmp_path):
    """With no [evaluate] metrics the task's defaults score the validation split: r2 is not one for a classifier."""
    text = BASE.replace('[evaluate]\nmetrics = ["loss", "accuracy"]\n', "").replace("val_accuracy", "val_r2")
    result = CliRunner().invoke(cli, ["sweep", str(write_pipeline(text)), "--artifacts", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "the validation split of this binary data is scored with loss, accuracy, f1, confusion_matrix" in result.output


def test_a_set_item_on_a_searched_key_is_refused(write_pipeline, tmp_path):
    result = CliRunner().invoke(cli, ["sweep", str(write_pipeline(BASE)), "--set", "train.optimizer.lr=0.5", "--artifacts", str(tmp_path)])
    assert result.exit_code == 2
    assert "--set train.optimizer.lr=0.5: train.optimizer.lr is a [sweep] parameter" in result.output


def test_the_command_line_stays_light():
    """`pipeline --help` and `pipeline validate` of a sweep's file import neither Optuna nor the sweep
    machinery (``pipeline runs`` reads sweep folders through the Optuna-free ``sweep.folder``)."""
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom pipeline_core.cli import cli\n"
        "assert CliRunner().invoke(cli, ['--help']).exit_code == 0\n"
        "assert CliRunner().invoke(cli, ['validate', 'pipelines/moons_sweep.toml']).exit_code == 0\n"
        "print(sorted(m for m in sys.modules if m.startswith(('optuna', 'pipeline_core.sweep.')) and m != 'pipeline_core.sweep.folder'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_data_parallel_trials_are_refused(write_pipeline, tmp_path):
    text = BASE.replace('batch_size = "full"', 'batch_size = "full"\nstrategy = "ddp"')
    result = CliRunner().invoke(cli, ["sweep", str(write_pipeline(text)), "--artifacts", str(tmp_path)])
    assert result.exit_code == 2
    assert "train.strategy = 'ddp': a sweep trains each trial in one process; run trials side by side with --jobs K" in result.output
