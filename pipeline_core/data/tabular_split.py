"""Tabular arrays into a :class:`~pipeline_core.LoadedData`: seeded splits and feature
standardization (:func:`split_tabular`), or typed raw columns encoded with statistics of the training
split (:func:`split_columns`), with torch; the options a tabular dataset registers are in
:mod:`pipeline_core.data.tabular`."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pipeline_core.data.columns import (
    MAX_CATEGORIES,
    ColumnEncoder,
    ColumnKind,
    Fill,
    RawColumns,
    fit_column,
    infer_kind,
    parse_column,
)
from pipeline_core.data.loaded import DataSpec, LoadedData, Split, Task
from pipeline_core.data.tabular import SplitOptions
from pipeline_core.errors import ConfigError


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


def _split_rows(rows: int, y: np.ndarray, split: SplitOptions, task: Task, seed: int) -> dict[str, np.ndarray]:
    """The row indices of each split (``test``, optional ``validation``, ``train``), drawn with ``seed``."""
    from sklearn.model_selection import train_test_split  # imported when used: keeps the CLI fast

    by_class = split.stratify and task != "regression"
    rest, test = train_test_split(np.arange(rows), test_size=split.test_size, random_state=seed, stratify=y if by_class else None)
    indices = {"test": test}
    if split.val_size > 0:
        fraction = split.val_size / (1.0 - split.test_size)
        rest, validation = train_test_split(rest, test_size=fraction, random_state=seed + 1, stratify=y[rest] if by_class else None)
        indices["validation"] = validation
    indices["train"] = rest
    return indices


def _num_outputs(task: Task, classes: tuple[str, ...], targets: torch.Tensor) -> int:
    return len(classes) if task == "multiclass" else (1 if task == "binary" else int(targets.shape[1]))


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
    x = np.asarray(x, dtype=np.float32)
    if task == "multiclass" and not classes:
        classes = tuple(str(index) for index in range(int(np.max(y)) + 1))
    indices = _split_rows(len(x), np.asarray(y), split, task, seed)
    tensors = {name: Split(torch.from_numpy(x[rows]), _targets(np.asarray(y)[rows], task)) for name, rows in indices.items()}

    preprocess: nn.Module = nn.Identity()
    if split.standardize:
        train_inputs = tensors["train"].inputs
        std = train_inputs.std(dim=0)
        preprocess = Standardize(train_inputs.mean(dim=0), torch.where(std > 0, std, torch.ones_like(std)))
    spec = DataSpec(task=task, input_shape=(x.shape[1],), num_outputs=_num_outputs(task, classes, tensors["train"].targets),
                    classes=classes, feature_names=feature_names)
    return LoadedData(spec, tensors, preprocess, description)


def split_columns(
    cells: dict[str, list[str]],
    y: np.ndarray,
    split: SplitOptions,
    *,
    task: Task,
    seed: int,
    classes: tuple[str, ...] = (),
    declared: dict[str, ColumnKind] | None = None,
    max_categories: int = MAX_CATEGORIES,
    fill: Fill = "mean",
    missing_indicator: bool = False,
    where: str = "the table",
    description: str = "",
) -> LoadedData:
    """Loaded data of a table's feature columns as text (``cells``: column name → every row's cell,
    in order) and targets ``y``, split as :func:`split_tabular` splits. Each column is typed
    (``declared``, else by the rules of :mod:`pipeline_core.data.columns`) and checked cell by cell,
    errors naming ``where`` (the file), the column and the line; its encoding (fill, standardization
    with ``split.standardize``, one-hot) is fitted on the training split only. The splits hold the
    encoded float matrix; the data carries the encoder and the raw splits (``LoadedData.columns``),
    from which the export puts the encoding inside the shipped model, so it takes the raw columns."""
    declared = declared or {}
    unknown = sorted(set(declared) - set(cells))
    if unknown:
        raise ConfigError(f"[data.columns] names {unknown}, which are not feature columns; the feature columns are {list(cells)}")
    kinds = {name: infer_kind(name, column, declared.get(name), max_categories, where) for name, column in cells.items()}
    raw = {name: parse_column(name, kinds[name], column, where) for name, column in cells.items()}
    y = np.asarray(y)
    if task == "multiclass" and not classes:
        classes = tuple(str(index) for index in range(int(np.max(y)) + 1))
    indices = _split_rows(len(y), y, split, task, seed)
    train = indices["train"]
    encoder = ColumnEncoder(tuple(
        fit_column(name, kind, raw[name][train], fill=fill, missing_indicator=missing_indicator, standardize=split.standardize)
        for name, kind in kinds.items()
    ))
    raw_splits = {name: {column: values[rows] for column, values in raw.items()} for name, rows in indices.items()}
    tensors = {name: Split(torch.from_numpy(encoder.encode(raw_splits[name])), _targets(y[rows], task)) for name, rows in indices.items()}
    spec = DataSpec(task=task, input_shape=(len(encoder.encoded_names),), num_outputs=_num_outputs(task, classes, tensors["train"].targets),
                    classes=classes, feature_names=tuple(encoder.encoded_names))
    return LoadedData(spec, tensors, nn.Identity(), description, columns=RawColumns(encoder, raw_splits))
