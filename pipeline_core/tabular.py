"""For tabular datasets: seeded train/validation/test splits, feature standardization, and the four
options every such dataset takes (``test_size``, ``val_size``, ``standardize``, ``stratify``).

The statistics are computed on the training split only and travel with the data as a
:class:`Standardize` module, which becomes the model's first layer: a deployed model takes raw
features, and no statistic of the test split leaks into training.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Annotated, Any, TypeVar

import numpy as np
import torch
from pydantic import Field
from torch import nn

from pipeline_core.data import DataBundle, DatasetContext, DataSpec, Split, Task

TestFraction = Annotated[float, Field(gt=0, lt=1)]
ValFraction = Annotated[float, Field(ge=0, lt=1)]
Loader = TypeVar("Loader", bound=Callable[..., DataBundle])


@dataclass(frozen=True)
class SplitOptions:
    """How a tabular dataset is split and scaled. ``val_size`` is a fraction of the whole dataset,
    carved out of what remains after the test split; classes keep their proportions in every split
    with ``stratify`` (classifiers only); ``standardize`` scales features with train-split statistics."""

    test_size: float = 0.2
    val_size: float = 0.0
    standardize: bool = True
    stratify: bool = True


_ANNOTATIONS = {"test_size": TestFraction, "val_size": ValFraction, "standardize": bool, "stratify": bool}


def split_options(*, test_size: float = 0.2, standardize: bool = True, stratify: bool = True) -> Callable[[Loader], Loader]:
    """Give a dataset loader the four split options, with these defaults, after its own options.

    The loader declares a keyword-only ``split: SplitOptions`` and receives them in it; the pipeline
    file sets ``test_size``, ``val_size``, ``standardize`` and ``stratify`` in its ``[data]`` table,
    validated like any option, and :func:`check_fractions` (the loader's ``pipeline_check``, which
    ``register`` uses unless given another ``check``) refuses fractions that leave nothing to train on::

        @split_options(test_size=0.25)
        def flowers(context: DatasetContext, *, split: SplitOptions) -> DataBundle:
            return split_tabular(x, y, split, task="multiclass", seed=context.seed)
    """
    defaults = SplitOptions(test_size, 0.0, standardize, stratify)

    def decorate(loader: Loader) -> Loader:
        signature = inspect.signature(loader)
        if "split" not in signature.parameters:
            raise TypeError(f"{loader.__qualname__}: @split_options needs a keyword-only parameter 'split: SplitOptions'")
        hints = {name: hint for name, hint in typing.get_type_hints(loader, include_extras=True).items() if name != "split"}
        added = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=getattr(defaults, name), annotation=_ANNOTATIONS[name])
            for name in _ANNOTATIONS
        ]

        @functools.wraps(loader)
        def with_split(context: DatasetContext, /, **options: Any) -> DataBundle:
            split = SplitOptions(**{f.name: options.pop(f.name, getattr(defaults, f.name)) for f in fields(SplitOptions)})
            return loader(context, **options, split=split)

        own = [parameter for name, parameter in signature.parameters.items() if name != "split"]
        with_split.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
        with_split.__annotations__ = {**hints, **_ANNOTATIONS}
        with_split.pipeline_check = check_fractions  # type: ignore[attr-defined]
        return typing.cast(Loader, with_split)

    return decorate


def check_fractions(*, test_size: float, val_size: float, **_: object) -> None:
    """The ``check`` of a loader with :func:`split_options`: the test and validation fractions must
    leave data to train on."""
    if test_size + val_size >= 1.0:
        raise ValueError(f"test_size + val_size is {test_size + val_size:g}; it must leave data to train on (< 1)")


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
) -> DataBundle:
    """A bundle of features ``x`` (rows × features) and targets ``y`` (class indices, or values) with
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
    return DataBundle(spec, tensors, preprocess, description)
