"""The Iris dataset (scikit-learn's copy: 150 flowers, 4 measurements, 3 species)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline_core import DatasetContext, DataSpec, Register, SplitOptions, hookimpl, split_options

if TYPE_CHECKING:
    from pipeline_core import LoadedData

#: what the loaded data's spec is, known without importing scikit-learn (``pipeline validate`` uses it)
SPEC = DataSpec(
    task="multiclass", input_shape=(4,), num_outputs=3, classes=("setosa", "versicolor", "virginica"),
    feature_names=("sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"),
)


@split_options(test_size=0.25)
def iris(context: DatasetContext, *, split: SplitOptions) -> LoadedData:
    """Iris flowers: 4 features, 3 classes, split with the run's seed."""
    from sklearn.datasets import load_iris  # imported when used: keeps `pipeline --help` fast

    from pipeline_core import split_tabular

    raw = load_iris()
    return split_tabular(
        raw.data, raw.target, split, task="multiclass", seed=context.seed,
        classes=tuple(str(name) for name in raw.target_names), feature_names=tuple(str(name) for name in raw.feature_names),
        description="Iris (Fisher, 1936) from scikit-learn",
    )


def iris_spec(context: DatasetContext, **options: object) -> DataSpec:
    return SPEC


@hookimpl
def register_datasets(register: Register) -> None:
    register("iris", iris, spec=iris_spec)
