"""Issue 35: a full-batch epoch costs little, and what it records stays exact.

The engine reduces an epoch's loss and correct predictions in a few tensor operations and reads them
once; every history row must still be the value a hand-written loop reads directly, bit for bit.
events.jsonl holds epoch lines for at most a second: a SIGTERM loses none of them, a SIGKILL at most
that window, and never leaves a partial line.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from pipeline_core.config.common import ComponentConfig
from pipeline_core.config.train_section import TrainSection
from pipeline_core.data.loaded import Split
from pipeline_core.training.trainer import Trainer
from pipeline_core_plugins.trackers.jsonl import EPOCH_FLUSH_SECONDS

from helpers import PIPELINES

LOSSES = {
    "binary": lambda: nn.BCEWithLogitsLoss(),
    "multiclass": lambda: nn.CrossEntropyLoss(),
    "regression": lambda: nn.MSELoss(reduction="sum"),
}
LR = {"binary": 0.05, "multiclass": 0.05, "regression": 0.0005}  # a summed loss takes smaller steps


def _problem(task: str, rows: int = 50) -> tuple[Split, nn.Module]:
    generator = torch.Generator().manual_seed(35)
    inputs = torch.randn(rows, 3, generator=generator)
    if task == "binary":
        targets, outputs = (inputs[:, :1] + inputs[:, 1:2] > 0).float(), 1
    elif task == "multiclass":
        targets, outputs = (inputs[:, 0] > 0).long() + (inputs[:, 1] > 0.5).long(), 3
    else:
        targets, outputs = inputs[:, :2] * 2.0 + 1.0, 2
    torch.manual_seed(35)
    return Split(inputs, targets), nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, outputs))


def _predicted_right(outputs: torch.Tensor, targets: torch.Tensor, task: str) -> int:
    predicted = outputs.argmax(1) if task == "multiclass" else (outputs > 0).long().view(-1)
    return int((predicted == targets.view(-1).long()).sum())


def _hand_written(model: nn.Module, split: Split, task: str, epochs: int, batch: int | None) -> list[dict[str, float]]:
    """The loop a user writes: shuffled as the trainer shuffles (its generator, seed 1), each batch's loss
    and correct predictions read directly. Full batch: the loss row is the step's loss itself."""
    optimizer = torch.optim.SGD(model.parameters(), lr=LR[task], momentum=0.9)
    loss_fn, generator = LOSSES[task](), torch.Generator().manual_seed(1)
    rows = []
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(split.targets), generator=generator)
        inputs, targets = split.inputs[order], split.targets[order]
        size = batch or len(targets)
        losses, weights, right = [], [], 0
        for start in range(0, len(targets), size):
            outputs = model(inputs[start : start + size])
            loss = loss_fn(outputs, targets[start : start + size])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach())
            weights.append(1.0 if task == "regression" else float(len(outputs)))
            if task != "regression":
                right += _predicted_right(outputs.detach(), targets[start : start + size], task)
        if len(losses) == 1:
            loss_value = float(losses[0])  # the full batch's loss, read directly
        else:  # the sample mean of the batches' losses (the batch mean for a summed loss), in float64
            total = (torch.stack(losses).double() * torch.tensor(weights, dtype=torch.float64)).sum()
            loss_value = float(total / (len(losses) if task == "regression" else len(targets)))
        row = {"epoch": epoch, "train_loss": loss_value}
        if task != "regression":
            row["train_accuracy"] = right / len(targets)
        rows.append(row)
    return rows


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("batch", [None, 16])
def test_every_history_row_is_the_hand_written_loops_value(task, batch):
    split, model = _problem(task)
    reference = copy.deepcopy(model)
    settings = TrainSection(
        epochs=40, batch_size=batch or "full", optimizer=ComponentConfig("optimizer", "sgd"), loss=ComponentConfig("loss", "mse"),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=LR[task], momentum=0.9)
    seen: list[tuple[int, dict[str, float]]] = []
    trainer = Trainer(model, optimizer, LOSSES[task](), split, settings, task, 1, on_epoch_end=lambda epoch, row: seen.append((epoch, row)))
    trainer.fit()
    expected = _hand_written(reference, split, task, 40, batch)
    recorded = [{key: value for key, value in row.items() if key not in ("lr", "seconds")} for row in trainer.history]
    assert recorded == expected  # exact: every epoch, every column
    assert [epoch for epoch, _ in seen] == list(range(1, 41)) and [row for _, row in seen] == trainer.history
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values(), strict=True))


class ModeRecorder(nn.Module):
    """Records, at each forward pass, whether it and its inner layer were in training mode."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(3, 3))
        self.modes: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append((self.training, self.inner.training))
        return self.inner(x)


def test_a_part_left_in_eval_mode_by_a_hook_trains_in_training_mode_again():
    """The trainer calls model.train() only when some module is not training: a hook that puts the
    model, or only a part of it, in eval mode must not make the next epoch train in eval mode."""
    split, _ = _problem("multiclass", rows=12)
    model = ModeRecorder()
    settings = TrainSection(epochs=4, batch_size="full", optimizer=ComponentConfig("optimizer", "sgd"), loss=ComponentConfig("loss", "cross_entropy"))
    actions = {1: lambda: model.eval(), 2: lambda: model.inner.eval(), 3: lambda: None}
    trainer = Trainer(
        model, torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), split, settings, "multiclass", 1,
        on_epoch_end=lambda epoch, row: actions.get(epoch, lambda: None)(),
    )
    model.eval()  # as the build stage's dry pass may leave it
    trainer.fit()
    assert model.modes == [(True, True)] * 4


#: a plugin on the same hook that writes each epoch's end at once: what the events log is held to
EPOCH_CLOCK = """
import time
from pipeline_core import hookimpl

@hookimpl
def on_epoch_end(run, epoch, metrics):
    with open(run.path("epoch_clock.txt"), "a") as stream:
        stream.write(f"{epoch} {time.time()}\\n")
"""


def _run(tmp_path, epochs: int) -> tuple[subprocess.Popen[str], Path]:
    run_dir = tmp_path / "run"
    (tmp_path / "epoch_clock.py").write_text(EPOCH_CLOCK)
    command = [sys.executable, "-m", "pipeline_core", "run", str(PIPELINES / "moons.toml"), "--out", str(run_dir), "--quiet",
               f"--set=train.epochs={epochs}", '--set=pipeline.stages=["load_data", "build_model", "train"]',
               '--set=pipeline.plugins=["epoch_clock"]']
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=environment)
    events, deadline = run_dir / "events.jsonl", time.monotonic() + 120
    while not (events.is_file() and '"epoch"' in events.read_text()):  # the first epoch's line is written at once
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.01)
    time.sleep(2.5 * EPOCH_FLUSH_SECONDS)  # several timed writes into training
    return process, run_dir


def _epoch_lines(run_dir: Path) -> list[dict]:
    text = (run_dir / "events.jsonl").read_text()
    assert text.endswith("\n")  # whole lines only
    return [event for event in map(json.loads, text.splitlines()) if event["event"] == "epoch"]


def test_sigterm_loses_no_event_line(tmp_path):
    process, run_dir = _run(tmp_path, 1_000_000)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    history = list(csv.DictReader((run_dir / "history.csv").open()))
    lines = _epoch_lines(run_dir)
    assert len(history) > 1 and len(lines) == len(history)
    for row, line in zip(history, lines, strict=True):
        assert {key: float(value) for key, value in row.items()} == {key: float(line[key]) for key in row}


def test_sigkill_loses_at_most_the_documented_window(tmp_path):
    """Every epoch that ended more than the window (plus a second's margin for a loaded machine to
    schedule the writing thread) before the kill has its line; the lines are whole and in order."""
    process, run_dir = _run(tmp_path, 1_000_000)
    killed_at = time.time()
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    lines = _epoch_lines(run_dir)
    assert [line["epoch"] for line in lines] == list(range(1, len(lines) + 1))
    ended = {int(epoch): float(at) for epoch, at in (row.split() for row in (run_dir / "epoch_clock.txt").read_text().splitlines() if row.count(" ") == 1)}
    lost = [epoch for epoch in ended if epoch > len(lines)]
    assert len(ended) > 100 and len(lines) > 1  # it trained for a while and wrote in bunches
    assert all(killed_at - ended[epoch] <= EPOCH_FLUSH_SECONDS + 1.0 for epoch in lost), (killed_at, min(ended[e] for e in lost))
