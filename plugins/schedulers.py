"""Learning-rate schedulers: torch's own, with their options typed and their stepping declared.

``step`` and ``cosine`` change the rate once per epoch, ``one_cycle`` after every optimizer step, and
``reduce_on_plateau`` once per epoch from a history column it watches (``val_loss`` by default).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from pipeline_core import LRSchedule, Register, TrainingPlan, hookimpl

if TYPE_CHECKING:  # torch is imported where a component is built, not to register it
    import torch

Positive = Annotated[float, Field(gt=0)]


def step(optimizer: torch.optim.Optimizer, plan: TrainingPlan, *, step_size: Annotated[int, Field(ge=1)], gamma: Annotated[float, Field(gt=0, le=1)] = 0.1) -> LRSchedule:
    """Multiply the rate by ``gamma`` every ``step_size`` epochs."""
    import torch

    return LRSchedule(torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma))


def cosine(optimizer: torch.optim.Optimizer, plan: TrainingPlan, *, t_max: Annotated[int, Field(ge=1)] | None = None, eta_min: Annotated[float, Field(ge=0)] = 0.0) -> LRSchedule:
    """Cosine annealing from the initial rate to ``eta_min`` over ``t_max`` epochs (default: all of them)."""
    import torch

    return LRSchedule(torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=t_max or plan.epochs, eta_min=eta_min))


def reduce_on_plateau(
    optimizer: torch.optim.Optimizer,
    plan: TrainingPlan,
    *,
    monitor: str = "val_loss",
    mode: Literal["min", "max"] = "min",
    factor: Annotated[float, Field(gt=0, lt=1)] = 0.1,
    patience: Annotated[int, Field(ge=0)] = 10,
    min_lr: Annotated[float, Field(ge=0)] = 0.0,
) -> LRSchedule:
    """Multiply the rate by ``factor`` when ``monitor`` stops improving for ``patience`` epochs."""
    import torch

    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=factor, patience=patience, min_lr=min_lr)
    return LRSchedule(scheduler, monitor=monitor)


def one_cycle(
    optimizer: torch.optim.Optimizer,
    plan: TrainingPlan,
    *,
    max_lr: Positive,
    pct_start: Annotated[float, Field(gt=0, lt=1)] = 0.3,
    anneal_strategy: Literal["cos", "linear"] = "cos",
    div_factor: Positive = 25.0,
    final_div_factor: Positive = 1e4,
) -> LRSchedule:
    """The 1cycle policy (Smith & Topin): warm up to ``max_lr``, then anneal, over every optimizer step."""
    import torch

    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lr, total_steps=plan.total_steps, pct_start=pct_start, anneal_strategy=anneal_strategy,
        div_factor=div_factor, final_div_factor=final_div_factor,
    )
    return LRSchedule(scheduler, interval="step")


@hookimpl
def register_schedulers(register: Register) -> None:
    register("step", step)
    register("cosine", cosine)
    register("reduce_on_plateau", reduce_on_plateau)
    register("one_cycle", one_cycle)
