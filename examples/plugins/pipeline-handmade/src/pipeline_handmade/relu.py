"""The tutorials' hand-written ReLU as a custom autograd Function, in a model that still exports."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from pipeline_core import DataSpec


class HandReLU(torch.autograd.Function):
    """ReLU with its own backward: the gradient passes where the input was positive."""

    @staticmethod
    def forward(ctx, inputs: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(inputs)
        return inputs.clamp(min=0)  # tensor operations only: torch.export traces straight through

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (inputs,) = ctx.saved_tensors
        grad = grad_output.clone()
        grad[inputs < 0] = 0
        return grad

    @staticmethod
    def symbolic(graph, inputs):  # the TorchScript-based ONNX exporter emits this operator
        return graph.op("Relu", inputs)


def hand_relu(inputs: torch.Tensor) -> torch.Tensor:
    """``HandReLU`` when training; the same computation as plain code when TorchScript compiles or
    traces the model (TorchScript cannot hold a Python autograd Function)."""
    if torch.jit.is_scripting() or torch.jit.is_tracing():
        return inputs.clamp(min=0)
    return HandReLU.apply(inputs)


class HandReLUModule(nn.Module):
    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return hand_relu(inputs)


def handmade_mlp(spec: DataSpec, *, hidden_sizes: tuple[Annotated[int, Field(ge=1)], ...] = (16, 16)) -> nn.Module:
    """An MLP whose activations are ``HandReLU``."""
    layers: list[nn.Module] = []
    width = spec.input_shape[0]
    for size in hidden_sizes:
        layers += [nn.Linear(width, size), HandReLUModule()]
        width = size
    layers.append(nn.Linear(width, spec.num_outputs))
    return nn.Sequential(*layers)
