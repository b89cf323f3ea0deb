"""scikit-learn's handwritten digits: 1,797 real 8×8 images (pixel values 0–16), 10 classes.

They ship with scikit-learn, so this is the real-handwriting workload that runs anywhere offline.
"""

from __future__ import annotations

from pipeline_core import DataBundle, DatasetContext, Register, SplitOptions, hookimpl, split_options, split_tabular


@split_options()
def digits(context: DatasetContext, *, split: SplitOptions) -> DataBundle:
    """8×8 handwritten digits as 64 pixel features."""
    from sklearn.datasets import load_digits

    raw = load_digits()
    return split_tabular(
        raw.data, raw.target, split, task="multiclass", seed=context.seed, classes=tuple(str(c) for c in raw.target_names),
        feature_names=tuple(raw.feature_names), description="scikit-learn digits (UCI ML hand-written digits, 8×8)",
    )


@hookimpl
def register_datasets(register: Register) -> None:
    register("digits", digits)
