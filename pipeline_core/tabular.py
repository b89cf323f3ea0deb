"""Shared by the tabular datasets: seeded train/validation/test splits and feature standardization.

The statistics are computed on the training split only and travel with the data as a
:class:`Standardize` module, which becomes the model's first layer: a deployed model takes raw
features, and no statistic of the test split leaks into training.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pipeline_core import DataBundle, DataSpec, Split, Task


class Standardize(nn.Module):
    """``(x - mean) / std`` with the statistics stored as buffers (saved and exported with the model)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clone())

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return (inputs - self.mean) / self.std


def _targets(y: np.ndarray, task: Task) -> torch.Tensor:
    if task == "multiclass":
        return torch.as_tensor(y, dtype=torch.int64)
    values = torch.as_tensor(y, dtype=torch.float32)
    return values.view(-1, 1) if values.ndim == 1 else values


def split_tabular(
    x: np.ndarray,
    y: np.ndarray,
    *,
    task: Task,
    seed: int,
    test_size: float,
    val_size: float,
    standardize: bool,
    stratify: bool,
    classes: tuple[str, ...] = (),
    feature_names: tuple[str, ...] = (),
    description: str = "",
) -> DataBundle:
    """A bundle with ``train``/``test`` (and ``validation`` when ``val_size`` > 0) split with ``seed``.

    ``val_size`` is a fraction of the whole dataset, carved out of what remains after the test split.
    """
    from sklearn.model_selection import train_test_split  # imported when used: keeps the CLI fast

    x = np.asarray(x, dtype=np.float32)
    by_class = stratify and task != "regression"
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y if by_class else None
    )
    splits = {"test": (x_test, y_test)}
    if val_size > 0:
        fraction = val_size / (1.0 - test_size)
        x_rest, x_val, y_rest, y_val = train_test_split(
            x_rest, y_rest, test_size=fraction, random_state=seed + 1, stratify=y_rest if by_class else None
        )
        splits["validation"] = (x_val, y_val)
    splits["train"] = (x_rest, y_rest)
    tensors = {name: Split(torch.from_numpy(xs), _targets(ys, task)) for name, (xs, ys) in splits.items()}

    preprocess: nn.Module = nn.Identity()
    if standardize:
        train_inputs = tensors["train"].inputs
        std = train_inputs.std(dim=0)
        preprocess = Standardize(train_inputs.mean(dim=0), torch.where(std > 0, std, torch.ones_like(std)))
    num_outputs = len(classes) if task == "multiclass" else (1 if task == "binary" else int(tensors["train"].targets.shape[1]))
    spec = DataSpec(
        task=task,
        input_shape=(x.shape[1],),
        num_outputs=num_outputs,
        classes=classes,
        feature_names=feature_names,
    )
    return DataBundle(spec, tensors, preprocess, description)


def check_fractions(*, test_size: float, val_size: float, **_: object) -> None:
    """Shared ``check`` for the split options: the test and validation fractions must leave training data."""
    if test_size + val_size >= 1.0:
        raise ValueError(f"test_size + val_size is {test_size + val_size:g}; it must leave data to train on (< 1)")
