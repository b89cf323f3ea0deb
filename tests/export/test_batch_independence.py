"""Batch independence (issue 28): the check that tells a file whose answer for a row depends on the
rows batched with it (onnxruntime's dynamic quantization) from one that computes each row alone, on
plain NumPy models with known behaviour, and the extreme rows it batches them with."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline_core.engine import Noise, Tolerance, check_batch_independence, extreme_rows

RANGE = {"per": "feature", "min": [4.3, 2.0, 1.0, 0.1], "max": [7.9, 4.4, 6.9, 2.5]}
WEIGHTS = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
ROWS = np.random.default_rng(1).uniform([4.3, 2.0, 1.0, 0.1], [7.9, 4.4, 6.9, 2.5], size=(20, 4)).astype(np.float32)
NOISE = Noise({"logits": np.full(3, 1e-6)}, "test", len(ROWS))


def row_by_row(batch: np.ndarray) -> dict[str, np.ndarray]:
    return {"logits": batch @ WEIGHTS}


def scaled_by_the_batch(batch: np.ndarray) -> dict[str, np.ndarray]:
    """What DynamicQuantizeLinear does: one int8 scale for the whole batch, from its largest magnitude."""
    scale = np.abs(batch).max() / 127
    return {"logits": (np.round(batch / scale) * scale) @ WEIGHTS}


def test_a_model_that_computes_each_row_alone_is_batch_independent():
    extremes = extreme_rows(RANGE, (4,), np.dtype(np.float32))
    found = check_batch_independence(row_by_row, ROWS, extremes, NOISE, Tolerance())
    assert found["batch_independent"] is True and found["error_ratio"] <= 1.0
    assert found["rows"] == 16 and len(found["batches"]) == 2 + len(extremes)


def test_a_model_whose_scale_comes_from_the_batch_is_caught_and_the_report_says_where():
    extremes = extreme_rows(RANGE, (4,), np.dtype(np.float32))
    found = check_batch_independence(scaled_by_the_batch, ROWS, extremes, NOISE, Tolerance())
    assert found["batch_independent"] is False and found["error_ratio"] > 1.0
    assert found["worst"].startswith("'logits' of row ") and "× the export tolerance" in found["worst"]


def test_a_model_that_changes_only_next_to_rows_far_outside_the_training_range_is_caught():
    def saturates_on_huge_batches(batch: np.ndarray) -> dict[str, np.ndarray]:
        return {"logits": batch @ WEIGHTS * (0.5 if np.abs(batch).max() > 1e5 else 1.0)}

    extremes = extreme_rows(RANGE, (4,), np.dtype(np.float32))
    found = check_batch_independence(saturates_on_huge_batches, ROWS, extremes, NOISE, Tolerance())
    assert found["batch_independent"] is False
    assert any(f"with the {name} row" in found["worst"] for name in ("far below", "far above", "huge", "alternating far"))


def test_extreme_rows_reach_far_beyond_the_range_and_stay_in_the_input_dtype():
    rows = extreme_rows(RANGE, (4,), np.dtype(np.float32))
    assert set(rows) == {"training minimum", "training maximum", "far below", "far above", "huge", "alternating far"}
    np.testing.assert_allclose(rows["training minimum"], RANGE["min"], rtol=1e-6)
    np.testing.assert_allclose(rows["training maximum"], RANGE["max"], rtol=1e-6)
    assert (rows["far above"] > 1000).all() and (rows["far below"] < -1000).all() and (rows["huge"] >= 1e6).all()
    assert all(row.dtype == np.float32 and np.isfinite(row).all() for row in rows.values())
    pixels = extreme_rows({"per": "channel", "min": [0.0, 10.0], "max": [255.0, 200.0]}, (2, 3, 3), np.dtype(np.uint8))
    assert pixels["far above"].shape == (2, 3, 3) and pixels["far above"].dtype == np.uint8
    assert pixels["far above"].max() == 255 and pixels["far below"].min() == 0  # clipped to what uint8 holds
    assert (pixels["training minimum"][1] == 10).all() and (pixels["training maximum"][1] == 200).all()  # each channel its own range


@pytest.mark.parametrize("dtype", [np.float16, np.int32])
def test_extreme_rows_never_overflow_the_dtype(dtype):
    rows = extreme_rows({"per": "feature", "min": [-1e4, 0], "max": [6e4, 1]}, (2,), np.dtype(dtype))
    limits = np.finfo(dtype) if np.dtype(dtype).kind == "f" else np.iinfo(dtype)
    assert all(np.isfinite(row.astype(np.float64)).all() and row.max() <= limits.max and row.min() >= limits.min for row in rows.values())
