"""Two concentric circles (scikit-learn's make_circles): a binary task a linear model cannot solve."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from sklearn.datasets import make_circles

from pipeline_core import DataBundle, DatasetContext, SplitOptions, split_options, split_tabular


@split_options(test_size=0.25, standardize=False)
def circles(
    context: DatasetContext,
    *,
    samples: Annotated[int, Field(ge=10)] = 600,
    noise: Annotated[float, Field(ge=0)] = 0.08,
    factor: Annotated[float, Field(gt=0, lt=1)] = 0.5,
    split: SplitOptions,
) -> DataBundle:
    """Points on an inner and an outer circle; the split follows the run's seed (``test_size``,
    ``val_size``, ``standardize`` and ``stratify`` come from ``split_options``)."""
    x, y = make_circles(n_samples=samples, noise=noise, factor=factor, random_state=context.seed)
    return split_tabular(  # binary targets become float32 of shape (N, 1)
        x, y, split, task="binary", seed=context.seed, classes=("outer", "inner"), feature_names=("x", "y"),
        description=f"make_circles({samples})",
    )
