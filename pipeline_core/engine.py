"""The engine, for stage authors: what the default stages are built from.

A component (dataset, model, optimizer, scheduler, loss, metric, exporter, plot, tracker) needs
only :mod:`pipeline_core`. A stage (``register_stages``) also drives the engine: the validated
sections of the pipeline file, the training loop (:func:`fit`), evaluation (:class:`Evaluator`)
and the registered plots (:func:`draw_plots`), the export check (:func:`verify`,
:func:`check_batch_independence`), the deploy bundle (:func:`bundle_metadata`, :func:`seal_bundle`)
and the model checks. These two modules are the whole API a plugin imports, and the built-in
plugins use nothing else (a contract in ``make test`` keeps it so). The names are imported on first
use: importing this module imports no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name → the module that defines it
_EXPORTS = {
    # the pipeline file, validated
    "PipelineConfig": "pipeline_core.config.file",
    "ComponentConfig": "pipeline_core.config.common",
    "PipelineSection": "pipeline_core.config.pipeline_section",
    "TrainSection": "pipeline_core.config.train_section",
    "EarlyStoppingSection": "pipeline_core.config.train_section",
    "EvaluateSection": "pipeline_core.config.evaluate_section",
    "ExportSection": "pipeline_core.config.export_section",
    # load_data and build_model
    "place_splits": "pipeline_core.data.placement",
    "check_data_spec": "pipeline_core.model.check",
    "check_model_outputs": "pipeline_core.model.check",
    "remember_model_check": "pipeline_core.model.check_cache",
    # train and evaluate
    "fit": "pipeline_core.training.fit",
    "Evaluator": "pipeline_core.model.evaluation",
    "draw_plots": "pipeline_core.model.evaluation",
    # export
    "deployable": "pipeline_core.export.exporter",
    "Tolerance": "pipeline_core.export.verification",
    "Noise": "pipeline_core.export.verification",
    "measure_noise": "pipeline_core.export.verification",
    "verify": "pipeline_core.export.verification",
    "check_batch_independence": "pipeline_core.export.batch_independence",
    "extreme_rows": "pipeline_core.export.batch_independence",
    "attach_columns": "pipeline_core.export.column_graph",
    "check_raw_columns": "pipeline_core.export.column_graph",
    "input_range": "pipeline_core.export.bundle",
    "BUNDLE_DIR": "pipeline_core.export.bundle",
    "bundle_metadata": "pipeline_core.export.bundle",
    "is_sealed": "pipeline_core.export.bundle",
    "seal_bundle": "pipeline_core.export.bundle",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pipeline_core.engine' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    pass
