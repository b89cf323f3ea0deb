"""Exporters and the check every exported file must pass.

An exporter writes a file and knows how to load it back for inference. The host reloads each file
from disk, runs it on held-out inputs at several batch sizes and compares it with the eager model in
eval mode; a file that disagrees fails the run instead of reaching a deployer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from pipeline_core.data import DataSpec, Task


@dataclass(frozen=True)
class ExportInfo:
    """What an exporter may need besides the model: the data spec (names, shapes, classes) and
    string metadata describing the run (pipeline name, metrics, config hash, versions)."""

    spec: DataSpec
    pipeline: str
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def output_name(self) -> str:
        return "prediction" if self.spec.task == "regression" else "logits"


@runtime_checkable
class LoadedModel(Protocol):
    """An exported file loaded for inference: float32 array in, output array out."""

    providers: list[str]

    def __call__(self, inputs: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Exporter(Protocol):
    """What an ``exporter`` component returns: where it writes, how it writes, how it loads back."""

    filename: str

    def export(self, model: nn.Module, example: torch.Tensor, path: Path, info: ExportInfo) -> dict[str, Any]:
        """Write ``model`` (eval mode, CPU) to ``path``; return details for the export report."""
        ...

    def load(self, path: Path, device: torch.device) -> LoadedModel:
        """Load ``path`` back for inference on ``device``."""
        ...


def _differences(got: np.ndarray, want: np.ndarray, atol: float) -> tuple[float, float]:
    difference = np.abs(got.astype(np.float64) - want.astype(np.float64))
    if difference.size == 0:
        return 0.0, 0.0
    # Relative to the reference, ignoring elements smaller than atol (where relative error is noise).
    scale = np.maximum(np.abs(want.astype(np.float64)), max(atol, 1e-12))
    return float(difference.max()), float((difference / scale).max())


def verify(
    loaded: Callable[[np.ndarray], np.ndarray],
    reference: nn.Module,
    inputs: torch.Tensor,
    batch_sizes: list[int],
    atol: float,
    rtol: float,
    task: Task,
) -> dict[str, Any]:
    """Compare ``loaded`` with eval-mode ``reference`` on ``inputs`` at each batch size and the whole split."""
    reference = reference.eval()
    sizes = sorted({min(size, len(inputs)) for size in batch_sizes} | {len(inputs)})
    checks, problems = [], []
    max_abs = max_rel = 0.0
    full_got = full_want = None
    for size in sizes:
        batch = inputs[:size]
        with torch.no_grad():
            want = reference(batch).numpy()
        got = np.asarray(loaded(batch.numpy()))
        if got.shape != want.shape:
            problems.append(f"batch {size}: output shape {got.shape}, eager PyTorch gives {want.shape}")
            checks.append({"batch_size": size, "shape_ok": False})
            continue
        abs_diff, rel_diff = _differences(got, want, atol)
        close = bool(np.allclose(got, want, atol=atol, rtol=rtol))
        if not close:
            problems.append(f"batch {size}: max abs diff {abs_diff:.3g} exceeds atol {atol:g} + rtol {rtol:g}·|eager|")
        max_abs, max_rel = max(max_abs, abs_diff), max(max_rel, rel_diff)
        checks.append({"batch_size": size, "shape_ok": True, "max_abs_diff": abs_diff, "max_rel_diff": rel_diff, "close": close})
        full_got, full_want = got, want
    report: dict[str, Any] = {
        "max_abs_diff": max_abs,
        "max_rel_diff": max_rel,
        "atol": atol,
        "rtol": rtol,
        "checked_rows": len(inputs),
        "batches": checks,
    }
    if task != "regression" and full_got is not None and full_want is not None and len(full_got) == len(inputs):
        if task == "multiclass":
            agree = (full_got.argmax(axis=1) == full_want.argmax(axis=1)).mean()
        else:
            agree = ((full_got > 0) == (full_want > 0)).mean()
        report["class_agreement"] = float(agree)
        if agree < 1.0:
            problems.append(f"predicted classes differ from eager PyTorch on {(1 - agree) * 100:.2f}% of the test split")
    report["passed"] = not problems
    report["problems"] = problems
    return report
