"""Early stopping: watch a history column, stop when it stops improving, put the best weights back."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from pipeline_core.config.train_section import EarlyStoppingSection
from pipeline_core.training.schedule import monitored


class EarlyStopping:
    """Follows ``rule`` (``[train.early_stopping]``) epoch by epoch; without a rule it never stops."""

    def __init__(self, rule: EarlyStoppingSection | None) -> None:
        self.rule = rule
        self.best_value: float | None = None
        self.best_epoch = 0
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.bad_epochs = 0
        self.stopped = False

    def update(self, row: dict[str, float], model: nn.Module) -> None:
        """Take an epoch's history row; keep the model's weights when they are the best so far."""
        if self.rule is None:
            return
        value = monitored(row, self.rule.monitor, "early_stopping.monitor")
        if self.rule.improved(value, self.best_value):
            self.best_value, self.best_epoch, self.bad_epochs = value, int(row["epoch"]), 0
            if self.rule.restore_best:
                self.best_weights = copy.deepcopy(model.state_dict())
        else:
            self.bad_epochs += 1
            self.stopped = self.bad_epochs >= self.rule.patience

    def restore(self, model: nn.Module) -> None:
        """After an early stop, the best epoch's weights (``restore_best``)."""
        if self.stopped and self.rule is not None and self.rule.restore_best and self.best_weights:
            model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_value": self.best_value, "best_epoch": self.best_epoch, "best_weights": self.best_weights,
            "bad_epochs": self.bad_epochs, "stopped_early": self.stopped,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_value, self.best_epoch, self.best_weights = state["best_value"], state["best_epoch"], state["best_weights"]
        self.bad_epochs, self.stopped = state["bad_epochs"], state["stopped_early"]
