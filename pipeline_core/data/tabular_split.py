"""Tabular arrays into a :class:`~pipeline_core.LoadedData`: seeded splits and feature
standardization, with torch; the options a tabular dataset registers are in :mod:`pipeline_core.data.tabular`."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pipeline_core.data.loaded import DataSpec, LoadedData, Split, Task
from pipeline_core.data.tabular import SplitOptions


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
    split: SplitOptions,
    *,
    task: Task,
    seed: int,
    classes: tuple[str, ...] = (),
    feature_names: tuple[str, ...] = (),
    description: str = "",
) -> LoadedData:
    """Loaded data of features ``x`` (rows × features) and targets ``y`` (class indices, or values) with
    ``train``/``test`` (and ``validation`` when ``split.val_size`` > 0) splits drawn with ``seed``;
    targets take the task's shape (see :class:`~pipeline_core.DataSpec`). Classes without names are
    named by their index."""
    from sklearn.model_selection import train_test_split  # imported when used: keeps the CLI fast

    x = np.asarray(x, dtype=np.float32)
    if task == "multiclass" and not classes:
        classes = tuple(str(index) for index in range(int(np.max(y)) + 1))
    by_class = split.stratify and task != "regression"
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=split.test_size, random_state=seed, stratify=y if by_class else None
    )
    splits = {"test": (x_test, y_test)}
    if split.val_size > 0:
        fraction = split.val_size / (1.0 - split.test_size)
        x_rest, x_val, y_rest, y_val = train_test_split(
            x_rest, y_rest, test_size=fraction, random_state=seed + 1, stratify=y_rest if by_class else None
        )
        splits["validation"] = (x_val, y_val)
    splits["train"] = (x_rest, y_rest)
    tensors = {name: Split(torch.from_numpy(xs), _targets(ys, task)) for name, (xs, ys) in splits.items()}

    preprocess: nn.Module = nn.Identity()
    if split.standardize:
        train_inputs = tensors["train"].inputs
        std = train_inputs.std(dim=0)
        preprocess = Standardize(train_inputs.mean(dim=0), torch.where(std > 0, std, torch.ones_like(std)))
    num_outputs = len(classes) if task == "multiclass" else (1 if task == "binary" else int(tensors["train"].targets.shape[1]))
    spec = DataSpec(task=task, input_shape=(x.shape[1],), num_outputs=num_outputs, classes=classes, feature_names=feature_names)
    return LoadedData(spec, tensors, preprocess, description)
