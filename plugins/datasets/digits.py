"""scikit-learn's handwritten digits: 1,797 real 8×8 images (pixel values 0–16), 10 classes.

They ship with scikit-learn, so this is the real-handwriting workload that runs anywhere offline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline_core import DatasetContext, DataSpec, Register, SplitOptions, hookimpl, split_options

if TYPE_CHECKING:
    from pipeline_core import LoadedData

#: what the loaded data's spec is, known without importing scikit-learn (``pipeline validate`` uses it)
SPEC = DataSpec(
    task="multiclass", input_shape=(64,), num_outputs=10, classes=tuple(str(digit) for digit in range(10)),
    feature_names=tuple(f"pixel_{row}_{column}" for row in range(8) for column in range(8)),
)


@split_options()
def digits(context: DatasetContext, *, split: SplitOptions) -> LoadedData:
    """8×8 handwritten digits as 64 pixel features."""
    from sklearn.datasets import load_digits

    from pipeline_core import split_tabular

    raw = load_digits()
    return split_tabular(
        raw.data, raw.target, split, task="multiclass", seed=context.seed, classes=tuple(str(c) for c in raw.target_names),
        feature_names=tuple(raw.feature_names), description="scikit-learn digits (UCI ML hand-written digits, 8×8)",
    )


def digits_spec(context: DatasetContext, **options: object) -> DataSpec:
    return SPEC


@hookimpl
def register_datasets(register: Register) -> None:
    register("digits", digits, spec=digits_spec)
