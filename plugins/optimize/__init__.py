"""Optimized variants of ``model.onnx`` (``[export.optimize] variants``), each gated before it ships.

The export stage calls :func:`make_variants` once ``model.onnx`` passed its own check, with the
staging folder that becomes ``bundle/``. Every variant asked for is built from that verified float32
file with onnxruntime's tools (:mod:`.build`), checked by ONNX's full checker, run over the whole
test split and compared with it (:mod:`.gate`). A variant that passes stays in the bundle, timed at
batch 1 and 1024 on one thread and listed in ``metadata.json``; one that fails (or cannot be built)
is removed with its reason in the export report and the model card, and fails the run only when its
options say ``required``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline_core import RunContext
from pipeline_core.engine import BUNDLE_DIR, Evaluator
from pipeline_core_plugins.optimize.build import build_variant, variant_filename
from pipeline_core_plugins.optimize.gate import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    checker_failure,
    compare,
    latency_ms,
    metrics_of,
    open_session,
    run_split,
)

#: The file variants are made from: the float32 ONNX model that predict.py and the server load.
ONNX_FILE = "model.onnx"
#: The entry ``metadata.json`` gives ``model.onnx`` itself, so every file is listed with its figures.
BASELINE = "float32"
FP16_ON_CPU = (
    "checked on the CPU provider only (the run's device is not CUDA): accuracy on the test split was checked, "
    "float16 on a GPU's provider was not, and CPU timings say nothing of GPU speed"
)


@dataclass
class Variants:
    """What :func:`make_variants` found: every variant's report, the shipped ones' metadata, and the
    failures of required variants (which fail the run)."""

    report: dict[str, dict[str, Any]] = field(default_factory=dict)
    shipped: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def calibration_rows(train: torch.Tensor, count: int, seed: int) -> np.ndarray:
    """``count`` rows of the training split drawn without replacement (seeded): what ``int8_static`` calibrates on."""
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(train), generator=generator)[: min(count, len(train))]
    return train.cpu()[chosen.sort().values].numpy()


def _gate_providers(name: str, device: torch.device) -> list[str]:
    """float16 is for GPUs: checked on CUDA where the run has one. The int8 and optimized variants
    are made for onnxruntime's CPU provider and checked there."""
    return [CUDA_PROVIDER, CPU_PROVIDER] if name == "fp16" and device.type == "cuda" else [CPU_PROVIDER]


def _size(path: Path) -> int:
    return path.stat().st_size


def _one(run: RunContext, name: str, source: Path, reference: dict[str, np.ndarray], evaluator: Evaluator) -> dict[str, Any]:
    """Build, check (ONNX's full checker, then the accuracy gate) and, when it passes, time variant
    ``name``; its report entry."""
    data, options = run.require_data("export"), run.config.export.optimize.options(name)  # type: ignore[union-attr]
    test = data.splits["test"]
    target = source.with_name(variant_filename(name))
    entry: dict[str, Any] = {"file": f"{BUNDLE_DIR}/{target.name}", "required": options.required}
    providers = _gate_providers(name, run.device)
    try:
        calibration = None
        if name == "int8_static":
            calibration = calibration_rows(data.splits["train"].inputs, options.calibration_rows, run.config.pipeline.seed)
        entry["build"] = build_variant(name, options, source, target, calibration)
        found = {"passed": False, "reason": checker_failure(target)}
        if not found["reason"]:
            session = open_session(target, providers)
            found = compare(data.spec.task, reference, run_split(session, test.inputs.cpu().numpy()), test.targets.to(run.device), evaluator, options)
            entry["providers"] = list(session.get_providers())
    except Exception as error:  # a tool that cannot make or run this variant of this model
        text = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
        found = {"passed": False, "reason": f"could not be built or run: {type(error).__name__}: {text}"}
    entry.update(found)
    if name == "fp16" and providers[0] == CPU_PROVIDER:
        entry["note"] = FP16_ON_CPU
    entry["shipped"] = entry["passed"]
    if entry["passed"]:
        entry["bytes"] = _size(target)
        entry["size_ratio"] = entry["bytes"] / _size(source)
        entry["latency_ms"] = latency_ms(target, test.inputs[:1024].cpu().numpy())
    elif not options.required:  # a required one fails the run: its file stays for inspection in bundle.failed/
        target.unlink(missing_ok=True)
    return entry


def _listing(entry: dict[str, Any]) -> dict[str, Any]:
    """A shipped file's line in ``metadata.json``: what a deployer chooses a variant by."""
    keys = ("file", "bytes", "size_ratio", "latency_ms", "accuracy", "class_agreement", "relative_error", "metrics", "providers", "note")
    listed = {key: entry[key] for key in keys if key in entry}
    listed["file"] = Path(entry["file"]).name
    if "metrics" in listed:
        listed["metrics"] = listed["metrics"]["variant"]
    return listed


def make_variants(run: RunContext, source: Path) -> Variants:
    """Every variant ``[export.optimize]`` asks for, built from ``source`` (the verified float32
    ``model.onnx`` in the staging folder) and gated on the whole test split."""
    result = Variants()
    names = run.config.export.variants
    if not names:
        return result
    data = run.require_data("export")
    test = data.splits["test"]
    reference = run_split(open_session(source, [CPU_PROVIDER]), test.inputs.cpu().numpy())
    evaluator = Evaluator.for_run(run, data.spec.task)
    rows = test.inputs[:1024].cpu().numpy()
    result.shipped[BASELINE] = {
        "file": source.name, "bytes": _size(source), "size_ratio": 1.0, "latency_ms": latency_ms(source, rows),
        "metrics": metrics_of(evaluator, reference[next(iter(reference))], test.targets.to(run.device)), "providers": [CPU_PROVIDER],
    }
    for name in names:
        entry = _one(run, name, source, reference, evaluator)
        result.report[name] = entry
        if entry["shipped"]:
            result.shipped[name] = _listing(entry)
        elif entry["required"]:
            result.failures.append(f"variant {name} (required = true): {entry['reason']}")
    return result
