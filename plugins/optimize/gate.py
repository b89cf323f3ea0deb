"""The accuracy gate a variant passes before it ships, and its measured cost.

A variant is not the float32 model: int8 and float16 arithmetic change the outputs on purpose, so
the export check's rounding-noise criterion does not apply. What matters to a deployer is whether it
is still right: the gate runs the variant and ``model.onnx`` over the whole test split and compares
them on what the pipeline measures (class agreement, the configured metrics, the largest output
differences), and holds the variant to its tolerance (:class:`pipeline_core.config.export_section.VariantGate`):
a classifier may lose at most ``max_accuracy_drop`` accuracy points; a regressor's outputs may
differ from float32's by at most ``max_relative_error`` of their spread. Before it is run at all, the
file must pass ONNX's full checker (:func:`checker_failure`).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from pipeline_core import Task, class_indices, scalars
from pipeline_core.engine import Evaluator

CPU_PROVIDER, CUDA_PROVIDER = "CPUExecutionProvider", "CUDAExecutionProvider"
#: Rows per onnxruntime call when a model runs over a whole split.
RUN_BATCH = 1024
#: The batch sizes every shipped file is timed at, on one thread.
LATENCY_BATCHES = (1, 1024)
#: Each timing repeats its call for at least this long (and at least :data:`MIN_REPEATS` times).
TIMING_SECONDS = 0.2
MIN_REPEATS = 5


def open_session(path: Path, providers: list[str], threads: int = 0) -> Any:
    """An onnxruntime session on ``providers`` (the first must be the one that runs, or a ``RuntimeError``)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    chosen = [(name, {"use_tf32": "0"}) if name == CUDA_PROVIDER else name for name in providers]
    session = onnxruntime.InferenceSession(str(path), options, providers=chosen)
    if session.get_providers()[0] != providers[0]:
        raise RuntimeError(f"onnxruntime could not start {providers[0]} for {path.name} (it ran {session.get_providers()})")
    return session


def checker_failure(path: Path) -> str:
    """Why ONNX's full checker (``onnx.checker.check_model(path, full_check=True)``: the spec's rules
    and strict shape inference) rejects the file at ``path``, or ``""`` when it passes. onnxruntime
    runs some files that break the spec (nodes out of topological order, say), and the tools that
    make variants are written for it; another runtime or ONNX tool may refuse such a file or misread
    it, so a variant that fails the checker does not ship, however well onnxruntime runs it."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        return (f"fails ONNX's full checker (onnx.checker.check_model(..., full_check=True)), which every shipped file "
                f"must pass: {' '.join(str(error).split())}")
    return ""


def run_split(session: Any, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """Every output of ``session`` for ``inputs``, by name, in batches of :data:`RUN_BATCH` rows."""
    input_name = session.get_inputs()[0].name
    names = [output.name for output in session.get_outputs()]
    parts = [session.run(names, {input_name: inputs[start : start + RUN_BATCH]}) for start in range(0, len(inputs), RUN_BATCH)]
    return {name: np.concatenate([part[index] for part in parts]) for index, name in enumerate(names)}


def latency_ms(path: Path, rows: np.ndarray) -> dict[str, float]:
    """Median milliseconds per call at each of :data:`LATENCY_BATCHES` (rows tiled to size), one
    onnxruntime thread on the CPU provider: the figure a deployer compares variants by."""
    session = open_session(path, [CPU_PROVIDER], threads=1)
    input_name = session.get_inputs()[0].name
    measured = {}
    for size in LATENCY_BATCHES:
        batch = np.ascontiguousarray(np.resize(rows, (size, *rows.shape[1:])))
        session.run(None, {input_name: batch})  # warm-up: first-call allocations
        times: list[float] = []
        started = time.perf_counter()
        while len(times) < MIN_REPEATS or time.perf_counter() - started < TIMING_SECONDS:
            begin = time.perf_counter()
            session.run(None, {input_name: batch})
            times.append(time.perf_counter() - begin)
        measured[f"batch_{size}"] = round(statistics.median(times) * 1000, 4)
    return measured


def metrics_of(evaluator: Evaluator, outputs: np.ndarray, targets: torch.Tensor) -> dict[str, float]:
    """The configured metrics (their single numbers) of raw ``outputs`` against ``targets``."""
    return scalars(evaluator.score(torch.from_numpy(np.ascontiguousarray(outputs)).to(targets.device), targets))


def _classifier(task: Task, reference: np.ndarray, candidate: np.ndarray, targets: torch.Tensor, gate: Any) -> tuple[dict[str, Any], str]:
    want = class_indices(torch.from_numpy(reference), task)
    got = class_indices(torch.from_numpy(candidate), task)
    truth = targets.detach().cpu().view(-1).long()
    before, after = float((want == truth).double().mean()), float((got == truth).double().mean())
    drop = round(100 * (before - after), 6)  # in accuracy points; rounded so equal accuracies drop exactly 0
    changed = int((want != got).sum())
    found = {
        "accuracy": {"float32": before, "variant": after, "drop_points": drop},
        "class_agreement": 1 - changed / max(len(truth), 1),
        "rows_changed": changed,
        "tolerance": {"max_accuracy_drop": gate.max_accuracy_drop},
    }
    reason = ""
    if drop > gate.max_accuracy_drop:
        reason = (f"test accuracy dropped {drop:.2f} points ({before:.4f} → {after:.4f}; {changed} of {len(truth)} predicted "
                  f"classes changed), more than max_accuracy_drop = {gate.max_accuracy_drop}")
    return found, reason


def _regressor(reference: np.ndarray, candidate: np.ndarray, gate: Any) -> tuple[dict[str, Any], str]:
    want = reference.reshape(len(reference), -1).astype(np.float64)
    got = candidate.reshape(len(candidate), -1).astype(np.float64)
    rms = np.sqrt(((got - want) ** 2).mean(axis=0))
    spread = want.std(axis=0)
    scale = np.where(spread > 0, spread, np.maximum(np.abs(want).max(axis=0), 1e-12))  # a constant output: its magnitude
    relative = float((rms / scale).max(initial=0.0))
    found = {"relative_error": relative, "tolerance": {"max_relative_error": gate.max_relative_error}}
    reason = ""
    if relative > gate.max_relative_error:
        reason = (f"outputs differ from float32 by {relative:.3g} of their spread (RMS difference / standard deviation, "
                  f"worst column), more than max_relative_error = {gate.max_relative_error}")
    return found, reason


def compare(
    task: Task, reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], targets: torch.Tensor,
    evaluator: Evaluator, gate: Any,
) -> dict[str, Any]:
    """The gate's findings for ``candidate`` against float32's ``reference`` outputs on a split with
    ``targets``: ``passed``, the ``reason`` when not, and what was measured."""
    if list(candidate) != list(reference) or any(candidate[k].shape != reference[k].shape for k in reference):
        shapes = {name: list(value.shape) for name, value in candidate.items()}
        return {"passed": False, "reason": f"outputs {shapes} differ from model.onnx's {({k: list(v.shape) for k, v in reference.items()})}"}
    if not all(np.isfinite(value).all() for value in candidate.values()):
        return {"passed": False, "reason": "outputs hold NaN or infinity on the test split"}
    first = next(iter(reference))
    found, reason = (_regressor(reference[first], candidate[first], gate) if task == "regression"
                     else _classifier(task, reference[first], candidate[first], targets, gate))
    before, after = metrics_of(evaluator, reference[first], targets), metrics_of(evaluator, candidate[first], targets)
    return {
        "passed": not reason,
        "reason": reason,
        "rows": len(targets),
        **found,
        "metrics": {"float32": before, "variant": after, "change": {k: after[k] - before[k] for k in before if k in after}},
        "max_abs_diff": {name: float(np.abs(candidate[name].astype(np.float64) - reference[name]).max(initial=0.0)) for name in reference},
    }
