"""For tabular datasets: seeded train/validation/test splits, feature standardization, and the four
options every such dataset takes (``test_size``, ``val_size``, ``standardize``, ``stratify``).

The statistics are computed on the training split only and travel with the data as a
:class:`Standardize` module, which becomes the model's first layer: a deployed model takes raw
features, and no statistic of the test split leaks into training.

This module holds what a dataset needs to register (the options and their check) and imports no
torch; the splitting itself, :func:`split_tabular`, and :class:`Standardize` are in
:mod:`pipeline_core.data.tabular_split`, imported when a dataset loads.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from pydantic import Field

from pipeline_core.components.options import option_hints
from pipeline_core.data.spec import DatasetContext

if TYPE_CHECKING:
    from pipeline_core.data.loaded import LoadedData

TestFraction = Annotated[float, Field(gt=0, lt=1)]
ValFraction = Annotated[float, Field(ge=0, lt=1)]
Loader = TypeVar("Loader", bound=Callable[..., "LoadedData"])


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
        def flowers(context: DatasetContext, *, split: SplitOptions) -> LoadedData:
            return split_tabular(x, y, split, task="multiclass", seed=context.seed)
    """
    defaults = SplitOptions(test_size, 0.0, standardize, stratify)

    def decorate(loader: Loader) -> Loader:
        signature = inspect.signature(loader)
        if "split" not in signature.parameters:
            raise TypeError(f"{loader.__qualname__}: @split_options needs a keyword-only parameter 'split: SplitOptions'")
        own_options = [p.name for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY and p.name != "split"]
        hints = option_hints(loader, own_options)
        added = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=getattr(defaults, name), annotation=_ANNOTATIONS[name])
            for name in _ANNOTATIONS
        ]

        @functools.wraps(loader)
        def with_split(context: DatasetContext, /, **options: Any) -> LoadedData:
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
