"""Focal loss (Lin et al.) on one logit per row: down-weights the rows the model already gets right."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field
from torch import nn


class FocalLoss(nn.Module):
    def __init__(self, gamma: float, alpha: float) -> None:
        super().__init__()
        self.gamma, self.alpha = gamma, alpha

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        bce = nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        p_true = torch.exp(-bce)
        weight = self.alpha * targets + (1 - self.alpha) * (1 - targets)
        return (weight * (1 - p_true) ** self.gamma * bce).mean()


def focal(*, gamma: Annotated[float, Field(ge=0)] = 2.0, alpha: Annotated[float, Field(gt=0, lt=1)] = 0.5) -> nn.Module:
    """Focal loss for binary tasks; ``gamma = 0`` and ``alpha = 0.5`` is half the binary cross-entropy."""
    return FocalLoss(gamma, alpha)
