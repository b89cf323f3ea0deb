"""scikit-learn's handwritten digits: 1,797 real 8×8 images (pixel values 0–16), 10 classes.

They ship with scikit-learn, so this is the real-handwriting workload that runs anywhere offline.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from pipeline_core import DataBundle, DatasetContext, Register, hookimpl
from pipeline_core_plugins.datasets.tabular import check_fractions, split_tabular


def digits(
    context: DatasetContext,
    *,
    test_size: Annotated[float, Field(gt=0, lt=1)] = 0.2,
    val_size: Annotated[float, Field(ge=0, lt=1)] = 0.0,
    standardize: bool = True,
    stratify: bool = True,
) -> DataBundle:
    """8×8 handwritten digits as 64 pixel features."""
    from sklearn.datasets import load_digits

    raw = load_digits()
    return split_tabular(
        raw.data, raw.target, task="multiclass", seed=context.seed, test_size=test_size, val_size=val_size,
        standardize=standardize, stratify=stratify, classes=tuple(str(c) for c in raw.target_names),
        feature_names=tuple(raw.feature_names), description="scikit-learn digits (UCI ML hand-written digits, 8×8)",
    )


@hookimpl
def register_datasets(register: Register) -> None:
    register("digits", digits, check=check_fractions)
