"""Loss functions. Targets arrive in the shape the task implies (see :class:`pipeline_core.DataSpec`)."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from pipeline_core import Register, hookimpl

Reduction = Literal["mean", "sum"]


def cross_entropy(
    *, label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0, reduction: Reduction = "mean"
) -> nn.Module:
    """Softmax cross-entropy on logits, for multi-class targets."""
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing, reduction=reduction)


def nll(*, reduction: Reduction = "mean") -> nn.Module:
    """Negative log-likelihood on log-probabilities (pair with an MLP ``output = "log_softmax"``)."""
    return nn.NLLLoss(reduction=reduction)


def bce_with_logits(
    *, pos_weight: Annotated[float, Field(gt=0)] | None = None, reduction: Reduction = "mean"
) -> nn.Module:
    """Binary cross-entropy on one logit per row."""
    weight = None if pos_weight is None else torch.tensor([pos_weight])
    return nn.BCEWithLogitsLoss(pos_weight=weight, reduction=reduction)


def mse(*, reduction: Reduction = "mean") -> nn.Module:
    """Mean (or summed) squared error, for regression."""
    return nn.MSELoss(reduction=reduction)


@hookimpl
def register_losses(register: Register) -> None:
    register("cross_entropy", cross_entropy)
    register("nll", nll)
    register("bce_with_logits", bce_with_logits)
    register("mse", mse)
