"""`pipeline sweep`: a small sweep end to end (one run folder per trial, linked both ways, scored on
the validation split only; the best trial's pipeline, its test metrics once, the report), pruning,
a failing trial, two worker processes on one study, a sweep killed with SIGKILL and started again
(on the default journal file and on SQLite's heartbeats), a dead worker's trial failed and tried
again on a storage without heartbeats, and which study a sweep folder's files make it continue."""

from __future__ import annotations

import csv
import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState

from pipeline_core.cli import cli
from pipeline_core.config.sweep_section import SweepSection
from pipeline_core.errors import ConfigError
from pipeline_core.pipeline.runner import load_pipeline
from pipeline_core.sweep import study as studies
from pipeline_core.sweep.folder import SweepFolder
from pipeline_core.sweep.journal_lock import journal_storage
from pipeline_core.sweep.storage import storage_url, unused_heartbeat_settings

PIPELINE = str(Path(sys.executable).parent / "pipeline")

SWEEP = """
[pipeline]
name = "moons_small"
seed = 0

[data]
name = "moons"
samples = 200
val_size = 0.25
test_size = 0.25

[model]
name = "mlp"
hidden_sizes = [8, 8]

[train]
epochs = 30
batch_size = "full"

[train.optimizer]
name = "sgd"
lr = 0.1
momentum = 0.9

[train.loss]
name = "bce_with_logits"

[evaluate]
metrics = ["loss", "accuracy"]

[sweep]
objective = "val_accuracy"
trials = 4
sampler = { name = "random", seed = 0 }
pruner = "none"

[sweep.parameters]
"train.optimizer.lr" = { type = "float", low = 0.01, high = 1.0, log = true }
"model.hidden_sizes" = { type = "categorical", choices = [[4], [8, 8]] }
"data.standardize" = { type = "categorical", choices = [true, false] }
"""


def sweep_folder(artifacts: Path, study: str = "moons_small") -> SweepFolder:
    return SweepFolder(artifacts / "moons_small" / "sweeps" / study)


def load_study(url: str, name: str = "moons_small") -> optuna.Study:
    storage = journal_storage(Path(url[len("journal:"):])) if url.startswith("journal:") else url
    return optuna.load_study(study_name=name, storage=storage)


def sqlite(folder: SweepFolder) -> str:
    """The URL of the sweep folder's SQLite study (the default of earlier versions; heartbeats)."""
    return f"sqlite:///{folder.root.resolve() / SweepFolder.STUDY_DB}"


def journal(folder: SweepFolder) -> str:
    """The URL of the sweep folder's journal file: a new sweep's study without --storage."""
    return f"journal:{folder.root.resolve() / SweepFolder.STUDY_LOG}"


def sweep(*arguments: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["sweep", *arguments])
    return result.exit_code, result.output


def test_a_small_sweep_end_to_end(tmp_path, write_pipeline):
    path = write_pipeline(SWEEP.replace('pruner = "none"', 'pruner = "none"\nreport_every = 4'))
    artifacts = tmp_path / "artifacts"
    code, output = sweep(str(path), "--artifacts", str(artifacts))
    assert code == 0, output
    folder = sweep_folder(artifacts)
    # a new sweep's study is the journal file in its folder, and the default settings call for no note
    assert (folder.root / SweepFolder.STUDY_LOG).is_file() and not (folder.root / SweepFolder.STUDY_DB).exists()
    assert f"(storage {journal(folder)}, 0 trials so far)" in output and "note:" not in output
    study = load_study(journal(folder))
    assert [trial.state for trial in study.trials] == [TrialState.COMPLETE] * 4

    # each trial is an ordinary run folder, named by its number, that names its trial back
    assert [p.name for p in folder.trial_folders()] == [f"{trial.number:04d}" for trial in study.trials]
    for trial in study.trials:
        run_dir = Path(trial.user_attrs["run_dir"])
        assert run_dir == folder.trial_dir(trial.number).resolve()
        assert json.loads((run_dir / "run.json").read_text())["sweep"] == {
            "study": "moons_small", "storage": journal(folder), "trial": trial.number, "sweep_folder": str(folder.root.resolve())
        }
        assert json.loads((run_dir / "status.json").read_text())["status"] == "succeeded"
        assert (run_dir / "report.html").is_file() and (run_dir / "manifest.json").is_file() and (run_dir / "weights.pt").is_file()
        assert not (run_dir / "checkpoints").exists()  # a trial is never continued: it keeps no checkpoints
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert set(metrics) == {"validation", "train"}  # a trial never scores (or sees) the test split
        assert trial.value == metrics["validation"]["accuracy"]
        config = tomllib.loads((run_dir / "config.toml").read_text())
        assert config["evaluate"]["split"] == "validation" and "export" not in config["pipeline"]["stages"] and "sweep" not in config
        assert config["evaluate"]["plots"] is False and not (run_dir / "plots").exists()  # drawing them cost more than training
        assert trial.user_attrs["epochs"] == 30
        # validated only on the epochs it reports and its last: nothing else reads the val_ columns
        assert config["train"]["validate_every"] == 4 and sorted(trial.intermediate_values) == list(range(4, 31, 4))
        rows = list(csv.DictReader((run_dir / "history.csv").open(encoding="utf-8")))
        assert [int(row["epoch"]) for row in rows if row["val_accuracy"]] == [*range(4, 31, 4), 30]
        assert {float(row["val_accuracy"]) for row in rows if int(row["epoch"]) % 4 == 0} == {
            trial.intermediate_values[int(row["epoch"])] for row in rows if int(row["epoch"]) % 4 == 0}

    record = json.loads(folder.record.read_text())
    assert record["state"] == "finished" and record["trials"]["complete"] == 4 and record["epochs"] == 120
    assert record["storage"] == journal(folder)
    best = record["best"]
    assert best["trial"] == study.best_trial.number and best["value"] == study.best_trial.value
    assert set(best["test"]) == {"loss", "accuracy"} and 0.5 <= best["test"]["accuracy"] <= 1.0
    assert f"test split (scored once, on the best trial's weights): loss {best['test']['loss']:.4f}" in output

    # the best trial's pipeline runs as it is and trains the same model: the same test metrics
    best_file = folder.root / "best.toml"
    table = tomllib.loads(best_file.read_text())
    assert "sweep" not in table and table["pipeline"]["base_dir"] == str(path.parent.resolve())
    assert table["train"]["optimizer"]["lr"] == best["values"]["train.optimizer.lr"]
    assert table["model"]["hidden_sizes"] == best["values"]["model.hidden_sizes"]
    assert table["evaluate"]["split"] == "test" and "export" in table["pipeline"]["stages"]
    result = CliRunner().invoke(cli, ["run", str(best_file), "--out", str(tmp_path / "best_run"), "-q"])
    assert result.exit_code == 0, result.output
    rerun = json.loads((tmp_path / "best_run" / "metrics.json").read_text())
    assert rerun["test"] == best["test"]
    trial_dir = folder.trial_dir(best["trial"])
    assert rerun["validation"] == json.loads((trial_dir / "metrics.json").read_text())["validation"]  # validated every epoch: the same weights
    assert [row["train_loss"] for row in csv.DictReader((tmp_path / "best_run" / "history.csv").open(encoding="utf-8"))] == [
        row["train_loss"] for row in csv.DictReader((trial_dir / "history.csv").open(encoding="utf-8"))]

    # the report: HTML with the figures embedded, and the figures as PNG files
    report = (folder.root / "report.html").read_text()
    for name in ("optimization_history", "param_importances", "parallel_coordinate", "intermediate_values"):
        assert (folder.root / "plots" / f"{name}.png").stat().st_size > 1000
        assert f"plots/{name}.png" in report
    assert report.count("data:image/png;base64,") == 4 and f"Trial {best['trial']}" in report

    # started again with --trials 0: no new trial, and the test split is not scored again
    code, output = sweep(str(path), "--artifacts", str(artifacts), "--trials", "0")
    assert code == 0, output
    assert len(load_study(journal(folder)).trials) == 4
    assert json.loads(folder.record.read_text())["best"]["test_scored"] == best["test_scored"]

    listing = CliRunner().invoke(cli, ["runs", "--artifacts", str(artifacts)])
    assert listing.exit_code == 0 and "sweeps in" in listing.output and "4 complete" in listing.output


PRUNED = SWEEP.replace('pruner = "none"', 'pruner = { name = "median", startup_trials = 2 }').replace(
    'objective = "val_accuracy"', 'objective = "val_loss"').replace("trials = 4", "trials = 8").replace(
    '"train.optimizer.lr" = { type = "float", low = 0.01, high = 1.0, log = true }',
    '"train.optimizer.lr" = { type = "float", low = 1e-5, high = 1.0, log = true }',
)


def test_the_pruner_stops_poor_trials_before_their_last_epoch(tmp_path, write_pipeline):
    path = write_pipeline(PRUNED)
    code, output = sweep(str(path), "--artifacts", str(tmp_path))
    assert code == 0, output
    folder = sweep_folder(tmp_path)
    study = load_study(journal(folder))
    pruned = [trial for trial in study.trials if trial.state == TrialState.PRUNED]
    assert pruned, output  # eight learning rates over five decades: some lose to the median early
    for trial in pruned:
        run_dir = folder.trial_dir(trial.number)
        status = json.loads((run_dir / "status.json").read_text())
        assert status["status"] == "pruned" and status["stage"] == "train"
        rows = (run_dir / "history.csv").read_text().strip().splitlines()[1:]
        assert len(rows) == trial.user_attrs["epochs"] < 30
        assert max(trial.intermediate_values) == len(rows)  # reported every epoch, up to the one that was stopped
        assert not (run_dir / "weights.pt").exists() and not (run_dir / "manifest.json").exists()
    assert f"trial {pruned[0].number:>4}  pruned    pruned at epoch {pruned[0].user_attrs['epochs']}" in output
    record = json.loads(folder.record.read_text())
    assert record["trials"]["pruned"] == len(pruned) and record["trials"]["complete"] == 8 - len(pruned)
    assert record["epochs"] == sum(trial.user_attrs["epochs"] for trial in study.trials) < 8 * 30


EVERY_KIND = SWEEP.replace('objective = "val_accuracy"', 'objective = "val_loss"').replace("trials = 4", "trials = 5").replace(
    '"data.standardize" = { type = "categorical", choices = [true, false] }',
    '"train.optimizer.momentum" = { type = "float", low = 0.0, high = 0.95 }\n"train.epochs" = { type = "int", low = 10, high = 30, step = 5 }',
)


@pytest.mark.parametrize("sampler, pruner, sampler_class, pruner_class", [
    ('{ name = "tpe", seed = 0, startup_trials = 2 }', '{ name = "successive_halving", min_epochs = 2, reduction_factor = 2 }',
     optuna.samplers.TPESampler, optuna.pruners.SuccessiveHalvingPruner),
    ('{ name = "cmaes", seed = 0 }', '{ name = "hyperband", min_epochs = 2, max_epochs = 30 }',
     optuna.samplers.CmaEsSampler, optuna.pruners.HyperbandPruner),
], ids=["tpe-successive_halving", "cmaes-hyperband"])
def test_the_other_samplers_and_pruners_run_int_and_linear_parameters(tmp_path, write_pipeline, sampler, pruner, sampler_class, pruner_class):
    """TPE and CMA-ES with successive halving and Hyperband, over a log float, a linear float, a
    stepped int and a categorical: each drawn value is in its range and reaches the trial's run."""
    path = write_pipeline(EVERY_KIND.replace('sampler = { name = "random", seed = 0 }', f"sampler = {sampler}").replace(
        'pruner = "none"', f"pruner = {pruner}"))
    config, _ = load_pipeline(path)
    assert isinstance(studies.sampler(config.sweep), sampler_class) and isinstance(studies.pruner(config.sweep), pruner_class)
    code, output = sweep(str(path), "--artifacts", str(tmp_path))
    assert code == 0, output
    folder = sweep_folder(tmp_path)
    trials = load_study(journal(folder)).trials
    assert len(trials) == 5 and all(trial.state in (TrialState.COMPLETE, TrialState.PRUNED) for trial in trials), output
    for trial in trials:
        lr, momentum, epochs = (trial.params[key] for key in ("train.optimizer.lr", "train.optimizer.momentum", "train.epochs"))
        assert 0.01 <= lr <= 1.0 and 0.0 <= momentum <= 0.95 and epochs in (10, 15, 20, 25, 30)
        config = tomllib.loads((folder.trial_dir(trial.number) / "config.toml").read_text())
        assert (config["train"]["optimizer"]["lr"], config["train"]["optimizer"]["momentum"], config["train"]["epochs"]) == (lr, momentum, epochs)
        assert trial.user_attrs["epochs"] == (epochs if trial.state == TrialState.COMPLETE else max(trial.intermediate_values))
    assert len({trial.params["train.optimizer.momentum"] for trial in trials}) == 5  # drawn, not fixed


# The time is read before Optuna creates a trial (and stamps its start): a trial may start this much
# after the deadline when the check came just before it.
CHECK_TO_START = 0.25


def test_a_time_budget_starts_no_trial_after_it(tmp_path, write_pipeline):
    """``timeout`` without ``trials``: trials start until the time is over, counted from the command's
    start (not from after its set-up), none after, and the sweep finishes."""
    path = write_pipeline(SWEEP.replace("trials = 4", "timeout = 4"))
    started = datetime.datetime.now()
    code, output = sweep(str(path), "--artifacts", str(tmp_path))
    assert code == 0, output
    assert (datetime.datetime.now() - started).total_seconds() >= 4
    folder = sweep_folder(tmp_path)
    trials = load_study(journal(folder)).trials
    assert trials and all(trial.state == TrialState.COMPLETE for trial in trials), output
    assert all((trial.datetime_start - started).total_seconds() < 4 + CHECK_TO_START for trial in trials), output
    record = json.loads(folder.record.read_text())
    assert record["state"] == "finished" and record["trials"]["complete"] == len(trials)


def test_a_worker_keeps_the_deadline_of_the_command_that_started_it(tmp_path, write_pipeline):
    """A ``--jobs`` worker starts seconds after its command: it stops at the command's deadline
    (``--until``), not ``timeout`` seconds after its own start."""
    path = write_pipeline(SWEEP.replace("trials = 4", "timeout = 600"))
    code, output = sweep(str(path), "--artifacts", str(tmp_path), "--worker", "0", "--until", str(time.time() - 1))
    assert code == 0, output
    assert load_study(journal(sweep_folder(tmp_path))).trials == []


DIVERGING = SWEEP.replace('sampler = { name = "random", seed = 0 }', 'sampler = "grid"').replace("trials = 4\n", "").replace(
    '"train.optimizer.lr" = { type = "float", low = 0.01, high = 1.0, log = true }',
    '"train.optimizer.lr" = { type = "categorical", choices = [0.3, 1e12] }',
).replace('"model.hidden_sizes" = { type = "categorical", choices = [[4], [8, 8]] }\n"data.standardize" = { type = "categorical", choices = [true, false] }', "")


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path, write_pipeline):
    path = write_pipeline(DIVERGING)
    code, output = sweep(str(path), "--artifacts", str(tmp_path))
    assert code == 0, output  # the grid (2 trials) is the budget; one trial completed
    folder = sweep_folder(tmp_path)
    study = load_study(journal(folder))
    failed = [trial for trial in study.trials if trial.state == TrialState.FAIL]
    assert len(failed) == 1 and failed[0].params["train.optimizer.lr"] == 1e12
    assert "training diverged" in failed[0].user_attrs["error"] and "training diverged" in output
    assert json.loads((folder.trial_dir(failed[0].number) / "status.json").read_text())["status"] == "failed"
    assert json.loads(folder.record.read_text())["trials"]["fail"] == 1


def test_a_sweep_where_no_trial_completes_fails_naming_the_first_error(tmp_path, write_pipeline):
    path = write_pipeline(DIVERGING.replace("choices = [0.3, 1e12]", "choices = [1e12, 1e13]"))
    code, output = sweep(str(path), "--artifacts", str(tmp_path))
    assert code == 1
    assert "no trial of study 'moons_small' completed (0 pruned, 2 failed); the first failure: training diverged" in output


def test_a_study_continued_with_another_search_space_is_refused(tmp_path, write_pipeline):
    path = write_pipeline(SWEEP.replace("trials = 4", "trials = 1"))
    assert sweep(str(path), "--artifacts", str(tmp_path))[0] == 0
    report = (sweep_folder(tmp_path).root / "report.html").read_text()
    assert "Parameter importances (fANOVA over the complete trials): not drawn (needs 2 complete trials, the study has 1)" in report
    assert report.count("data:image/png;base64,") == 3
    path.write_text(path.read_text().replace('objective = "val_accuracy"', 'objective = "val_loss"'))
    code, output = sweep(str(path), "--artifacts", str(tmp_path))
    assert code == 2
    assert "study 'moons_small'" in output and "searches another direction and objective than this file's [sweep]" in output
    code, output = sweep(str(path), "--artifacts", str(tmp_path), "--study", "by_loss")
    assert code == 0, output


def test_a_sweep_folder_begun_on_sqlite_is_continued_on_it(tmp_path, write_pipeline):
    """A sweep folder holding study.db (begun on SQLite, the default of earlier versions): the same
    command without --storage adds its trials to that study, and makes no journal file."""
    path = write_pipeline(SWEEP.replace("trials = 4", "trials = 1"))
    folder = sweep_folder(tmp_path)
    code, output = sweep(str(path), "--artifacts", str(tmp_path), "--storage", sqlite(folder))
    assert code == 0, output
    code, output = sweep(str(path), "--artifacts", str(tmp_path), "--trials", "2")
    assert code == 0, output
    assert f"(storage {sqlite(folder)}, 1 trials so far)" in output
    assert not (folder.root / SweepFolder.STUDY_LOG).exists()
    trials = load_study(sqlite(folder)).trials
    assert [trial.state for trial in trials] == [TrialState.COMPLETE] * 2
    assert json.loads((folder.trial_dir(1) / "run.json").read_text())["sweep"]["storage"] == sqlite(folder)
    assert json.loads(folder.record.read_text())["storage"] == sqlite(folder)


def test_a_sweep_folder_with_a_sqlite_and_a_journal_study_is_refused_unless_storage_names_one(tmp_path, write_pipeline):
    """study.db and study.log side by side are two studies: continuing either one unasked could split
    a sweep's trials between them, so the command refuses, naming both and the --storage for each."""
    path = write_pipeline(SWEEP)
    folder = sweep_folder(tmp_path)
    folder.root.mkdir(parents=True)
    optuna.create_study(storage=sqlite(folder), study_name="moons_small")
    optuna.create_study(storage=journal_storage(folder.root / SweepFolder.STUDY_LOG), study_name="moons_small")
    code, output = sweep(str(path), "--artifacts", str(tmp_path))
    assert code == 2, output
    assert f"{folder.root} holds two studies: study.db (SQLite" in output and "and study.log (a journal file" in output
    assert f"name the one to continue with --storage {sqlite(folder)} or --storage {journal(folder)}" in output
    assert sorted(p.name for p in folder.root.iterdir()) == ["study.db", "study.log", "study.log.flock"]  # nothing more written
    with pytest.raises(ConfigError, match="holds two studies"):
        storage_url(None, folder)
    # --storage decides, whatever the folder holds
    assert storage_url(journal(folder), folder) == journal(folder) and storage_url(sqlite(folder), folder) == sqlite(folder)


def test_heartbeat_settings_on_a_journal_file_get_a_note_only_when_changed():
    """heartbeat_seconds and grace_seconds work on RDB storages only: changed on a journal file they
    would do nothing, so the command notes it; at their defaults, or on an RDB storage, no note."""
    def section(**settings: int) -> SweepSection:
        return SweepSection.model_validate({"objective": "val_loss", "trials": 1, **settings,
                                            "parameters": {"train.optimizer.lr": {"type": "float", "low": 0.01, "high": 1.0}}})

    log = "journal:/sweeps/study.log"
    assert unused_heartbeat_settings(log, section()) is None
    assert unused_heartbeat_settings(log, section(heartbeat_seconds=10, grace_seconds=30)) is None  # the defaults, written out
    assert unused_heartbeat_settings("sqlite:///sweeps/study.db", section(heartbeat_seconds=1, grace_seconds=2)) is None
    note = unused_heartbeat_settings(log, section(grace_seconds=60))
    assert note is not None and note.startswith("note: sweep.grace_seconds = 60 applies to RDB storages only; the study is the journal file /sweeps/study.log")
    assert "For heartbeats, give --storage sqlite:///PATH or a database URL" in note


def test_two_worker_processes_share_one_study(tmp_path, write_pipeline):
    """--jobs 2: two real processes run trials of one study on a journal file; every trial runs
    once, in its own folder, and none is lost or left running."""
    path = write_pipeline(SWEEP.replace("trials = 4", "trials = 6\ntimeout = 600"))  # the trials end it; the workers get --until
    journal = f"journal:{tmp_path / 'study.log'}"
    result = subprocess.run(
        [PIPELINE, "sweep", str(path), "--artifacts", str(tmp_path), "--jobs", "2", "--storage", journal],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    study = load_study(journal)
    trials = study.trials
    # budgeted when each starts: two workers that finish at the same moment may both start one more
    assert 6 <= len(trials) <= 7
    assert all(trial.state == TrialState.COMPLETE for trial in trials)
    assert len({trial.user_attrs["pid"] for trial in trials}) == 2  # both processes ran trials
    folder = sweep_folder(tmp_path)
    assert [p.name for p in folder.trial_folders()] == [f"{trial.number:04d}" for trial in trials]
    for trial in trials:
        run = json.loads((folder.trial_dir(trial.number) / "run.json").read_text())
        assert run["sweep"]["trial"] == trial.number
        assert json.loads((folder.trial_dir(trial.number) / "status.json").read_text())["status"] == "succeeded"
    for trial in trials:  # each trial's line printed once, by the worker that ran it
        assert result.stdout.count(f"trial {trial.number:>4}  complete") == 1
    assert json.loads(folder.record.read_text())["trials"]["complete"] == len(trials)


# Trials long enough to be killed in, reporting every epoch: a kill often lands while the process
# appends to the study, and on the journal file the kernel releases its lock (journal_lock).
SLOW = SWEEP.replace("epochs = 30", "epochs = 400").replace(
    'pruner = "none"', 'pruner = "none"\nheartbeat_seconds = 1\ngrace_seconds = 2'
).replace("trials = 4", "trials = 3")


def started_until_trial_1_trains(command: list[str], folder: SweepFolder) -> subprocess.Popen[str]:
    """``command`` (a sweep) started, once its trial 1 has trained an epoch (its events log says so)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    events = folder.trial_dir(1) / "events.jsonl"
    deadline = time.monotonic() + 300
    while not (events.is_file() and '"epoch"' in events.read_text()):
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "trial 1 never started training"
        time.sleep(0.05)
    return process


def test_sigterm_during_a_trial_queues_it_again_and_says_how_to_continue(tmp_path, write_pipeline):
    path = write_pipeline(SLOW)
    folder = sweep_folder(tmp_path)
    process = started_until_trial_1_trains([PIPELINE, "sweep", str(path), "--artifacts", str(tmp_path)], folder)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "trial 1 was stopped by SIGTERM at epoch" in stderr and "run the same `pipeline sweep` command to continue" in stderr
    assert "--resume" not in stderr  # the run's own advice, which a sweep does not take
    trials = load_study(journal(folder)).trials
    assert trials[1].state == TrialState.FAIL and not (folder.trial_dir(1) / "checkpoints").exists()
    assert [trial.params for trial in trials if trial.state == TrialState.WAITING] == [trials[1].params]  # queued again


@pytest.mark.parametrize("storage", ["journal", "sqlite"])
def test_a_sweep_killed_with_sigkill_continues_when_started_again(tmp_path, write_pipeline, storage):
    """SIGKILL in the middle of trial 1; the same command again runs what is missing, and the killed
    trial is failed and tried again: on the default journal file because its process is gone (a
    journal keeps no heartbeats), on SQLite (given with --storage) by its heartbeat, silent since."""
    path = write_pipeline(SLOW)
    folder = sweep_folder(tmp_path)
    url = journal(folder) if storage == "journal" else sqlite(folder)
    command = [PIPELINE, "sweep", str(path), "--artifacts", str(tmp_path), *(["--storage", url] if storage == "sqlite" else [])]
    process = started_until_trial_1_trains(command, folder)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    other = SweepFolder.STUDY_LOG if storage == "sqlite" else SweepFolder.STUDY_DB
    assert not (folder.root / other).exists()  # one study file, the one the command was given or chose
    killed = load_study(url).trials[1]
    assert killed.state == TrialState.RUNNING  # nobody told the study
    assert json.loads((folder.trial_dir(1) / "status.json").read_text())["status"] == "running"

    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    # heartbeat_seconds and grace_seconds, set in SLOW, do nothing on the journal file: a note says so
    noted = "note: sweep.heartbeat_seconds = 1 and grace_seconds = 2 apply to RDB storages only" in result.stderr
    assert noted == (storage == "journal"), result.stderr
    trials = load_study(url).trials
    assert trials[1].state == TrialState.FAIL
    retries = [trial for trial in trials if trial.system_attrs.get("failed_trial") == 1]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE and retries[0].params == trials[1].params
    assert sum(trial.state == TrialState.COMPLETE for trial in trials) == 3  # the budget, exactly
    assert not [trial for trial in trials if trial.state in (TrialState.RUNNING, TrialState.WAITING)]
    status = json.loads((folder.trial_dir(1) / "status.json").read_text())
    assert status["status"] == "failed" and "the worker running trial 1 stopped" in status["error"]
    record = json.loads(folder.record.read_text())
    assert record["state"] == "finished" and record["trials"]["retried"] == 1 and record["trials"]["fail"] == 1


def test_a_dead_local_worker_is_found_without_heartbeats(tmp_path):
    """A journal file keeps no heartbeats: a running trial whose process on this machine is gone is
    failed and queued again; one whose process lives is left alone."""
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.log")))
    study = optuna.create_study(storage=storage, study_name="s")
    finished = subprocess.Popen(["true"])
    finished.wait()
    dead, alive = study.ask(), study.ask()
    dead.suggest_float("x", 0, 1)
    for trial, pid in ((dead, finished.pid), (alive, os.getpid())):
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", pid)
    studies.fail_dead_local_trials(study, studies.dead_worker_callback(retries=1))
    trials = study.trials
    assert [trial.state for trial in trials] == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
    assert trials[2].system_attrs["failed_trial"] == 0 and trials[2].params == trials[0].params
    assert studies.budgeted(trials) == 2  # the retry replaces the failed trial


@pytest.mark.parametrize("retries, trials", [(0, 2), (1, 3)])
def test_the_budget_counts_a_retried_trial_once(tmp_path, retries, trials):
    """A dead worker's failed trial uses the budget unless it is tried again: then its retry does."""
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.log")))
    study = optuna.create_study(storage=storage, study_name="s")
    done = study.ask()
    study.tell(done, 1.0)
    lost = study.ask()
    study.tell(lost, state=TrialState.FAIL)
    studies.dead_worker_callback(retries)(study, study.trials[1])
    assert len(study.trials) == trials
    assert studies.budgeted(study.trials) == 2


def _workers(command: subprocess.Popen[str], count: int, deadline: float) -> list[int]:
    """The process ids of the command's ``count`` worker processes (its children, from Linux's /proc)."""
    children = Path(f"/proc/{command.pid}/task/{command.pid}/children")
    while True:
        found = [int(pid) for pid in children.read_text().split()] if children.exists() else []
        if len(found) >= count:
            return found[:count]
        assert command.poll() is None and time.monotonic() < deadline, "the workers never started"
        time.sleep(0.05)


def _training(folder: SweepFolder, deadline: float, command: subprocess.Popen[str]) -> list[int]:
    """The numbers of the trials that have started training (their events.jsonl holds an epoch)."""
    while True:
        started = [int(path.parent.name) for path in folder.root.glob("trials/*/events.jsonl") if '"epoch"' in path.read_text()]
        if started:
            return started
        assert command.poll() is None and time.monotonic() < deadline, "no trial started training"
        time.sleep(0.05)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker processes in Linux's /proc")
def test_a_worker_killed_with_sigkill_does_not_end_the_sweep(tmp_path, write_pipeline):
    """Issue 30: one of two workers killed inside a trial. The command names it at once, its trial is
    failed and queued again for the worker left, which completes the budget; the results are written
    and the command exits 0."""
    path = write_pipeline(SLOW.replace("trials = 3", "trials = 4"))
    folder, deadline = sweep_folder(tmp_path), time.monotonic() + 300
    command = subprocess.Popen([PIPELINE, "sweep", str(path), "--artifacts", str(tmp_path), "--jobs", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers = _workers(command, 2, deadline)
    _training(folder, deadline, command)
    running = {trial.user_attrs.get("pid") for trial in load_study(journal(folder)).trials if trial.state == TrialState.RUNNING}
    victim = next(pid for pid in workers if pid in running)
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = command.communicate(timeout=600)
    assert command.returncode == 0, stderr
    index = workers.index(victim)
    assert f"worker {index} (process {victim}) was killed by SIGKILL; its running trial is failed and queued again" in stderr
    assert f"1 of 2 workers died during the sweep (worker {index} (process {victim}) was killed by SIGKILL); the others completed" in stderr
    trials = load_study(journal(folder)).trials
    killed = [trial for trial in trials if trial.state == TrialState.FAIL]
    assert len(killed) == 1 and killed[0].user_attrs["pid"] == victim
    retry = next(trial for trial in trials if trial.system_attrs.get("failed_trial") == killed[0].number)
    assert retry.state == TrialState.COMPLETE and retry.params == killed[0].params
    assert sum(trial.state == TrialState.COMPLETE for trial in trials) >= 4
    record = json.loads(folder.record.read_text())
    assert record["state"] == "finished" and record["best"] is not None
    assert (folder.root / "best.toml").is_file() and (folder.root / "report.html").is_file()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker processes in Linux's /proc")
def test_when_every_worker_dies_the_results_so_far_are_written_and_the_command_continues_them(tmp_path, write_pipeline):
    """Both workers killed: exit 3, the account of what happened, sweep.json 'stopped' with what finished;
    the same command again completes the study and exits 0."""
    path = write_pipeline(SLOW.replace("trials = 3", "trials = 4"))
    folder, deadline = sweep_folder(tmp_path), time.monotonic() + 300
    arguments = [PIPELINE, "sweep", str(path), "--artifacts", str(tmp_path), "--jobs", "2"]
    command = subprocess.Popen(arguments, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers = _workers(command, 2, deadline)
    _training(folder, deadline, command)
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    _, stderr = command.communicate(timeout=300)
    assert command.returncode == 3, stderr
    assert "error: every worker died before the study's budget was used (worker 0 (process" in stderr
    assert "sweep.json says 'stopped'); run the same command again to continue the study" in stderr
    assert "Traceback" not in stderr
    record = json.loads(folder.record.read_text())
    assert record["state"] == "stopped"
    again = subprocess.run(arguments, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    trials = load_study(journal(folder)).trials
    assert not [trial for trial in trials if trial.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert json.loads(folder.record.read_text())["state"] == "finished" and (folder.root / "best.toml").is_file()


def test_the_sweep_figures_leave_matplotlibs_style_as_it_was(tmp_path):
    """Optuna's figures switch matplotlib to its ggplot style; a run's plots drawn later in the same
    process (a sweep, then a run, in one Python session) must look as they always do."""
    import matplotlib
    import optuna

    from pipeline_core.sweep import report
    from pipeline_core.sweep.folder import SweepFolder

    study = optuna.create_study()
    for value in (3.0, 1.0, 2.0):
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        trial.report(value, 1)
        study.tell(trial, value)
    (tmp_path / SweepFolder.PLOTS).mkdir()
    before = dict(matplotlib.rcParams)
    drawn, _ = report.draw(study, SweepFolder(tmp_path))
    assert {plot["file"] for plot in drawn} >= {"plots/optimization_history.png"}
    assert dict(matplotlib.rcParams) == before


@pytest.mark.parametrize("report_every, train, searched, cadence", [
    (1, "", "", None),  # every epoch is reported
    (5, "", "", 5),
    (5, "validate_every = 1", "", None),  # the file says so
    (5, 'validate_every = 5\n[train.early_stopping]\nmonitor = "train_loss"', "", None),
    (5, '[train.early_stopping]\nmonitor = "train_loss"', "", 5),
    (5, '[train.early_stopping]\nmonitor = "val_loss"', "", None),  # patience counts validated epochs
    (5, '[train.scheduler]\nname = "cosine"', "", None),  # a scheduler may watch a val_ column
    (5, '[train.early_stopping]\nmonitor = "train_loss"', '"train.early_stopping.monitor" = { type = "categorical", choices = ["train_loss", "val_loss"] }', None),
], ids=["every-epoch", "report-epochs", "file-says", "file-says-5", "stopping-on-train", "stopping-on-val", "scheduler", "searched"])
def test_a_trial_validates_on_its_report_epochs_when_nothing_else_reads_them(write_pipeline, report_every, train, searched, cadence):
    """The trials' cadence (``trial_validation``): ``report_every`` unless the file sets one, or early
    stopping, a scheduler or a searched value may read a val_ column every epoch."""
    from pipeline_core.sweep.trial import trial_validation

    text = SWEEP.replace('pruner = "none"', f'pruner = "none"\nreport_every = {report_every}').replace(
        'batch_size = "full"\n', f'batch_size = "full"\n{train}\n', 1) + searched + "\n"
    config, _ = load_pipeline(write_pipeline(text))
    assert config.sweep is not None
    assert trial_validation(config, config.sweep) == cadence
