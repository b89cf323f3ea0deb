"""Two concentric circles (scikit-learn's make_circles): a binary task a linear model cannot solve."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field
from sklearn.datasets import make_circles
from sklearn.model_selection import train_test_split

from pipeline_core import DataBundle, DatasetContext, DataSpec, Split


def circles(
    context: DatasetContext,
    *,
    samples: Annotated[int, Field(ge=10)] = 600,
    noise: Annotated[float, Field(ge=0)] = 0.08,
    factor: Annotated[float, Field(gt=0, lt=1)] = 0.5,
    test_size: Annotated[float, Field(gt=0, lt=1)] = 0.25,
) -> DataBundle:
    """Points on an inner and an outer circle; the split follows the run's seed."""
    x, y = make_circles(n_samples=samples, noise=noise, factor=factor, random_state=context.seed)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_size, random_state=context.seed, stratify=y)

    def split(inputs, targets) -> Split:  # binary targets are float32 of shape (N, 1)
        return Split(torch.as_tensor(inputs, dtype=torch.float32), torch.as_tensor(targets, dtype=torch.float32).view(-1, 1))

    spec = DataSpec(task="binary", input_shape=(2,), num_outputs=1, classes=("outer", "inner"), feature_names=("x", "y"))
    return DataBundle(spec, {"train": split(x_train, y_train), "test": split(x_test, y_test)}, description=f"make_circles({samples})")
