"""A multi-layer perceptron whose input and output sizes come from the data.

Covers every MLP of the tutorials: the Iris net (BatchNorm after some hidden layers), the MNIST nets
(sigmoid or ReLU, a log-softmax output for NLL loss) and the small 2-D classifiers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from pipeline_core import DataSpec, Register, hookimpl
from pipeline_core_plugins.models.choices import Activation

if TYPE_CHECKING:
    from torch import nn


def mlp(
    spec: DataSpec,
    *,
    hidden_sizes: list[Annotated[int, Field(ge=1)]],
    activation: Activation = "relu",
    batch_norm: bool | list[bool] = False,
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0,
    output: Literal["logits", "log_softmax"] = "logits",
) -> nn.Module:
    """Linear layers with an activation (and optional BatchNorm, dropout) between them.

    ``batch_norm`` is one flag for every hidden layer, or one per hidden layer (the Iris tutorial
    normalizes after the first three of four). ``output = "log_softmax"`` pairs with the ``nll`` loss.
    """
    from torch import nn

    from pipeline_core_plugins.models.layers import ACTIVATIONS

    norms = batch_norm if isinstance(batch_norm, list) else [batch_norm] * len(hidden_sizes)
    layers: list[nn.Module] = [nn.Flatten()] if len(spec.input_shape) > 1 else []
    width = math.prod(spec.input_shape)
    for size, norm in zip(hidden_sizes, norms, strict=True):
        layers.append(nn.Linear(width, size))
        if norm:
            layers.append(nn.BatchNorm1d(size))
        layers.append(ACTIVATIONS[activation]())
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, spec.num_outputs))
    if output == "log_softmax":
        layers.append(nn.LogSoftmax(dim=1))
    return nn.Sequential(*layers)


def check_mlp(*, hidden_sizes: list[int], batch_norm: bool | list[bool], **_: object) -> None:
    if isinstance(batch_norm, list) and len(batch_norm) != len(hidden_sizes):
        raise ValueError(
            f"batch_norm has {len(batch_norm)} flags but hidden_sizes has {len(hidden_sizes)} layers; "
            "give one flag per hidden layer, or a single true/false"
        )


@hookimpl
def register_models(register: Register) -> None:
    register("mlp", mlp, check=check_mlp)
