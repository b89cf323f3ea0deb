"""The training loop on small synthetic data: batching, accumulation, clipping, divergence, early
stopping, exact resume from a mid-epoch state, threads."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from pipeline_core.config.common import ComponentConfig
from pipeline_core.config.train_section import EarlyStoppingSection, TrainSection
from pipeline_core.data.loaded import Split
from pipeline_core.errors import Interrupted, RunFailed
from pipeline_core.run.signals import StopRequest
from pipeline_core.training.threads import DEFAULT_THREADS, choose_threads
from pipeline_core.training.trainer import Trainer


def _problem(rows: int = 10):
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(rows, 3, generator=generator)
    targets = (inputs[:, 0] > 0).long()
    return Split(inputs, targets)


class CountingModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(3, 2)
        self.batch_sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batch_sizes.append(len(x))
        return self.linear(x)


def _settings(epochs, batch_size, **options):
    """The validated [train] section the trainer takes (the test builds the optimizer and loss it names)."""
    named = {"optimizer": ComponentConfig("optimizer", "sgd"), "loss": ComponentConfig("loss", "cross_entropy")}
    return TrainSection(epochs=epochs, batch_size=batch_size or "full", **named, **options)


def _trainer(model, split, settings, lr=0.1, **options):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    return Trainer(model, optimizer, nn.CrossEntropyLoss(), split, settings, "multiclass", 1, **options)


@pytest.mark.parametrize("batch_size, drop_last, expected", [
    (4, False, [4, 4, 2]),
    (4, True, [4, 4]),
    (None, False, [10]),
    (20, True, [10]),  # a batch larger than the split is the whole split, never dropped
])
def test_batches(batch_size, drop_last, expected):
    model = CountingModel()
    trainer = _trainer(model, _problem(), _settings(1, batch_size, drop_last=drop_last))
    summary = trainer.fit()
    assert model.batch_sizes == expected
    assert trainer.history[0]["epoch"] == 1 and summary.steps == len(expected)


def test_loss_falls_and_history_rows_are_complete():
    model = CountingModel()
    trainer = _trainer(model, _problem(64), _settings(30, 16), validate=lambda m: {"loss": 0.5, "accuracy": 1.0})
    trainer.fit()
    rows = trainer.history
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert set(rows[0]) == {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"}
    assert rows[-1]["train_accuracy"] >= 0.9


def test_epoch_loss_is_the_sample_mean():
    """With lr 0 the reported loss must equal the loss over all rows."""
    split = _problem(10)
    model = CountingModel()
    with torch.no_grad():
        expected = nn.CrossEntropyLoss()(model.linear(split.inputs), split.targets).item()
    trainer = _trainer(model, split, _settings(1, 3), lr=0.0)  # batches 3, 3, 3, 1
    trainer.fit()
    assert trainer.history[0]["train_loss"] == pytest.approx(expected, rel=1e-6)


def test_gradient_accumulation_equals_one_big_batch():
    split = _problem(8)
    small, big = CountingModel(), CountingModel()
    _trainer(small, split, _settings(1, 2, shuffle=False, accumulate_batches=4)).fit()
    _trainer(big, split, _settings(1, 8, shuffle=False)).fit()
    assert torch.allclose(small.linear.weight, big.linear.weight, atol=1e-6)
    assert not torch.equal(small.linear.weight, CountingModel().linear.weight)  # it did step


def test_gradient_clipping_bounds_the_update():
    split = _problem(8)
    model = CountingModel()
    before = copy.deepcopy(model.linear.state_dict())
    _trainer(model, split, _settings(1, 8, shuffle=False, clip_grad_norm=1e-3), lr=1.0).fit()
    change = torch.cat([(model.linear.weight - before["weight"]).flatten(), model.linear.bias - before["bias"]])
    assert change.norm() <= 1e-3 + 1e-7  # lr 1 × a gradient clipped to norm 1e-3


def test_non_finite_loss_names_epoch_step_and_checkpoint():
    model = CountingModel()
    with torch.no_grad():
        model.linear.weight.fill_(float("nan"))
    trainer = _trainer(model, _problem(), _settings(3, 4))
    trainer.checkpoints.last = "checkpoints/step-000000003.pt"
    with pytest.raises(RunFailed, match=r"the loss became nan at epoch 1, step 1 of 3; last good checkpoint: checkpoints/step-000000003.pt"):
        trainer.fit()


def test_early_stopping_restores_the_best_weights():
    values = iter([0.9, 0.5, 0.7, 0.8, 0.6, 0.4])
    seen: list[dict] = []
    model = CountingModel()
    rule = EarlyStoppingSection(monitor="val_loss", mode="min", patience=2, restore_best=True)

    def validate(current):
        seen.append(copy.deepcopy(current.state_dict()))
        return {"loss": next(values)}

    summary = _trainer(model, _problem(), _settings(6, 5, early_stopping=rule), validate=validate).fit()
    assert summary.stopped_early and summary.epochs_run == 4 and summary.best_epoch == 2
    assert torch.equal(model.linear.weight, seen[1]["linear.weight"])


def test_unknown_monitor_lists_the_columns():
    rule = EarlyStoppingSection(monitor="val_acc", mode="max", patience=2)
    with pytest.raises(RunFailed, match=r"early_stopping.monitor is 'val_acc', which is not in the epoch's history \(available: train_loss, train_accuracy, val_accuracy, lr\)"):
        _trainer(CountingModel(), _problem(), _settings(3, 5, early_stopping=rule), validate=lambda m: {"accuracy": 1.0}).fit()


class StopAfterSteps(StopRequest):
    """What a SIGTERM handler would leave behind, arriving once the trainer has taken ``steps`` steps."""

    def __init__(self, trainer: Trainer, steps: int) -> None:
        super().__init__(signal=15)
        self.trainer, self.steps = trainer, steps

    @property
    def requested(self) -> bool:
        return self.trainer.steps.count >= self.steps


def test_resume_from_a_mid_epoch_stop_is_bit_identical():
    split = _problem(23)
    settings = _settings(4, 4, accumulate_batches=2)
    reference = CountingModel()
    torch.manual_seed(5)
    _trainer(reference, split, settings).fit()

    stopped = CountingModel()
    torch.manual_seed(5)
    saved: list[dict] = []
    trainer = _trainer(stopped, split, settings, checkpoint=lambda payload: saved.append(copy.deepcopy(payload)) or "memory")
    with pytest.raises(Interrupted, match="stopped by SIGTERM in epoch 2 after step 5") as caught:
        trainer.fit(StopAfterSteps(trainer, 5))
    assert caught.value.exit_code == 143
    # 23 rows in batches of 4 → 6 batches, 3 optimizer steps an epoch; step 5 ends batch 4 of epoch 2
    assert saved[-1]["partial"]["next_start"] == 16 and saved[-1]["epoch"] == 1

    resumed = CountingModel()
    torch.manual_seed(99)  # whatever the new process does before loading, the checkpoint decides
    fresh = _trainer(resumed, split, settings)
    fresh.load_state_dict(saved[-1])
    fresh.fit()
    assert torch.equal(resumed.linear.weight, reference.linear.weight)
    assert torch.equal(resumed.linear.bias, reference.linear.bias)


@pytest.mark.parametrize("batch_size", [None, 40])  # "full", and one batch larger than the split: one step an epoch
def test_a_stop_during_a_full_batch_epoch_resumes_bit_identical(batch_size):
    split = _problem(23)
    settings = _settings(5, batch_size)
    reference = CountingModel()
    finished = _trainer(reference, split, settings)
    finished.fit()

    stopped = CountingModel()
    saved: list[dict] = []
    trainer = _trainer(stopped, split, settings, checkpoint=lambda payload: saved.append(copy.deepcopy(payload)) or "memory")
    with pytest.raises(Interrupted, match="stopped by SIGTERM in epoch 3 after step 3"):
        trainer.fit(StopAfterSteps(trainer, 3))
    assert saved[-1]["epoch"] == 2 and saved[-1]["partial"]["next_start"] == (batch_size or 23)  # the epoch's one step is taken

    resumed = CountingModel()
    fresh = _trainer(resumed, split, settings)
    fresh.load_state_dict(saved[-1])
    fresh.fit()
    assert torch.equal(resumed.linear.weight, reference.linear.weight) and torch.equal(resumed.linear.bias, reference.linear.bias)
    without_time = [{key: value for key, value in row.items() if key != "seconds"} for row in fresh.history]
    assert without_time == [{key: value for key, value in row.items() if key != "seconds"} for row in finished.history]


def test_a_full_batch_epoch_with_accumulation_steps_as_the_hand_written_loop():
    """accumulate_batches over a single batch: the loss scaled by 1/accumulate, one step an epoch."""
    split = _problem(23)
    model = CountingModel()
    trainer = _trainer(model, split, _settings(4, None, accumulate_batches=3))
    trainer.fit()

    reference = CountingModel()
    optimizer, loss_fn, generator = torch.optim.SGD(reference.parameters(), lr=0.1), nn.CrossEntropyLoss(), torch.Generator().manual_seed(1)
    for _ in range(4):
        order = torch.randperm(23, generator=generator)
        (loss_fn(reference(split.inputs[order]), split.targets[order]) * (1.0 / 3)).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    assert torch.equal(model.linear.weight, reference.linear.weight) and torch.equal(model.linear.bias, reference.linear.bias)
    assert trainer.steps.count == 4


def test_small_cpu_steps_train_on_one_thread():
    assert choose_threads(nn.Linear(3, 2), torch.device("cpu"), "auto", rows_per_step=4) == 1
    assert torch.get_num_threads() == 1
    assert choose_threads(nn.Linear(784, 512), torch.device("cpu"), "auto", rows_per_step=32) == DEFAULT_THREADS
    assert choose_threads(nn.Linear(3, 2), torch.device("cpu"), 2, rows_per_step=4) == 2
