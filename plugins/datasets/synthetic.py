"""The tutorials' generated datasets: scikit-learn's two moons, CS231n's spirals, and the random
regression problem of the two-layer-net tutorial. Each is generated from its own ``data_seed`` (the
tutorials' value by default) so the points are the tutorial's, while the split follows the run's seed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from pipeline_core import DatasetContext, DataSpec, Register, SplitOptions, hookimpl, split_options

if TYPE_CHECKING:
    import numpy as np

    from pipeline_core import LoadedData

Count = Annotated[int, Field(ge=1)]


@split_options(standardize=False, stratify=False)
def moons(
    context: DatasetContext,
    *,
    samples: Annotated[int, Field(ge=4)] = 1000,
    noise: Annotated[float, Field(ge=0)] = 0.03,
    data_seed: int = 42,
    split: SplitOptions,
) -> LoadedData:
    """Two interleaving half circles (scikit-learn's make_moons): a binary task with 2 features."""
    from sklearn.datasets import make_moons

    from pipeline_core import split_tabular

    x, y = make_moons(n_samples=samples, noise=noise, random_state=data_seed)
    return split_tabular(
        x, y, split, task="binary", seed=context.seed, classes=("0", "1"), feature_names=("x1", "x2"),
        description=f"make_moons(n_samples={samples}, noise={noise}, random_state={data_seed})",
    )


def spiral_points(per_class: int, classes: int, noise: float, data_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """CS231n's spirals: ``classes`` arms of ``per_class`` points, angle noise ``noise``."""
    import numpy as np

    generator = np.random.RandomState(data_seed)
    x = np.zeros((per_class * classes, 2))
    y = np.zeros(per_class * classes, dtype=np.int64)
    for arm in range(classes):
        rows = range(per_class * arm, per_class * (arm + 1))
        radius = np.linspace(0.0, 1, per_class)
        theta = np.linspace(arm * 4, (arm + 1) * 4, per_class) + generator.randn(per_class) * noise
        x[rows] = np.c_[radius * np.sin(theta), radius * np.cos(theta)]
        y[rows] = arm
    return x, y


@split_options(standardize=False, stratify=False)
def spirals(
    context: DatasetContext,
    *,
    per_class: Annotated[int, Field(ge=2)] = 100,
    classes: Annotated[int, Field(ge=2)] = 3,
    noise: Annotated[float, Field(ge=0)] = 0.2,
    data_seed: int = 42,
    split: SplitOptions,
) -> LoadedData:
    """CS231n's spiral arms: a multi-class task with 2 features."""
    from pipeline_core import split_tabular
    x, y = spiral_points(per_class, classes, noise, data_seed)
    return split_tabular(
        x, y, split, task="multiclass", seed=context.seed, classes=tuple(f"arm{i}" for i in range(classes)),
        feature_names=("x1", "x2"), description=f"CS231n spirals: {classes} arms × {per_class} points, noise {noise}",
    )


def random_regression(
    context: DatasetContext,
    *,
    rows: Count = 64,
    in_features: Count = 1000,
    out_features: Count = 10,
    test_rows: Count = 16,
    data_seed: int = 0,
) -> LoadedData:
    """Standard-normal inputs and targets with no relation between them (the two-layer-net tutorial:
    x is 64×1000, y is 64×10). Fitting it is memorization: only the training loss is meaningful, and
    the test split, drawn the same way, is there because every bundle is checked on held-out rows."""


    import torch

    from pipeline_core import LoadedData, Split
    generator = torch.Generator().manual_seed(data_seed)

    def draw(count: int) -> Split:
        return Split(torch.randn(count, in_features, generator=generator), torch.randn(count, out_features, generator=generator))

    spec = DataSpec(task="regression", input_shape=(in_features,), num_outputs=out_features)
    description = f"random regression: x {rows}×{in_features}, y {rows}×{out_features}, standard normal"
    return LoadedData(spec, {"train": draw(rows), "test": draw(test_rows)}, description=description)


def moons_spec(context: DatasetContext, **options: object) -> DataSpec:
    return DataSpec(task="binary", input_shape=(2,), num_outputs=1, classes=("0", "1"), feature_names=("x1", "x2"))


def spirals_spec(context: DatasetContext, *, classes: int, **options: object) -> DataSpec:
    return DataSpec(task="multiclass", input_shape=(2,), num_outputs=classes, classes=tuple(f"arm{i}" for i in range(classes)), feature_names=("x1", "x2"))


def random_regression_spec(context: DatasetContext, *, in_features: int, out_features: int, **options: object) -> DataSpec:
    return DataSpec(task="regression", input_shape=(in_features,), num_outputs=out_features)


@hookimpl
def register_datasets(register: Register) -> None:
    register("moons", moons, spec=moons_spec)
    register("spirals", spirals, spec=spirals_spec)
    register("random_regression", random_regression, spec=random_regression_spec)
