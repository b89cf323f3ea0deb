"""The export stage: write every configured format into a staging folder, reload each from disk and
check it against the eager model, then seal the bundle and put it in place of ``bundle/``.

A failed check fails the run (exit code 1) and never touches an existing ``bundle/``: the rejected
files go to ``bundle.failed/`` for inspection, the trained weights stay in ``weights.pt``, and the
error names the command that exports them again (``pipeline export RUN``) once the cause is fixed.
The optimized variants of ``model.onnx`` (``[export.optimize]``, :mod:`pipeline_core_plugins.optimize`)
are made from the checked file and gated on the test split before the bundle is sealed.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline_core import Register, atomic_write, hookimpl

if TYPE_CHECKING:
    import numpy as np

    from pipeline_core import Exporter, RunContext
    from pipeline_core.engine import Noise, Tolerance
    from pipeline_core_plugins.optimize import Variants

STAGING = ".bundle.staging"
FAILED = "bundle.failed"
#: the network alone, before the column encoding goes in front of it (never shipped)
NETWORK_FILE = ".network.onnx"


def _reject(run: RunContext, staging: Path, failures: list[str]) -> None:
    """Keep the rejected files for inspection, leave any sealed bundle alone, and say how to retry."""
    from pipeline_core import RunFailed, RunFiles
    from pipeline_core.engine import BUNDLE_DIR, is_sealed

    failed = run.run_dir / FAILED
    shutil.rmtree(failed, ignore_errors=True)
    staging.replace(failed)
    sealed = is_sealed(run.run_dir / BUNDLE_DIR)
    # the run's export_report.json describes bundle/: a failed re-export reports beside its files
    run.write_json(f"{FAILED}/{RunFiles.EXPORT_REPORT}" if sealed else RunFiles.EXPORT_REPORT, run.export_report)
    kept = f"the sealed {BUNDLE_DIR}/ from before is unchanged; " if sealed else ""
    raise RunFailed(
        "export check failed: " + " | ".join(failures) + f". The rejected files are in {failed}; {kept}the trained weights "
        f"are kept: after fixing the cause, export them again with `pipeline export {run.run_dir}` "
        "(options with --set export.KEY=VALUE)"
    )


def export(run: RunContext) -> None:
    """Export, reload, check, and seal the deploy bundle."""
    from pipeline_core import ConfigError, ExportInfo, RunFiles
    from pipeline_core.engine import BUNDLE_DIR, Tolerance, bundle_metadata, deployable, measure_noise, seal_bundle, verify
    from pipeline_core_plugins.optimize import ONNX_FILE, make_variants

    data, model = run.require_data("export"), run.require_model("export")
    settings = run.config.export
    reference = deployable(copy.deepcopy(model).cpu(), data.spec.task, settings.probabilities)
    names = settings.output_names(data.spec.task)
    split = run.config.evaluate.split if run.config.evaluate.split in data.splits else "test"
    inputs = data.splits[split].head().inputs.cpu()  # a streamed split: its first rows, bounded by the memory limit
    example = inputs[:2]
    info = ExportInfo(data.spec, run.config.name, settings.input_name, names, settings.dynamic_batch)
    info = dataclasses.replace(info, metadata=bundle_metadata(run, info, reference, example))
    # a file with a fixed batch size can only be checked at that size
    checked, sizes = (inputs, settings.check_batch_sizes) if settings.dynamic_batch else (example, [len(example)])
    tolerance = Tolerance(settings.atol, settings.rtol, settings.noise_factor)
    noise = measure_noise(reference, checked, names)  # once: every format is held to the same yardstick

    exporters: dict[str, Exporter] = {component.name: run.create(component) for component in settings.formats}
    onnx = next((name for name, exporter in exporters.items() if exporter.filename == ONNX_FILE), None)
    if settings.variants and onnx is None:
        raise ConfigError(f"export.optimize.variants are made from {ONNX_FILE}, which no format in export.formats writes: add \"onnx\"")
    if settings.variants and data.columns is not None:
        raise ConfigError("export.optimize.variants are not made yet for a model that takes raw table columns (strings and "
                          "blanks); leave export.optimize.variants out for this pipeline")

    staging = run.run_dir / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    failures = []
    for component in settings.formats:
        exporter = exporters[component.name]
        path: Path = staging / exporter.filename
        entry = {"file": f"{BUNDLE_DIR}/{exporter.filename}"}
        try:
            details = exporter.export(reference, example, path, info)
        except Exception as error:  # the model cannot be expressed in this format
            message = f"export failed: {type(error).__name__}: {str(error).strip().splitlines()[0][:300]}"
            run.export_report[component.name] = {**entry, "passed": False, "problems": [message]}
            failures.append(f"{component.name}: {message}")
            continue
        loaded = exporter.load(path, run.device)
        report = verify(loaded, reference, checked, info, sizes, tolerance, noise)
        run.export_report[component.name] = {**entry, **report, "providers": list(loaded.providers), **details}
        if not report["passed"]:
            failures.append(f"{component.name}: " + "; ".join(report["problems"]))
        elif data.columns is not None:
            failures += _takes_columns(run, component.name, path, exporter.filename == ONNX_FILE, reference, split, names, noise, tolerance)
    if failures:
        _reject(run, staging, failures)
    variants = make_variants(run, staging / ONNX_FILE)  # each gated; a failed required one fails the run
    if settings.variants:
        run.export_report[str(onnx)]["variants"] = variants.report
    if variants.failures:
        _reject(run, staging, variants.failures)

    metadata = {**info.metadata, "variants": variants.shipped} if variants.shipped else dict(info.metadata)
    if onnx is not None and settings.dynamic_batch:
        metadata["batch_independent"] = _batch_independence(run, staging, str(onnx), variants, checked.numpy(), noise, tolerance)
    (staging / NETWORK_FILE).unlink(missing_ok=True)
    seal_bundle(staging, run.run_dir / BUNDLE_DIR, metadata, run.export_report)
    shutil.rmtree(run.run_dir / FAILED, ignore_errors=True)
    run.write_json(RunFiles.EXPORT_REPORT, run.export_report)


def _takes_columns(run: RunContext, name: str, path: Path, is_onnx: bool, reference: Any, split: str, names: tuple[str, ...],
                   noise: Noise, tolerance: Tolerance) -> list[str]:
    """For a table of typed columns: put the column encoding inside the ONNX file (keeping the network
    alone beside it, unshipped, for the batch independence check) and check the file end to end on raw
    rows; other formats take the encoded matrix, which their report entry says. Returns the failures."""
    import onnx

    from pipeline_core.engine import attach_columns, check_raw_columns
    from pipeline_core_plugins.optimize.gate import CPU_PROVIDER, open_session

    data, entry = run.require_data("export"), run.export_report[name]
    assert data.columns is not None
    if not is_onnx:
        entry["takes"] = "the encoded matrix (metadata.json's encoded_input), not the raw columns model.onnx takes"
        return []
    network = onnx.load(str(path))
    try:
        merged = attach_columns(network, data.columns.encoder)
    except ValueError as error:
        entry.update(passed=False, problems=[str(error)])
        return [f"{name}: {error}"]
    path.replace(path.with_name(NETWORK_FILE))
    atomic_write(path, lambda temp: onnx.save_model(merged, str(temp)))
    onnx.checker.check_model(str(path), full_check=True)
    session = open_session(path, [CPU_PROVIDER], threads=1)
    outputs = [output.name for output in session.get_outputs()]

    def answer(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(outputs, session.run(outputs, feeds), strict=True))

    report = check_raw_columns(answer, reference, data.columns.encoder, data.columns.splits[split], names, noise, tolerance)
    entry["raw_columns"] = report
    if report["passed"]:
        return []
    entry.update(passed=False, problems=[*entry.get("problems", []), *report["problems"]])
    return [f"{name}: " + "; ".join(report["problems"])]


def _batch_independence(run: RunContext, staging: Path, onnx: str, variants: Variants, rows: np.ndarray,
                        noise: Noise, tolerance: Tolerance) -> dict[str, bool]:
    """Measure every shipped ONNX file for batch independence (:mod:`pipeline_core.export.batch_independence`)
    on the CPU provider the deploy side runs by default, and record it in the export report; returns
    ``{file: batch_independent}`` for metadata.json. A file that fails still ships, marked, and the
    deploy side runs it one row per call (the report and the model card say so). A model that takes
    raw columns is measured on its network (the encoding in front of it works row by row)."""
    from pipeline_core.engine import check_batch_independence, extreme_rows, input_range
    from pipeline_core_plugins.optimize import BASELINE, ONNX_FILE
    from pipeline_core_plugins.optimize.gate import CPU_PROVIDER, open_session

    extremes = extreme_rows(input_range(run.require_data("export")), tuple(rows.shape[1:]), rows.dtype)
    files = {BASELINE: ONNX_FILE, **{name: listed["file"] for name, listed in variants.shipped.items() if name != BASELINE}}
    found = {}
    for name, file in files.items():
        measured = NETWORK_FILE if file == ONNX_FILE and (staging / NETWORK_FILE).exists() else file
        session = open_session(staging / measured, [CPU_PROVIDER], threads=1)
        input_name, outputs = session.get_inputs()[0].name, [output.name for output in session.get_outputs()]

        def answer(batch: np.ndarray, session: Any = session, input_name: str = input_name, outputs: list[str] = outputs) -> dict[str, np.ndarray]:
            return dict(zip(outputs, session.run(outputs, {input_name: batch}), strict=True))

        entry = check_batch_independence(answer, rows, extremes, noise, tolerance)
        report = run.export_report[onnx] if name == BASELINE else run.export_report[onnx]["variants"][name]
        report["batch_independent"], report["batch_independence"] = entry["batch_independent"], entry
        if name in variants.shipped:
            variants.shipped[name]["batch_independent"] = entry["batch_independent"]
        found[file] = entry["batch_independent"]
    return found


@hookimpl
def register_stages(register: Register) -> None:
    register("export", export, needs=("data", "model"), provides=("bundle",))
