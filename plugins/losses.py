"""Loss functions. Targets arrive in the shape the task implies (see :class:`pipeline_core.DataSpec`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from pipeline_core import Register, hookimpl

if TYPE_CHECKING:  # torch is imported where a component is built, not to register it
    from torch import nn

Reduction = Literal["mean", "sum"]


def cross_entropy(
    *, label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0, reduction: Reduction = "mean"
) -> nn.Module:
    """Softmax cross-entropy on logits, for multi-class targets."""
    from torch import nn

    return nn.CrossEntropyLoss(label_smoothing=label_smoothing, reduction=reduction)


def nll(*, reduction: Reduction = "mean") -> nn.Module:
    """Negative log-likelihood on log-probabilities (pair with an MLP ``output = "log_softmax"``)."""
    from torch import nn

    return nn.NLLLoss(reduction=reduction)


def bce_with_logits(
    *, pos_weight: Annotated[float, Field(gt=0)] | None = None, reduction: Reduction = "mean"
) -> nn.Module:
    """Binary cross-entropy on one logit per row."""
    import torch
    from torch import nn

    weight = None if pos_weight is None else torch.tensor([pos_weight])
    return nn.BCEWithLogitsLoss(pos_weight=weight, reduction=reduction)


def mse(*, reduction: Reduction = "mean") -> nn.Module:
    """Mean (or summed) squared error, for regression."""
    from torch import nn

    return nn.MSELoss(reduction=reduction)


@hookimpl
def register_losses(register: Register) -> None:
    register("cross_entropy", cross_entropy, default_for=("multiclass",))
    register("nll", nll)
    register("bce_with_logits", bce_with_logits, default_for=("binary",))
    register("mse", mse, default_for=("regression",))
