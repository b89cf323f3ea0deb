"""The training loop on small synthetic data: batching, drop_last, full batch, divergence, threads."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pipeline_core.data import Split
from pipeline_core.errors import RunFailed
from pipeline_core.training import DEFAULT_THREADS, LoopSettings, choose_threads, fit


def _problem(rows: int = 10):
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(rows, 3, generator=generator)
    targets = (inputs[:, 0] > 0).long()
    return Split(inputs, targets)


class CountingModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.batch_sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batch_sizes.append(len(x))
        return self.linear(x)


def _fit(model, split, settings, validate=None, lr=0.1):
    rows = []
    fit(model, torch.optim.SGD(model.parameters(), lr=lr), nn.CrossEntropyLoss(), split, settings,
        "multiclass", torch.Generator().manual_seed(1), lambda epoch, row: rows.append(row), validate)
    return rows


@pytest.mark.parametrize("batch_size, drop_last, expected", [
    (4, False, [4, 4, 2]),
    (4, True, [4, 4]),
    (None, False, [10]),
    (20, True, [10]),  # a batch larger than the split is the whole split, never dropped
])
def test_batches(batch_size, drop_last, expected):
    model = CountingModel()
    rows = _fit(model, _problem(), LoopSettings(1, batch_size, drop_last=drop_last))
    assert model.batch_sizes == expected
    assert rows[0]["epoch"] == 1


def test_loss_falls_and_history_rows_are_complete():
    model = CountingModel()
    rows = _fit(model, _problem(64), LoopSettings(30, 16), validate=lambda m: {"loss": 0.5, "accuracy": 1.0})
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert set(rows[0]) == {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"}
    assert rows[-1]["train_accuracy"] >= 0.9


def test_epoch_loss_is_the_sample_mean():
    """With one epoch and lr 0 the reported loss must equal the loss over all rows at the start."""
    split = _problem(10)
    model = CountingModel()
    with torch.no_grad():
        expected = nn.CrossEntropyLoss()(model.linear(split.inputs), split.targets).item()
    rows = _fit(model, split, LoopSettings(1, 3), lr=0.0)  # batches 3, 3, 3, 1
    assert rows[0]["train_loss"] == pytest.approx(expected, rel=1e-6)


def test_without_shuffle_order_is_kept():
    split = _problem(6)
    seen = []

    class Recording(CountingModel):
        def forward(self, x):
            seen.append(x.clone())
            return super().forward(x)

    _fit(Recording(), split, LoopSettings(1, 6, shuffle=False))
    assert torch.equal(seen[0], split.inputs)


def test_non_finite_loss_stops_with_the_epoch():
    model = CountingModel()
    with torch.no_grad():
        model.linear.weight.fill_(float("nan"))
    with pytest.raises(RunFailed, match="training diverged: the training loss is nan in epoch 1"):
        _fit(model, _problem(), LoopSettings(3, 4))


def test_small_cpu_steps_train_on_one_thread():
    assert choose_threads(nn.Linear(3, 2), torch.device("cpu"), "auto", rows_per_step=4) == 1
    assert torch.get_num_threads() == 1
    assert choose_threads(nn.Linear(784, 512), torch.device("cpu"), "auto", rows_per_step=32) == DEFAULT_THREADS
    assert choose_threads(nn.Linear(3, 2), torch.device("cpu"), 2, rows_per_step=4) == 2
