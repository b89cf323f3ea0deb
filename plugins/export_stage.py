"""The export stage: write every configured format into ``bundle/``, reload each from disk and check
it against the eager model, then seal the bundle. A failed check fails the run (exit code 1) and
leaves the bundle unsealed, so ``pipeline predict`` refuses it."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import torch

from pipeline_core import Exporter, ExportInfo, Register, RunContext, RunFailed, __version__, hookimpl
from pipeline_core.artifacts import versions, write_json
from pipeline_core.bundle import write_bundle
from pipeline_core.export import PROBABILITIES, deployable, named_outputs, verify
from pipeline_core_deploy.predict import BUNDLE_DIR


def _describe(component: Any) -> str:
    options = ", ".join(f"{k}={v}" for k, v in component.options.items())
    return f"{component.name} ({options})" if options else component.name


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
        "config_sha256": run.config.sha256(),
        "versions": versions(),
    }


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

    folder = run.run_dir / BUNDLE_DIR
    folder.mkdir(exist_ok=True)
    failures = []
    for component in settings.formats:
        exporter: Exporter = run.create(component)
        path: Path = folder / exporter.filename
        try:
            details = exporter.export(reference, example, path, info)
        except Exception as error:  # the model cannot be expressed in this format
            message = f"export failed: {type(error).__name__}: {str(error).strip().splitlines()[0][:300]}"
            run.export_report[component.name] = {"file": f"{BUNDLE_DIR}/{exporter.filename}", "passed": False, "problems": [message]}
            failures.append(f"{component.name}: {message}")
            continue
        loaded = exporter.load(path, run.device)
        report = verify(loaded, reference, checked, info, sizes, settings.atol, settings.rtol)
        run.export_report[component.name] = {
            "file": f"{BUNDLE_DIR}/{exporter.filename}",
            **report,
            "providers": list(loaded.providers),
            **details,
        }
        if not report["passed"]:
            failures.append(f"{component.name}: " + "; ".join(report["problems"]))
    write_json(run.path("export_report.json"), run.export_report)
    if failures:
        raise RunFailed("export check failed: " + " | ".join(failures))

    train = run.config.train
    training = {
        "data": _describe(run.config.data) if run.config.data else "unknown",
        "model": _describe(run.config.model) if run.config.model else "unknown",
        "optimizer": _describe(train.optimizer) if train else "none",
        "loss": _describe(train.loss) if train else "none",
        "epochs": train.epochs if train else 0,
        "seed": run.config.pipeline.seed,
    }
    write_bundle(folder, info.metadata, run.export_report, training)


@hookimpl
def register_stages(register: Register) -> None:
    register("export", export)
