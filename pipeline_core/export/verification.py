"""The check every exported file must pass before it reaches a deployer.

An exported file is run back on held-out inputs at several batch sizes and on the whole split, and
each output is compared with eager eval-mode PyTorch at the same batch size. A fixed absolute
tolerance cannot be right at every scale: onnxruntime sums a 784-long dot product in another order
than PyTorch, and a logit near zero then differs by a few 1e-5 while a logit of 20 differs by far
less than its 1e-4 relative share. So the tolerance is *measured* for each model:

* a float64 twin of the eager model gives the exact answer on up to :data:`CALIBRATION_ROWS` rows;
  the largest ``|float32 eager − float64|`` of each output column is that column's **rounding noise**
  ``noise[j]``: how far a correct float32 implementation of this very model strays;
* an element passes when ``|export − eager| ≤ atol + rtol·|eager| + noise_factor·noise[j]`` —
  the export may stray from eager PyTorch by a few times what eager PyTorch itself strays from exact
  arithmetic, plus small floors for outputs that float32 computes exactly;
* predicted classes must agree with eager PyTorch on every row whose top two scores are further
  apart than their tolerances (a row closer than that is a tie that rounding may break either way,
  counted and reported as ``ambiguous_rows``).

A model that cannot run in float64 (a custom kernel, a float32-only op) is calibrated from its
outputs' magnitude instead (``noise[j] = 1e-5·max|eager[:, j]|``) and the report says so. Each
check reports ``error_ratio``, the largest ``|export − eager| / tolerance``: at most 1 passes, and
how far below 1 it stays is the margin.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline_core.export.exporter import ExportInfo, LoadedModel, named_outputs

#: Rows of the split run through the float64 twin to measure rounding noise.
CALIBRATION_ROWS = 4096
#: Rows per forward pass while calibrating (bounds memory for image models).
CALIBRATION_CHUNK = 1024
#: Noise assumed, relative to each column's largest magnitude, when no float64 twin can run.
FALLBACK_RELATIVE_NOISE = 1e-5

CRITERION = "|export - eager| <= atol + rtol*|eager| + noise_factor*noise[column]; noise = max |float32 eager - float64 eager|"


@dataclass(frozen=True)
class Tolerance:
    """The three knobs of the criterion (``[export] atol, rtol, noise_factor``)."""

    atol: float = 1e-6
    rtol: float = 1e-6
    noise_factor: float = 4.0


@dataclass(frozen=True)
class Noise:
    """Rounding noise per output and column, and how it was measured."""

    columns: dict[str, np.ndarray]
    reference: str
    rows: int


def _float64_input(batch: torch.Tensor) -> torch.Tensor:
    return batch.double() if batch.is_floating_point() else batch


def _columns(array: np.ndarray) -> np.ndarray:
    """(N, ...) → (N, columns): every trailing position of an output is one column."""
    return array.reshape(len(array), -1) if array.ndim > 1 else array.reshape(-1, 1)


def measure_noise(reference: nn.Module, inputs: torch.Tensor, names: tuple[str, ...]) -> Noise:
    """How far float32 eager PyTorch strays from a float64 twin of the same model, per output column."""
    rows = inputs[:CALIBRATION_ROWS]
    chunks = [rows[start : start + CALIBRATION_CHUNK] for start in range(0, len(rows), CALIBRATION_CHUNK)]
    with torch.no_grad():
        eager = [named_outputs(reference(chunk), names) for chunk in chunks]
        try:
            twin = copy.deepcopy(reference).double().eval()
            exact = [named_outputs(twin(_float64_input(chunk)), names) for chunk in chunks]
        except Exception as error:  # a model that cannot run in float64: fall back to magnitudes
            columns = {
                name: FALLBACK_RELATIVE_NOISE * np.abs(_columns(np.concatenate([part[name] for part in eager]))).max(axis=0)
                for name in names
            }
            reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:200]}" if str(error).strip() else type(error).__name__
            return Noise(columns, f"float32 magnitudes (no float64 twin: {reason})", len(rows))
    columns = {}
    for name in names:
        got = _columns(np.concatenate([part[name] for part in eager]).astype(np.float64))
        want = _columns(np.concatenate([part[name] for part in exact]).astype(np.float64))
        columns[name] = np.nan_to_num(np.abs(got - want), nan=0.0, posinf=0.0).max(axis=0)
    return Noise(columns, "float64 twin of the eager model", len(rows))


def _signature_problems(signature: dict[str, Any], info: ExportInfo) -> list[str]:
    """The names, ranks and dynamic batch axis a file declares, against what was asked for."""
    if not signature:
        return []
    problems = []
    declared_input = signature["input"]
    if declared_input["name"] != info.input_name:
        problems.append(f"input is named {declared_input['name']!r}, expected {info.input_name!r}")
    names = tuple(output["name"] for output in signature["outputs"])
    if names != info.output_names:
        problems.append(f"outputs are named {list(names)}, expected {list(info.output_names)}")
    for entry in [declared_input, *signature["outputs"]]:
        batch = entry["shape"][0] if entry["shape"] else None
        if info.dynamic_batch and isinstance(batch, int):
            problems.append(f"{entry['name']!r} has a fixed batch size {batch}; a dynamic batch axis was asked for")
    expected_input = [None, *info.spec.input_shape]
    if len(declared_input["shape"]) != len(expected_input):
        problems.append(f"input has rank {len(declared_input['shape'])}, expected {len(expected_input)}")
    return problems


def _tolerance(want: np.ndarray, noise: np.ndarray, tolerance: Tolerance) -> np.ndarray:
    """The allowed difference for every element of ``want`` (N, columns)."""
    return tolerance.atol + tolerance.rtol * np.abs(want) + tolerance.noise_factor * noise[None, :]


def _ratios(difference: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """``difference / allowed`` element-wise, where a zero tolerance allows exactly zero difference."""
    ratios = np.zeros_like(difference)
    np.divide(difference, allowed, out=ratios, where=allowed > 0)
    ratios[(allowed <= 0) & (difference > 0)] = np.inf
    return ratios


def error_ratios(actual: np.ndarray, expected: np.ndarray, noise: np.ndarray, tolerance: Tolerance) -> np.ndarray:
    """``|actual − expected|`` over the criterion's tolerance (the module docstring), element-wise on
    (N, columns) arrays with ``noise`` per column; NaN where ``expected`` has a number is infinitely far."""
    expected = _columns(expected.astype(np.float64))
    difference = np.abs(_columns(actual.astype(np.float64)) - expected)
    difference[np.isnan(difference)] = np.inf
    return _ratios(difference, _tolerance(expected, noise, tolerance))


def _class_disagreement(got: np.ndarray, want: np.ndarray, allowed: np.ndarray, task: str) -> tuple[int, int]:
    """Rows whose predicted class differs from eager's though eager's decision is clear, and rows
    where eager's decision is within tolerance (a tie rounding may break either way)."""
    if task == "multiclass":
        order = np.argsort(want, axis=1)
        top, second = order[:, -1], order[:, -2] if want.shape[1] > 1 else order[:, -1]
        rows = np.arange(len(want))
        gap = want[rows, top] - want[rows, second]
        ambiguous = gap <= allowed[rows, top] + allowed[rows, second]
        differs = got.argmax(axis=1) != top
    else:
        ambiguous = (np.abs(want) <= allowed).any(axis=1)
        differs = ((got > 0) != (want > 0)).any(axis=1)
    return int((differs & ~ambiguous).sum()), int(ambiguous.sum())


def verify(
    loaded: LoadedModel,
    reference: nn.Module,
    inputs: torch.Tensor,
    info: ExportInfo,
    batch_sizes: list[int],
    tolerance: Tolerance | None = None,
    noise: Noise | None = None,
) -> dict[str, Any]:
    """Compare every output of ``loaded`` with eval-mode ``reference`` at each batch size and on the
    whole split (see the module docstring for the criterion); returns the export report entry."""
    tolerance = tolerance or Tolerance()
    reference = reference.eval()
    noise = noise or measure_noise(reference, inputs, info.output_names)
    sizes = sorted({min(size, len(inputs)) for size in batch_sizes} | {len(inputs)})
    problems = _signature_problems(loaded.signature, info)
    per_output: dict[str, dict[str, Any]] = {
        name: {"max_abs_diff": 0.0, "max_rel_diff": 0.0, "error_ratio": 0.0, "noise": float(noise.columns[name].max(initial=0.0))}
        for name in info.output_names
    }
    checks = []
    for size in sizes:
        entry = _check_batch(loaded, reference, inputs[:size], info, _Criterion(noise, tolerance), per_output, problems,
                             whole_split=size == len(inputs))
        if entry is None:
            break
        checks.append(entry)
    return _report(loaded, inputs, noise, tolerance, per_output, checks, problems)


@dataclass(frozen=True)
class _Criterion:
    """What an output is compared with: the measured rounding noise and the tolerance."""

    noise: Noise
    tolerance: Tolerance


def _check_batch(
    loaded: LoadedModel,
    reference: nn.Module,
    batch: torch.Tensor,
    info: ExportInfo,
    criterion: _Criterion,
    per_output: dict[str, dict[str, Any]],
    problems: list[str],
    whole_split: bool,
) -> dict[str, Any] | None:
    """One batch size: every output compared, ``per_output``'s statistics and ``problems`` updated;
    the batch's entry, or ``None`` when the file answers with other outputs than eager PyTorch."""
    size = len(batch)
    with torch.no_grad():
        want = named_outputs(reference(batch), info.output_names)
    got = loaded(batch.numpy())
    if set(got) != set(want):
        problems.append(f"batch {size}: outputs {sorted(got)}, expected {sorted(want)}")
        return None
    entry: dict[str, Any] = {"batch_size": size, "close": True}
    for name in info.output_names:
        if got[name].shape != want[name].shape:
            problems.append(f"batch {size}: {name!r} has shape {got[name].shape}, eager PyTorch gives {want[name].shape}")
            entry["close"] = False
            continue
        expected = _columns(want[name].astype(np.float64))
        actual = _columns(got[name].astype(np.float64))
        allowed = _tolerance(expected, criterion.noise.columns[name], criterion.tolerance)
        if not _compare_output(name, size, actual, expected, allowed, criterion.tolerance, per_output[name], problems):
            entry["close"] = False
        if name == info.output_names[0] and whole_split and info.spec.task != "regression":
            entry.update(_class_check(actual, expected, allowed, info.spec.task, problems))
    return entry


def _compare_output(
    name: str,
    size: int,
    actual: np.ndarray,
    expected: np.ndarray,
    allowed: np.ndarray,
    tolerance: Tolerance,
    stats: dict[str, Any],
    problems: list[str],
) -> bool:
    """Whether one output of one batch is within ``allowed`` everywhere; its largest differences go
    into ``stats``, the worst element into ``problems`` when it is not."""
    difference = np.abs(actual - expected)
    difference[np.isnan(difference)] = np.inf  # NaN where eager has a number is never close
    ratios = _ratios(difference, allowed)
    ratio = float(ratios.max(initial=0.0))
    stats["max_abs_diff"] = max(stats["max_abs_diff"], float(difference.max(initial=0.0)))
    scale = np.maximum(np.abs(expected), max(tolerance.atol, 1e-12))
    stats["max_rel_diff"] = max(stats["max_rel_diff"], float((difference / scale).max(initial=0.0)))
    stats["error_ratio"] = max(stats["error_ratio"], ratio)
    if ratio <= 1.0:
        return True
    worst = np.unravel_index(int(np.argmax(ratios)), difference.shape)
    problems.append(
        f"batch {size}: {name!r} differs from eager PyTorch by {difference[worst]:.3g} at row {worst[0]}, "
        f"column {worst[1]} (allowed {allowed[worst]:.3g}: {ratio:.3g}× the tolerance)"
    )
    return False


def _class_check(actual: np.ndarray, expected: np.ndarray, allowed: np.ndarray, task: str, problems: list[str]) -> dict[str, Any]:
    """The whole split's predicted classes against eager's, where eager's decision is clear."""
    wrong, ambiguous = _class_disagreement(actual, expected, allowed, task)
    if wrong:
        problems.append(
            f"predicted classes differ from eager PyTorch on {wrong} of {len(expected)} rows of the split "
            f"({wrong / len(expected):.2%}) where eager's decision is clear"
        )
    return {"class_agreement": 1.0 - wrong / max(len(expected), 1), "ambiguous_rows": ambiguous}


def _report(
    loaded: LoadedModel,
    inputs: torch.Tensor,
    noise: Noise,
    tolerance: Tolerance,
    per_output: dict[str, dict[str, Any]],
    checks: list[dict[str, Any]],
    problems: list[str],
) -> dict[str, Any]:
    """The export report entry of one file."""
    full = next((entry for entry in checks if entry["batch_size"] == len(inputs)), {})
    report: dict[str, Any] = {
        "criterion": CRITERION,
        "max_abs_diff": max(s["max_abs_diff"] for s in per_output.values()),
        "max_rel_diff": max(s["max_rel_diff"] for s in per_output.values()),
        "error_ratio": max(s["error_ratio"] for s in per_output.values()),
        "outputs": per_output,
        "atol": tolerance.atol,
        "rtol": tolerance.rtol,
        "noise_factor": tolerance.noise_factor,
        "noise_reference": noise.reference,
        "calibration_rows": noise.rows,
        "checked_rows": len(inputs),
        "batches": checks,
        "signature": loaded.signature,
    }
    if "class_agreement" in full:
        report["class_agreement"] = full["class_agreement"]
        report["ambiguous_rows"] = full["ambiguous_rows"]
    report["passed"] = not problems
    report["problems"] = problems
    return report
