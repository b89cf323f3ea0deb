"""The export stage: write every configured format into a staging folder, reload each from disk and
check it against the eager model, then seal the bundle and put it in place of ``bundle/``.

A failed check fails the run (exit code 1) and never touches an existing ``bundle/``: the rejected
files go to ``bundle.failed/`` for inspection, the trained weights stay in ``weights.pt``, and the
error names the command that exports them again (``pipeline export RUN``) once the cause is fixed.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
from pathlib import Path
from typing import Any

import torch

from pipeline_core import Exporter, ExportInfo, Register, RunContext, RunFailed, __version__, hookimpl
from pipeline_core.artifacts import RunFiles, replace_folder, versions, write_json
from pipeline_core.bundle import write_bundle
from pipeline_core.export import PROBABILITIES, deployable, named_outputs
from pipeline_core.verification import Tolerance, measure_noise, verify
from pipeline_core_deploy.predict import BUNDLE_DIR, MANIFEST

STAGING = ".bundle.staging"
FAILED = "bundle.failed"


def _describe(component: Any) -> str:
    options = ", ".join(f"{k}={v}" for k, v in component.options.items())
    return f"{component.name} ({options})" if options else component.name


def _training(run: RunContext) -> dict[str, Any]:
    """What produced the weights, for the model card and the file metadata: epochs actually run."""
    train = run.config.train
    summary = run.training.as_dict() if run.training else {}
    return {
        "data": _describe(run.config.data) if run.config.data else "unknown",
        "model": _describe(run.config.model) if run.config.model else "unknown",
        "optimizer": _describe(train.optimizer) if train else "none",
        "loss": _describe(train.loss) if train else "none",
        "seed": run.config.pipeline.seed,
        **summary,
    }


def _metadata(run: RunContext, info: ExportInfo, reference: torch.nn.Module, example: torch.Tensor) -> dict[str, Any]:
    spec = run.data.spec  # type: ignore[union-attr]
    with torch.no_grad():
        outputs = named_outputs(reference(example), info.output_names)
    batch = "batch" if info.dynamic_batch else len(example)
    return {
        "producer": f"pipeline-core {__version__}",
        "pipeline": run.config.name,
        "description": run.config.pipeline.description or run.data.description,  # type: ignore[union-attr]
        "task": spec.task,
        "classes": list(spec.classes),
        "feature_names": list(spec.feature_names),
        "input": {"name": info.input_name, "shape": [batch, *spec.input_shape], "dtype": str(spec.input_dtype).removeprefix("torch.")},
        "outputs": [{"name": name, "shape": [batch, *value.shape[1:]]} for name, value in outputs.items()],
        "metrics": run.metrics.get(run.config.evaluate.split, {}),
        "training": _training(run),
        "config_sha256": run.config.sha256(),
        "versions": versions(),
    }


def _reject(run: RunContext, staging: Path, failures: list[str]) -> None:
    """Keep the rejected files for inspection, leave any sealed bundle alone, and say how to retry."""
    failed = run.run_dir / FAILED
    shutil.rmtree(failed, ignore_errors=True)
    staging.replace(failed)
    sealed = (run.run_dir / BUNDLE_DIR / MANIFEST).is_file()
    # the run's export_report.json describes bundle/: a failed re-export reports beside its files
    write_json(failed / RunFiles.EXPORT_REPORT if sealed else run.path(RunFiles.EXPORT_REPORT), run.export_report)
    kept = f"the sealed {BUNDLE_DIR}/ from before is unchanged; " if sealed else ""
    raise RunFailed(
        "export check failed: " + " | ".join(failures) + f". The rejected files are in {failed}; {kept}the trained weights "
        f"are kept: after fixing the cause, export them again with `pipeline export {run.run_dir}` "
        "(options with --set export.KEY=VALUE)"
    )


def export(run: RunContext) -> None:
    """Export, reload, check, and seal the deploy bundle."""
    data, model = run.require_data("export"), run.require_model("export")
    settings = run.config.export
    task = data.spec.task
    reference = deployable(copy.deepcopy(model).cpu(), task, settings.probabilities)
    raw_name = settings.output_name or ("prediction" if task == "regression" else "logits")
    names = (raw_name, PROBABILITIES) if settings.probabilities and task != "regression" else (raw_name,)
    split = run.config.evaluate.split if run.config.evaluate.split in data.splits else "test"
    inputs = data.splits[split].inputs.cpu()
    example = inputs[:2]
    info = ExportInfo(data.spec, run.config.name, settings.input_name, names, settings.dynamic_batch)
    info = dataclasses.replace(info, metadata=_metadata(run, info, reference, example))
    # a file with a fixed batch size can only be checked at that size
    checked, sizes = (inputs, settings.check_batch_sizes) if settings.dynamic_batch else (example, [len(example)])
    tolerance = Tolerance(settings.atol, settings.rtol, settings.noise_factor)
    noise = measure_noise(reference, checked, names)  # once: every format is held to the same yardstick

    staging = run.run_dir / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    failures = []
    for component in settings.formats:
        exporter: Exporter = run.create(component)
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
    if failures:
        _reject(run, staging, failures)

    write_bundle(staging, info.metadata, run.export_report, info.metadata["training"])
    replace_folder(staging, run.run_dir / BUNDLE_DIR)
    shutil.rmtree(run.run_dir / FAILED, ignore_errors=True)
    write_json(run.path(RunFiles.EXPORT_REPORT), run.export_report)


@hookimpl
def register_stages(register: Register) -> None:
    register("export", export)
