"""Whether an exported file answers a row the same alone and inside any batch.

A float model in eval mode computes each row on its own, so a row's answer cannot depend on the rows
batched with it. Some files do not: onnxruntime's dynamic quantization (``DynamicQuantizeLinear``)
scales a batch's activations by the batch's largest value, so one extreme row changes every other
row's answer. A server that batches requests together would then let one client change another's
answers, with HTTP 200. This check measures it for every shipped ONNX file: rows of the held-out
split are answered alone, then inside batches that also hold extreme rows (each feature at the edges
of its training range, and far beyond them), and each answer must agree with the row's answer alone
within the export check's own criterion (:func:`pipeline_core.export.verification.error_ratios`). The deploy
side runs a file that fails it one row per call, and never batches requests together for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from pipeline_core.export.verification import Noise, Tolerance, error_ratios

#: Held-out rows answered alone and inside every batch.
ROWS = 16
#: How far beyond its training range a "far" extreme row sits, in widths of that range (and 1 at least).
FAR, HUGE = 1e3, 1e6

Run = Callable[[np.ndarray], dict[str, np.ndarray]]


def extreme_rows(input_range: dict[str, Any], shape: tuple[int, ...], dtype: np.dtype) -> dict[str, np.ndarray]:
    """Rows at the edges of the training range (``metadata.json``'s ``input_range``) and far beyond
    it, by name, shaped ``shape`` and clipped to what ``dtype`` holds."""
    width = int(np.prod(shape))
    low, high = np.asarray(input_range["min"], dtype=np.float64), np.asarray(input_range["max"], dtype=np.float64)
    if input_range["per"] == "channel":  # one bound per channel, spread over its values
        low, high = np.repeat(low, width // shape[0]), np.repeat(high, width // shape[0])
    span = np.maximum.reduce([high - low, np.abs(low), np.abs(high), np.ones_like(low)])
    alternating = np.where(np.arange(width) % 2 == 0, low - FAR * span, high + FAR * span)
    rows = {"training minimum": low, "training maximum": high, "far below": low - FAR * span, "far above": high + FAR * span,
            "huge": high + HUGE * span, "alternating far": alternating}
    limits = np.finfo(dtype) if dtype.kind == "f" else np.iinfo(dtype)
    return {name: np.clip(row, float(limits.min), float(limits.max)).astype(dtype).reshape(shape) for name, row in rows.items()}


def check_batch_independence(run: Run, rows: np.ndarray, extremes: dict[str, np.ndarray], noise: Noise, tolerance: Tolerance) -> dict[str, Any]:
    """Answer ``rows`` alone (one call each), then together, then inside a batch with each extreme row
    and with all of them, and compare every output of every row with its answer alone. Returns the
    report entry: ``batch_independent``, the worst ``error_ratio`` (at most 1 passes) and where it was."""
    rows = rows[:ROWS]
    alone = [run(rows[i : i + 1]) for i in range(len(rows))]
    names = list(alone[0])
    expected = {name: np.concatenate([answer[name] for answer in alone]) for name in names}
    batches = {"the rows together": rows, **{f"with the {name} row": np.concatenate([extreme[None], rows]) for name, extreme in extremes.items()}}
    batches["with every extreme row after them"] = np.concatenate([rows, np.stack(list(extremes.values()))])
    worst: tuple[float, str] = (0.0, "")
    for label, batch in batches.items():
        start = 1 if label.startswith("with the ") else 0
        answers = run(batch)
        for name in names:
            ratios = error_ratios(answers[name][start : start + len(rows)], expected[name], noise.columns[name], tolerance)
            ratio = float(ratios.max(initial=0.0))
            if ratio > worst[0]:
                row = int(np.unravel_index(int(np.argmax(ratios)), ratios.shape)[0])
                worst = (ratio, f"{name!r} of row {row + 1} changed {label} ({ratio:.3g}× the export tolerance)")
    return {
        "batch_independent": worst[0] <= 1.0,
        "error_ratio": worst[0],
        "worst": worst[1],
        "rows": len(rows),
        "batches": list(batches),
        "criterion": "each row's outputs inside a batch within the export tolerance of its outputs alone",
    }
