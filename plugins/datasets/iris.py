"""The Iris dataset (scikit-learn's copy: 150 flowers, 4 measurements, 3 species)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from pipeline_core import DataBundle, DatasetContext, Register, hookimpl
from pipeline_core_plugins.datasets.tabular import check_fractions, split_tabular

Fraction = Annotated[float, Field(gt=0, lt=1)]


def iris(
    context: DatasetContext,
    *,
    test_size: Fraction = 0.25,
    val_size: Annotated[float, Field(ge=0, lt=1)] = 0.0,
    standardize: bool = True,
    stratify: bool = True,
) -> DataBundle:
    """Iris flowers: 4 features, 3 classes, split with the run's seed."""
    from sklearn.datasets import load_iris  # imported when used: keeps `pipeline --help` fast

    raw = load_iris()
    return split_tabular(
        raw.data,
        raw.target,
        task="multiclass",
        seed=context.seed,
        test_size=test_size,
        val_size=val_size,
        standardize=standardize,
        stratify=stratify,
        classes=tuple(str(name) for name in raw.target_names),
        feature_names=tuple(str(name) for name in raw.feature_names),
        description="Iris (Fisher, 1936) from scikit-learn",
    )


@hookimpl
def register_datasets(register: Register) -> None:
    register("iris", iris, check=check_fractions)
