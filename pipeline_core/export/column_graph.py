"""The column encoding inside the exported ONNX file, and the check that it answers raw rows as the
training-time pipeline does.

A model trained on a table of typed columns (:mod:`pipeline_core.data.columns`) learns from the
encoded float matrix; a deployer has the raw columns (strings, blanks). :func:`attach_columns` puts
the fitted encoding in front of the exported network as ONNX operators onnxruntime runs (``IsNaN``
and ``Where`` fill blanks, ``Sub``/``Div`` standardize, ``ai.onnx.ml.LabelEncoder`` maps strings to
one-hot rows gathered from a constant table), so ``model.onnx`` takes one input per column, named
as the column: ``float`` ``[batch, 1]`` for a number (NaN for a blank), ``string`` ``[batch, 1]``
for a category or a yes/no value (``""`` or ``NA`` for a blank). :func:`check_raw_columns` then runs
the shipped file on raw rows (the held-out split, and probes: a blank in each column, every column
blank, a value never seen in training in each category) against eager PyTorch on the same rows
encoded by NumPy, to the export check's own criterion.

Every step is row by row with constants fitted in training, so the encoding cannot make one row's
answer depend on another's: the batch independence of the file is the network's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline_core.data.columns import BLANK_TOKENS, FALSE_SPELLINGS, MISSING_LEVEL, TRUE_SPELLINGS, ColumnEncoder, ColumnEncoding
from pipeline_core.export.exporter import named_outputs
from pipeline_core.export.verification import Noise, Tolerance, error_ratios

#: the ``ai.onnx.ml`` opset of the encoding's operators (LabelEncoder with string keys)
ML_OPSET = 3
#: what a category never seen in training is replaced by in the probe rows
UNSEEN = "\x00a value never seen in training"


def _spellings(words: Any) -> list[str]:
    """Each word as people write it: lower, upper, capitalized (``na``, ``NA``, ``Na``; ``NaN`` too)."""
    found: dict[str, None] = {}
    for word in words:
        for variant in (word, word.lower(), word.upper(), word.capitalize(), word.title(), "NaN" if word == "nan" else word):
            found.setdefault(variant, None)
    return list(found)


class _Graph:
    """Nodes and constants under construction, with names that cannot clash with a column's."""

    def __init__(self) -> None:
        import onnx

        self.helper, self.numpy_helper, self.TensorProto = onnx.helper, onnx.numpy_helper, onnx.TensorProto
        self.nodes: list[Any] = []
        self.constants: list[Any] = []
        self.count = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"columns::{hint}.{self.count}"

    def constant(self, value: np.ndarray, hint: str) -> str:
        name = self.name(hint)
        self.constants.append(self.numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], hint: str, domain: str = "", **attributes: Any) -> str:
        output = self.name(hint)
        self.nodes.append(self.helper.make_node(op, inputs, [output], domain=domain, **attributes))
        return output


def _number(graph: _Graph, column: ColumnEncoding) -> list[str]:
    missing = graph.node("IsNaN", [column.name], "blank")
    filled = graph.node("Where", [missing, graph.constant(np.array([[column.fill]], np.float32), "fill"), column.name], "filled")
    centred = graph.node("Sub", [filled, graph.constant(np.array([[column.mean]], np.float32), "mean")], "centred")
    scaled = graph.node("Div", [centred, graph.constant(np.array([[column.std]], np.float32), "std")], "scaled")
    return [scaled, graph.node("Cast", [missing], "was_missing", to=graph.TensorProto.FLOAT)] if column.indicator else [scaled]


def _category(graph: _Graph, column: ColumnEncoding) -> list[str]:
    width = len(column.levels)
    codes = {level: index for index, level in enumerate(column.levels) if level != MISSING_LEVEL}
    blank = column.levels.index(MISSING_LEVEL) if MISSING_LEVEL in column.levels else width  # else the unknown bucket
    codes.update({token: blank for token in _spellings(BLANK_TOKENS) if token not in codes})
    index = graph.node("LabelEncoder", [column.name], "code", domain="ai.onnx.ml", keys_strings=list(codes),
                       values_int64s=list(codes.values()), default_int64=width)
    table = np.vstack([np.eye(width, dtype=np.float32), np.zeros((1, width), dtype=np.float32)])  # the last row: unknown
    rows = graph.node("Gather", [graph.constant(table, "one_hot"), index], "one_hot")  # [batch, 1, width]
    return [graph.node("Squeeze", [rows, graph.constant(np.array([1], np.int64), "axis")], "one_hot_rows")]


def _binary(graph: _Graph, column: ColumnEncoding) -> list[str]:
    signs = {**{word: 1.0 for word in _spellings(TRUE_SPELLINGS)}, **{word: -1.0 for word in _spellings(FALSE_SPELLINGS)}}
    sign = graph.node("LabelEncoder", [column.name], "sign", domain="ai.onnx.ml", keys_strings=list(signs),
                      values_floats=list(signs.values()), default_float=0.0)
    if not column.indicator:
        return [sign]
    blanks = _spellings(BLANK_TOKENS)
    missing = graph.node("LabelEncoder", [column.name], "was_missing", domain="ai.onnx.ml", keys_strings=blanks,
                         values_floats=[1.0] * len(blanks), default_float=0.0)
    return [sign, missing]


def attach_columns(network: Any, encoder: ColumnEncoder) -> Any:
    """``network`` (an ``onnx.ModelProto`` taking the encoded matrix as its one input) with the
    encoding in front of it: the returned model takes one input per column. A column named like one
    of the network's own values would be ambiguous, and is refused (rename the column)."""
    import onnx

    graph = _Graph()
    taken = {value for node in network.graph.node for value in node.output} | {i.name for i in network.graph.initializer} \
        | {o.name for o in network.graph.output}
    clashes = [name for name in encoder.names if name in taken or name.startswith("columns::")]
    if clashes:
        raise ValueError(f"column(s) {clashes} have the name of a value inside the exported network; rename them in the table")
    parts: list[str] = []
    inputs = []
    for column in encoder.columns:
        kind = graph.TensorProto.FLOAT if column.kind == "number" else graph.TensorProto.STRING
        inputs.append(onnx.helper.make_tensor_value_info(column.name, kind, ["batch", 1]))
        parts += {"number": _number, "category": _category, "binary": _binary}[column.kind](graph, column)
    (network_input,) = [i for i in network.graph.input if i.name not in {c.name for c in network.graph.initializer}]
    graph.nodes.append(onnx.helper.make_node("Concat", parts, [network_input.name], axis=1))
    merged = onnx.ModelProto()
    merged.CopyFrom(network)
    del merged.graph.input[:]
    merged.graph.input.extend(inputs)
    nodes = [*graph.nodes, *network.graph.node]
    del merged.graph.node[:]
    merged.graph.node.extend(nodes)
    merged.graph.initializer.extend(graph.constants)
    if not any(opset.domain == "ai.onnx.ml" for opset in merged.opset_import):
        merged.opset_import.append(onnx.helper.make_opsetid("ai.onnx.ml", ML_OPSET))
    return merged


def probe_rows(encoder: ColumnEncoder, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rows the held-out split may lack, built from its first row: a blank in each column in turn,
    every column blank, and a value never seen in training in each category column."""
    first = {name: values[:1] for name, values in rows.items()}

    def blank(values: np.ndarray) -> np.ndarray:
        return np.full(1, np.nan) if values.dtype.kind == "f" else np.array([""], dtype=object)

    probes = [{**first, column.name: blank(first[column.name])} for column in encoder.columns]
    probes.append({name: blank(values) for name, values in first.items()})
    probes += [{**first, column.name: np.array([UNSEEN], dtype=object)} for column in encoder.columns if column.kind == "category"]
    return {name: np.concatenate([probe[name] for probe in probes]) for name in rows}


def feeds(encoder: ColumnEncoder, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Raw columns as onnxruntime takes them: ``[rows, 1]`` float32 for numbers, strings for the rest."""
    return {column.name: (np.asarray(rows[column.name], dtype=np.float32) if column.kind == "number"
                          else np.asarray([str(value) for value in rows[column.name]], dtype=object)).reshape(-1, 1)
            for column in encoder.columns}


def check_raw_columns(run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], reference: nn.Module, encoder: ColumnEncoder,
                      rows: dict[str, np.ndarray], names: tuple[str, ...], noise: Noise, tolerance: Tolerance) -> dict[str, Any]:
    """The shipped file (``run``: raw feeds in, named outputs out) against eager ``reference`` on the
    same rows encoded by NumPy: the held-out ``rows`` and :func:`probe_rows`. Returns the report entry."""
    together = {name: np.concatenate([rows[name], probe]) for name, probe in probe_rows(encoder, rows).items()}
    with torch.no_grad():
        want = named_outputs(reference.eval()(torch.from_numpy(encoder.encode(together))), names)
    got = run(feeds(encoder, together))
    worst, where = 0.0, ""
    for name in names:
        ratios = error_ratios(got[name], want[name], noise.columns[name], tolerance)
        ratio = float(ratios.max(initial=0.0))
        if ratio > worst:
            row = int(np.unravel_index(int(np.argmax(ratios)), ratios.shape)[0])
            held_out = len(rows[encoder.names[0]])
            label = f"held-out row {row + 1}" if row < held_out else f"probe row {row + 1 - held_out}"
            worst, where = ratio, f"{name!r} of {label} ({ratio:.3g}× the tolerance)"
    held_out = len(rows[encoder.names[0]])
    return {"passed": worst <= 1.0, "error_ratio": worst, "worst": where, "rows": held_out, "probes": len(together[encoder.names[0]]) - held_out,
            "criterion": "model.onnx on raw columns against eager PyTorch on the same rows encoded by the training pipeline",
            "problems": [] if worst <= 1.0 else [f"on raw columns, {where} differs from eager PyTorch on the encoded rows"]}
