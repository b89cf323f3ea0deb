"""The training engine under faults, for real: SIGKILL at random points then --resume (weights
bit-identical to an uninterrupted run), SIGINT/SIGTERM (exit 130/143, resumable), injected write
failures (the last good checkpoint survives), NaN losses, CUDA OOM, and each scheduler."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from pipeline_core.errors import ConfigError, PipelineError, RunFailed
from pipeline_core.pipeline.runner import load_pipeline, load_run, run_pipeline
from pipeline_core.run import checkpoint

from helpers import IRIS_FAST, wait_for_checkpoint

EPOCHS = 120
LONG = IRIS_FAST.replace("epochs = 3", f"epochs = {EPOCHS}\ncheckpoint_every = 1").replace(
    "seed = 3", 'seed = 3\nstages = ["load_data", "build_model", "train"]'
).replace("batch_norm = [true, false]", "batch_norm = [true, false]\ndropout = 0.2").replace(
    "batch_size = 16", "batch_size = 4"
) + '\n[train.scheduler]\nname = "one_cycle"\nmax_lr = 0.05\n'


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline_core", *args]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "weights.pt", weights_only=True)


def _identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, in a subprocess like the interrupted ones."""
    folder = tmp_path_factory.mktemp("reference")
    path = folder / "pipeline.toml"
    path.write_text(textwrap.dedent(LONG).lstrip())
    done = subprocess.run(_command("run", str(path), "--out", str(folder / "run"), "-q"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return path, _weights(folder / "run")


def test_sigkill_at_random_points_then_resume_is_bit_identical(reference, tmp_path):
    path, expected = reference
    run_dir = tmp_path / "run"
    chance = random.Random(20261122)
    kills = 0
    process = subprocess.Popen(_command("run", str(path), "--out", str(run_dir), "-q"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while kills < 3:
        if not wait_for_checkpoint(process, run_dir):
            break  # finished before this kill: the remaining resumes have nothing left to do
        time.sleep(chance.uniform(0.0, 0.6))
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        if json.loads((run_dir / "status.json").read_text())["status"] == "succeeded":
            break  # the kill landed after the run had finished
        kills += 1
        process = subprocess.Popen(_command("run", str(run_dir), "--resume", "-q"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.wait(timeout=300) == 0, process.stderr.read().decode()
    assert kills >= 2, "the run finished too quickly to be killed; lengthen it"
    assert _identical(_weights(run_dir), expected)
    assert json.loads((run_dir / "status.json").read_text())["status"] == "succeeded"
    history = (run_dir / "history.csv").read_text().splitlines()
    assert [int(line.split(",")[0]) for line in history[1:]] == list(range(1, EPOCHS + 1))


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_finishes_the_step_checkpoints_and_resumes_exactly(reference, tmp_path, sig, code):
    path, expected = reference
    run_dir = tmp_path / "run"
    process = subprocess.Popen(_command("run", str(path), "--out", str(run_dir), "-q"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for_checkpoint(process, run_dir)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    assert f"stopped by {signal.Signals(sig).name} in epoch" in stderr and "Continue with --resume." in stderr
    assert "Traceback" not in stderr
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "interrupted" and status["stage"] == "train"
    payload = checkpoint.load(checkpoint.latest(run_dir))
    assert payload["partial"] is not None  # stopped inside an epoch, right after an optimizer step
    resumed = subprocess.run(_command("run", str(run_dir), "--resume", "-q"), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert _identical(_weights(run_dir), expected)


STOP_PLUGIN = '''
import os
import signal

from torch import nn

from pipeline_core import hookimpl


class StopAtCall(nn.Module):
    """Cross-entropy that sends this process SIGTERM on call $STOP_AT_CALL (none when unset)."""

    def __init__(self):
        super().__init__()
        self.calls, self.stop_at = 0, int(os.environ.get("STOP_AT_CALL", "0"))

    def forward(self, outputs, targets):
        self.calls += 1
        if self.calls == self.stop_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return nn.functional.cross_entropy(outputs, targets)


@hookimpl
def register_losses(register):
    register("stop_at_call", StopAtCall)
'''


def test_a_stop_on_the_last_step_of_an_epoch_resumes_into_a_complete_history(tmp_path):
    """The signal lands during an epoch's last batch: the checkpoint's partial epoch has no batch
    left, and the resumed run still records that epoch's training accuracy and ends bit-identical."""
    (tmp_path / "stopping.py").write_text(textwrap.dedent(STOP_PLUGIN))
    text = LONG.replace(f"epochs = {EPOCHS}", "epochs = 4").replace("seed = 3", 'seed = 3\nplugins = ["stopping.py"]').replace(
        'name = "cross_entropy"', 'name = "stop_at_call"')
    path = tmp_path / "pipeline.toml"
    path.write_text(textwrap.dedent(text).lstrip())
    reference = subprocess.run(_command("run", str(path), "--out", str(tmp_path / "reference"), "-q"), capture_output=True, text=True, timeout=300)
    assert reference.returncode == 0, reference.stderr
    run_dir = tmp_path / "run"
    # 112 training rows in batches of 4: 28 loss calls an epoch; call 56 is epoch 2's last batch
    stopped = subprocess.run(_command("run", str(path), "--out", str(run_dir), "-q"), capture_output=True, text=True, timeout=300,
                             env={**os.environ, "STOP_AT_CALL": "56"})
    assert stopped.returncode == 143, stopped.stderr
    partial = checkpoint.load(checkpoint.latest(run_dir))["partial"]
    assert partial["epoch"] == 2 and partial["next_start"] == 112  # nothing of epoch 2 is left to run
    resumed = subprocess.run(_command("run", str(run_dir), "--resume", "-q"), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    history = (run_dir / "history.csv").read_text().splitlines()
    assert history[0] == (tmp_path / "reference" / "history.csv").read_text().splitlines()[0] and "train_accuracy" in history[0]
    assert len(history) == 5 and all(line.split(",")[2] for line in history[1:])
    assert _identical(_weights(run_dir), _weights(tmp_path / "reference"))


def test_resume_by_pipeline_file_finds_the_unfinished_run(reference, tmp_path):
    path, expected = reference
    artifacts = tmp_path / "artifacts"
    process = subprocess.Popen(_command("run", str(path), "--artifacts", str(artifacts), "-q"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = None
    deadline = time.monotonic() + 120
    while run_dir is None and time.monotonic() < deadline:
        found = list(artifacts.glob("iris_fast/*/checkpoints/latest.json"))
        run_dir = found[0].parent.parent if found else None
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 143
    resumed = subprocess.run(_command("run", str(path), "--artifacts", str(artifacts), "--resume", "-q"), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert _identical(_weights(run_dir), expected)
    assert (artifacts / "iris_fast" / "latest").resolve() == run_dir.resolve()
    again = subprocess.run(_command("run", str(run_dir), "--resume"), capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "already finished successfully" in again.stderr


def test_resume_refuses_a_changed_configuration(write_pipeline, tmp_path):
    path = write_pipeline(LONG.replace(f"epochs = {EPOCHS}", "epochs = 2"))
    config, host = load_pipeline(path)
    run_dir = tmp_path / "run"
    (run_dir).mkdir()
    (run_dir / "run.json").write_text(json.dumps({"config_sha256": "0" * 64}))
    with pytest.raises(ConfigError, match="the configuration differs from the one"):
        run_pipeline(config, host, out=run_dir, quiet=True, resume=True)


def test_a_failed_checkpoint_write_keeps_the_last_good_one(write_pipeline, tmp_path, monkeypatch):
    path = write_pipeline(LONG.replace(f"epochs = {EPOCHS}", "epochs = 6"))
    config, host = load_pipeline(path)
    real_write, calls = Path.write_bytes, {"checkpoints": 0}

    def failing_write(target, data):  # a checkpoint is serialized in memory, then written to a temporary file
        if target.name.startswith(".step-") and ".pt." in target.name and target.name.endswith(".tmp"):
            calls["checkpoints"] += 1
            if calls["checkpoints"] == 4:
                real_write(target, data[: len(data) // 2])  # the disk fills up part-way
                raise OSError(28, "No space left on device")
        return real_write(target, data)

    monkeypatch.setattr(Path, "write_bytes", failing_write)
    with pytest.raises(PipelineError, match="No space left on device; the previous file is untouched"):
        run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    monkeypatch.setattr(Path, "write_bytes", real_write)
    folder = tmp_path / "run" / "checkpoints"
    assert json.loads((folder / "latest.json").read_text())["epoch"] == 3
    assert checkpoint.load(checkpoint.latest(tmp_path / "run"))["epoch"] == 3
    assert not list(folder.glob(".*.tmp"))  # the half-written file was removed
    config, host = load_run(tmp_path / "run")
    run = run_pipeline(config, host, out=tmp_path / "run", quiet=True, resume=True)
    assert [row["epoch"] for row in run.history] == [1, 2, 3, 4, 5, 6]


def test_a_failed_pointer_update_keeps_the_previous_pointer(write_pipeline, tmp_path, monkeypatch):
    import pipeline_core.run.artifacts as artifacts

    config, host = load_pipeline(write_pipeline(LONG.replace(f"epochs = {EPOCHS}", "epochs = 4")))
    real_replace, count = os.replace, {"latest": 0}

    def failing_replace(source, target):
        if str(target).endswith("latest.json"):
            count["latest"] += 1
            if count["latest"] == 3:
                raise OSError(5, "Input/output error")
        return real_replace(source, target)

    monkeypatch.setattr(artifacts.os, "replace", failing_replace)
    with pytest.raises(PipelineError, match="could not write .*latest.json: Input/output error"):
        run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    latest = checkpoint.latest(tmp_path / "run")
    assert checkpoint.load(latest)["epoch"] == 2  # the pointer still names a complete checkpoint


def _kept(run_dir: Path) -> int:
    """How many checkpoints ``latest.json`` lists (the pointer is the commit point: a checkpoint whose
    ``step-N.json`` is written but that the pointer does not list yet is not counted)."""
    try:
        return len(json.loads((run_dir / "checkpoints" / "latest.json").read_text())["kept"])
    except (OSError, ValueError, KeyError):
        return 0


def _killed_after_checkpoints(path: Path, run_dir: Path, count: int) -> None:
    """Run ``path`` into ``run_dir`` and SIGKILL it once ``latest.json`` lists ``count`` checkpoints."""
    process = subprocess.Popen(_command("run", str(path), "--out", str(run_dir), "-q"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while _kept(run_dir) < count:
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()


def _damage(path: Path) -> None:
    """Overwrite bytes in the middle of a file, in place (its size stays)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    path.write_bytes(bytes(data))


def test_a_damaged_newest_checkpoint_falls_back_to_the_newest_that_verifies(reference, tmp_path):
    """Issue 30: bytes overwritten in the newest checkpoint after a kill -9. Resuming says which file
    is damaged, resumes from the one before, sets the damaged one aside, and ends bit-identical."""
    path, expected = reference
    run_dir = tmp_path / "run"
    _killed_after_checkpoints(path, run_dir, 2)
    newest = checkpoint.find(run_dir).path
    kept = json.loads((run_dir / "checkpoints" / "latest.json").read_text())["kept"]
    assert [entry["file"] for entry in kept][0] == newest.name and len(kept) == 2
    older = run_dir / "checkpoints" / kept[1]["file"]
    _damage(newest)
    found = checkpoint.find(run_dir)
    assert found.path == older and found.skipped[0][0] == newest
    resumed = subprocess.run(_command("run", str(run_dir), "--resume", "-q"), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert (f"warning: {newest.name} (step {kept[0]['step']}) does not match its recorded sha256 (the file was damaged); "
            f"resuming from {older.name} (step {kept[1]['step']}), the newest checkpoint that verifies: "
            f"{kept[0]['step'] - kept[1]['step']} step(s) will run again") in resumed.stderr
    assert newest.with_name(newest.name + ".damaged").is_file()  # kept for inspection, never loaded
    assert _identical(_weights(run_dir), expected)


def test_a_lost_pointer_and_a_missing_newest_checkpoint_still_resume(write_pipeline, tmp_path):
    """latest.json unreadable and the newest checkpoint deleted: the records beside the checkpoints
    still name one that verifies."""
    config, host = load_pipeline(write_pipeline(LONG.replace(f"epochs = {EPOCHS}", "epochs = 3")))
    run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    folder = tmp_path / "run" / "checkpoints"
    newest = checkpoint.find(tmp_path / "run").path
    newest.unlink()
    (folder / "latest.json").write_text("{not json")
    found = checkpoint.find(tmp_path / "run")
    assert found.path.name < newest.name and [(path, reason) for path, _, reason in found.skipped] == [(newest, "is missing")]
    assert checkpoint.load(found.path)["epoch"] == 2


def test_when_no_checkpoint_verifies_the_message_says_so_and_what_is_left(write_pipeline, tmp_path):
    config, host = load_pipeline(write_pipeline(LONG.replace(f"epochs = {EPOCHS}", "epochs = 2")))
    run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    for path in (tmp_path / "run" / "checkpoints").glob("step-*.pt"):
        _damage(path)
    with pytest.raises(PipelineError) as caught:
        checkpoint.latest(tmp_path / "run")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'run'} cannot be resumed: no checkpoint in {tmp_path / 'run' / 'checkpoints'} verifies (")
    assert message.count("does not match its recorded sha256 (the file was damaged)") == 2
    assert f"start the run again from its configuration (`pipeline run {tmp_path / 'run' / 'config.toml'}`)" in message


def test_a_checkpoint_folder_of_an_earlier_version_still_resumes(write_pipeline, tmp_path):
    """Before issue 30, latest.json held one record and no step-N.json was written: still read."""
    config, host = load_pipeline(write_pipeline(LONG.replace(f"epochs = {EPOCHS}", "epochs = 2")))
    run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    folder = tmp_path / "run" / "checkpoints"
    pointer = json.loads((folder / "latest.json").read_text())
    (folder / "latest.json").write_text(json.dumps({key: pointer[key] for key in ("file", "epoch", "step", "sha256")}))
    for record in folder.glob("step-*.json"):
        record.unlink()
    assert checkpoint.latest(tmp_path / "run").name == pointer["file"]


NAN_PLUGIN = '''
import torch
from torch import nn
from pipeline_core import hookimpl


class NanAfter(nn.Module):
    """Cross-entropy that turns NaN after a given number of calls (a run that diverges mid-way)."""

    def __init__(self, calls):
        super().__init__()
        self.calls, self.limit = 0, calls

    def forward(self, outputs, targets):
        self.calls += 1
        loss = nn.functional.cross_entropy(outputs, targets)
        return loss * float("nan") if self.calls > self.limit else loss


def nan_after(*, calls: int) -> nn.Module:
    return NanAfter(calls)


class Exhausting(nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.linear = nn.Linear(spec.input_shape[0], spec.num_outputs)

    def forward(self, x):
        if self.training:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.linear(x)


def exhausting(spec) -> nn.Module:
    return Exhausting(spec)


@hookimpl
def register_losses(register):
    register("nan_after", nan_after)


@hookimpl
def register_models(register):
    register("exhausting", exhausting)
'''


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(write_pipeline, tmp_path):
    (tmp_path / "faults.py").write_text(textwrap.dedent(NAN_PLUGIN))
    # 112 rows in batches of 4: 28 loss calls an epoch; NaN from call 68 (epoch 3, step 12)
    text = LONG.replace(f"epochs = {EPOCHS}", "epochs = 6").replace("seed = 3", 'seed = 3\nplugins = ["faults.py"]').replace(
        'name = "cross_entropy"', 'name = "nan_after"\ncalls = 67')
    config, host = load_pipeline(write_pipeline(text))
    with pytest.raises(RunFailed, match=r"the loss became nan at epoch 3, step 12 of 28; last good checkpoint: checkpoints/step-000000056.pt"):
        run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    payload = checkpoint.load(checkpoint.latest(tmp_path / "run"))
    assert payload["epoch"] == 2 and all(torch.isfinite(t).all() for t in payload["model"].values() if t.is_floating_point())
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "failed"


def test_cuda_out_of_memory_names_the_batch_size(write_pipeline, tmp_path):
    (tmp_path / "faults.py").write_text(textwrap.dedent(NAN_PLUGIN))
    text = IRIS_FAST.replace("seed = 3", 'seed = 3\nplugins = ["faults.py"]').replace(
        'name = "mlp"\nhidden_sizes = [16, 8]\nbatch_norm = [true, false]', 'name = "exhausting"')
    config, host = load_pipeline(write_pipeline(text))
    with pytest.raises(RunFailed, match=r"CUDA ran out of memory training with batch_size 16; try batch_size = 8 \(with accumulate_batches = 2"):
        run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    assert not (tmp_path / "run" / "weights.pt").exists()


@pytest.mark.parametrize("scheduler, check", [
    ('name = "step"\nstep_size = 2\ngamma = 0.5', lambda lrs: lrs == pytest.approx([0.01, 0.01, 0.005, 0.005, 0.0025, 0.0025])),
    ('name = "cosine"', lambda lrs: lrs[0] == pytest.approx(0.01) and lrs[-1] < 0.001 and lrs == sorted(lrs, reverse=True)),
    ('name = "one_cycle"\nmax_lr = 0.1', lambda lrs: max(lrs) > 0.05 and lrs[-1] < 0.01),
    ('name = "reduce_on_plateau"\nmonitor = "train_accuracy"\nmode = "max"\npatience = 0\nfactor = 0.5', lambda lrs: lrs[-1] < 0.01),
])
def test_each_scheduler_shapes_the_learning_rate(write_pipeline, tmp_path, scheduler, check):
    text = IRIS_FAST.replace("epochs = 3", "epochs = 6").replace("batch_size = 16", "batch_size = 56") + f"\n[train.scheduler]\n{scheduler}\n"
    config, host = load_pipeline(write_pipeline(text))
    run = run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    lrs = [row["lr"] for row in run.history]
    assert check(lrs), lrs


def test_early_stopping_in_a_pipeline(write_pipeline, tmp_path):
    text = IRIS_FAST.replace("epochs = 3", "epochs = 200").replace('[data]\nname = "iris"', '[data]\nname = "iris"\nval_size = 0.2') + (
        "\n[train.early_stopping]\nmonitor = \"val_loss\"\npatience = 3\n")
    config, host = load_pipeline(write_pipeline(text))
    run = run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    training = run.training
    assert training.stopped_early and training.epochs_run < 200
    assert training.epochs_run - training.best_epoch == 3
    best = min(row["val_loss"] for row in run.history)
    assert run.metrics["validation"]["loss"] == pytest.approx(best, rel=1e-5)  # the best weights were put back


def test_early_stopping_on_validation_needs_a_validation_split(write_pipeline, tmp_path):
    config, host = load_pipeline(write_pipeline(IRIS_FAST + "\n[train.early_stopping]\npatience = 2\n"))
    with pytest.raises(ConfigError, match="train.early_stopping.monitor is 'val_loss' but the data has no validation split"):
        run_pipeline(config, host, out=tmp_path / "run", quiet=True)


def test_early_stopping_options_are_validated(write_pipeline):
    with pytest.raises(ConfigError, match=r"train.early_stopping.patiense: unknown key; did you mean 'patience'\?"):
        load_pipeline(write_pipeline(IRIS_FAST + "\n[train.early_stopping]\npatiense = 2\n"))


def test_bf16_autocast_accumulation_clipping_and_compile(write_pipeline, tmp_path):
    overrides = ('train.precision="bf16"', "train.accumulate_batches=2", "train.clip_grad_norm=1.0",
                 "train.compile=true", 'train.compile_backend="eager"')
    config, host = load_pipeline(write_pipeline(), overrides)
    run = run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    assert run.training.steps == 3 * 4  # 112 rows, batch 16: 7 batches → 4 steps an epoch
    assert all(entry["passed"] for entry in run.export_report.values())


def test_fp16_needs_cuda(write_pipeline, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("checks the message on a machine without CUDA")
    config, host = load_pipeline(write_pipeline(), ('train.precision="fp16"',))
    with pytest.raises(ConfigError, match="train.precision 'fp16' needs a CUDA device"):
        run_pipeline(config, host, out=tmp_path / "run", quiet=True)
