"""The tutorial's Iris MLP trained by PyTorch Lightning's Trainer: same model, data, DataLoader
(batch 4, shuffled), SGD lr 0.001 and 200 epochs as ``tutorial_iris.py``. Two configurations:
``minimal`` turns off logging, checkpointing, the progress bar and the model summary so only the loop
is measured; ``defaults`` is ``Trainer(max_epochs=...)`` as a user writes it (checkpoint every epoch,
progress bar, summary) with its output sent to a temporary folder.

Lightning is a benchmark-only dependency: ``pip install -e '.[benchmark]'``."""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
import warnings

import lightning as L
import torch
import torch.nn as nn
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset
from tutorial_iris import Net


class IrisModule(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = Net()
        self.criterion = nn.CrossEntropyLoss()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return self.criterion(self.net(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.001)


def run(seed: int, epochs: int = 200, minimal: bool = True) -> tuple[float, float]:
    """Test accuracy (eval mode) and seconds spent in ``Trainer.fit``."""
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    torch.manual_seed(seed)
    dataset = load_iris()
    x_train, x_test, y_train, y_test = train_test_split(dataset.data, dataset.target, test_size=0.25, random_state=seed)
    loader = DataLoader(
        TensorDataset(torch.from_numpy(x_train).float(), torch.from_numpy(y_train).long()), batch_size=4, shuffle=True
    )
    module = IrisModule()
    quiet = contextlib.ExitStack()
    quiet.enter_context(contextlib.redirect_stdout(io.StringIO()))
    quiet.enter_context(contextlib.redirect_stderr(io.StringIO()))
    with tempfile.TemporaryDirectory() as root, warnings.catch_warnings(), quiet:
        warnings.simplefilter("ignore")
        if minimal:
            trainer = L.Trainer(
                max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                enable_progress_bar=False, enable_model_summary=False, default_root_dir=root,
            )
        else:
            trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, default_root_dir=root)
        started = time.perf_counter()
        trainer.fit(module, loader)
        seconds = time.perf_counter() - started
    module.eval()
    with torch.no_grad():
        predicted = module.net(torch.from_numpy(x_test).float()).argmax(dim=1)
    return float((predicted == torch.from_numpy(y_test)).float().mean()), seconds
