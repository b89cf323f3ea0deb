"""Each variant of the float32 ONNX file, made with onnxruntime's own tools.

* ``optimized``: onnxruntime's graph optimizations applied offline and saved
  (``SessionOptions.optimized_model_filepath``), so a deployment does not redo them at every start;
* ``int8_dynamic``: ``quantize_dynamic``: int8 weights, activations quantized per batch at run time;
* ``int8_static``: ``quantize_static`` in QDQ format: int8 weights and activations, the activations'
  ranges calibrated by a ``CalibrationDataReader`` over rows of the training split;
* ``fp16``: ``convert_float_to_float16`` with float32 inputs and outputs kept, so callers send and
  receive the same arrays as with ``model.onnx``; its nodes are then put back in topological order
  (:func:`sort_nodes`), which the tool leaves broken.

Both int8 variants first run ``quant_pre_process`` (symbolic shape inference and graph optimization),
which onnxruntime's quantization guide recommends before quantizing. Every variant then gets exactly
the ``metadata_props`` of ``model.onnx`` (the quantizers add their own markers; they are dropped), so a
deployer holding only the variant file reads the same metadata, and a cross-check of ``metadata.json``
against the file's own metadata holds for every file of the bundle.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from pipeline_core import atomic_write

#: Rows per calibration batch handed to ``quantize_static``.
CALIBRATION_BATCH = 64


def variant_filename(name: str) -> str:
    """``model.int8_dynamic.onnx`` for ``int8_dynamic``: beside ``model.onnx`` in the bundle."""
    return f"model.{name}.onnx"


class TrainingRows:
    """A ``CalibrationDataReader`` over rows of the training split, in batches; ``rewind`` lets the
    same rows be read again (onnxruntime's reader protocol)."""

    def __init__(self, input_name: str, rows: np.ndarray, batch: int = CALIBRATION_BATCH) -> None:
        self.input_name, self.rows, self.batch = input_name, rows, batch
        self._batches: Iterator[np.ndarray] = iter(())
        self.rewind()

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {self.input_name: batch}

    def rewind(self) -> None:
        self._batches = iter([self.rows[start : start + self.batch] for start in range(0, len(self.rows), self.batch)])


def _preprocessed(source: Path, work: Path, preprocess: bool) -> Path:
    if not preprocess:
        return source
    from onnxruntime.quantization.shape_inference import quant_pre_process

    target = work / "preprocessed.onnx"
    quant_pre_process(str(source), str(target))
    return target


def _optimized(source: Path, target: Path, work: Path, options: Any, calibration: np.ndarray | None) -> dict[str, Any]:
    import onnxruntime

    levels = {
        "basic": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    session_options = onnxruntime.SessionOptions()
    session_options.graph_optimization_level = levels[options.level]
    session_options.optimized_model_filepath = str(target)
    session_options.log_severity_level = 3
    # optimized for the CPU provider: an offline model keeps provider-specific nodes from its optimization
    onnxruntime.InferenceSession(str(source), session_options, providers=["CPUExecutionProvider"])
    return {"tool": "onnxruntime.SessionOptions.optimized_model_filepath", "level": options.level, "optimized_for": "CPUExecutionProvider"}


def _int8_dynamic(source: Path, target: Path, work: Path, options: Any, calibration: np.ndarray | None) -> dict[str, Any]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    weight_type = QuantType.QInt8 if options.weight_type == "int8" else QuantType.QUInt8
    quantize_dynamic(str(_preprocessed(source, work, options.preprocess)), str(target), weight_type=weight_type, per_channel=options.per_channel)
    return {"tool": "onnxruntime.quantization.quantize_dynamic", "weight_type": options.weight_type,
            "per_channel": options.per_channel, "quant_pre_process": options.preprocess}


def _int8_static(source: Path, target: Path, work: Path, options: Any, calibration: np.ndarray | None) -> dict[str, Any]:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    assert calibration is not None, "int8_static needs calibration rows"
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}
    model = _preprocessed(source, work, options.preprocess)
    input_name = onnx.load(str(model), load_external_data=False).graph.input[0].name
    quantize_static(
        str(model), str(target), TrainingRows(input_name, calibration), quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=options.per_channel,
        calibrate_method=methods[options.calibration_method],
    )
    return {"tool": "onnxruntime.quantization.quantize_static", "format": "QDQ", "activation_type": "int8", "weight_type": "int8",
            "per_channel": options.per_channel, "calibration_method": options.calibration_method,
            "calibration_rows": len(calibration), "calibration_split": "train", "quant_pre_process": options.preprocess}


def sort_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with its nodes (and its subgraphs', recursively) in topological order: each after the
    nodes whose outputs it reads, otherwise in the order they had. The ONNX spec requires this order
    and ``onnx.checker`` enforces it; onnxruntime tolerates unsorted graphs, so a tool made for it
    (``convert_float_to_float16`` appends the casts of the graph's inputs after the nodes that read
    them) can write files other runtimes refuse. onnx-ir's stable sort does the work (a cycle raises
    ``ValueError``); a name no node produces is left for the checker to name."""
    import onnx_ir

    graph = onnx_ir.from_proto(model)
    graph.graph.sort()
    return onnx_ir.to_proto(graph)


def _fp16(source: Path, target: Path, work: Path, options: Any, calibration: np.ndarray | None) -> dict[str, Any]:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    converted = sort_nodes(convert_float_to_float16(onnx.load(str(source)), keep_io_types=True))
    onnx.save_model(converted, str(target))
    return {"tool": "onnxruntime.transformers.float16.convert_float_to_float16", "keep_io_types": True, "nodes": "topologically sorted"}


Builder = Callable[[Path, Path, Path, Any, np.ndarray | None], dict[str, Any]]
BUILDERS: dict[str, Builder] = {"optimized": _optimized, "int8_dynamic": _int8_dynamic, "int8_static": _int8_static, "fp16": _fp16}


def build_variant(name: str, options: Any, source: Path, target: Path, calibration: np.ndarray | None = None) -> dict[str, Any]:
    """Write variant ``name`` of ``source`` (a float32 ONNX file) to ``target`` with ``options`` (its
    ``[export.optimize.<name>]`` section) and the metadata of ``source``; returns what was done, for
    the export report. ``calibration`` holds the training rows ``int8_static`` calibrates on."""
    with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=target.parent) as folder:
        work = Path(folder)
        made = work / target.name
        details = BUILDERS[name](source, made, work, options, calibration)
        proto = onnx.load(str(made))
        del proto.metadata_props[:]
        proto.metadata_props.extend(onnx.load(str(source), load_external_data=False).metadata_props)
        atomic_write(target, lambda temporary: onnx.save_model(proto, str(temporary)))
    return details
