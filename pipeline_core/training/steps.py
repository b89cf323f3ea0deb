"""How a batch's loss becomes an update: loss scaling (fp16), gradient clipping, the optimizer step,
and the learning-rate schedule, after every optimizer step or every epoch."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from pipeline_core.config.train_section import TrainSection
from pipeline_core.training.schedule import LRSchedule, monitored

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


class OptimizerSteps:
    """The optimizer with what surrounds each of its steps; ``count`` is the steps taken."""

    def __init__(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, schedule: LRSchedule | None, settings: TrainSection, device: torch.device
    ) -> None:
        self.model, self.optimizer, self.schedule = model, optimizer, schedule
        self.clip_grad_norm = settings.clip_grad_norm
        self.scaler = torch.amp.GradScaler(device.type) if settings.precision == "fp16" else None
        dtype = AUTOCAST.get(settings.precision)
        self.autocast: Callable[[], Any] = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext
        self.count = 0

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def step(self) -> None:
        if self.clip_grad_norm is not None:
            if self.scaler:
                self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.count += 1
        if self.schedule and self.schedule.interval == "step":
            self.schedule.scheduler.step()

    def end_epoch(self, row: dict[str, float]) -> None:
        """An epoch-interval schedule steps once per epoch (a plateau schedule on its monitored column)."""
        if self.schedule and self.schedule.interval == "epoch":
            if self.schedule.monitor:
                self.schedule.scheduler.step(monitored(row, self.schedule.monitor, "scheduler.monitor"))
            else:
                self.schedule.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.scheduler.state_dict() if self.schedule else None,
            "scaler": self.scaler.state_dict() if self.scaler else None,
        }

    def load_state_dict(self, payload: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(payload["optimizer"])
        if self.schedule and payload["scheduler"] is not None:
            self.schedule.scheduler.load_state_dict(payload["scheduler"])
        if self.scaler and payload["scaler"] is not None:
            self.scaler.load_state_dict(payload["scaler"])
