"""What a bundle states twice must agree: ``metadata.json`` against ``model.onnx``'s own
``metadata_props`` and against its ONNX graph (input name, dtype and shape, outputs), and the counts
that must fit (feature names against the input's width, classes against the output's).

Why: the exporter writes every value into both places from one dict, so a disagreement means the
bundle was changed after export (or put together by hand), and a bundle that contradicts itself
would label rows wrongly without any error. The shape of ``metadata.json`` itself is checked here
too, so the rest of the deploy side can rely on it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline_core_deploy.common import TASKS, DeployError, _show
from pipeline_core_deploy.table_columns import COLUMN_TYPES

_ONNX_DTYPES = {"float": "float32", "double": "float64", "float16": "float16", "uint8": "uint8", "int8": "int8",
                "uint16": "uint16", "int16": "int16", "int32": "int32", "int64": "int64", "bool": "bool"}


def _check_metadata(path: Path, metadata: Any) -> None:
    """The parts of ``metadata.json`` this module relies on, with the shapes it relies on."""
    def bad(what: str, value: Any) -> DeployError:
        return DeployError(f"{path}: {what}, got {_show(value)}; is it a pipeline-core bundle's metadata?")

    if not isinstance(metadata, dict):
        raise bad("expected an object", metadata)
    if metadata.get("task") not in TASKS:
        raise bad(f"'task' must be one of {list(TASKS)}", metadata.get("task"))
    spec = metadata.get("input")
    if not (isinstance(spec, dict) and isinstance(spec.get("name"), str) and isinstance(spec.get("shape"), list) and len(spec["shape"]) >= 2
            and all(isinstance(d, int) and d > 0 for d in spec["shape"][1:])
            and (spec.get("dtype") in _ONNX_DTYPES.values() or (spec.get("dtype") == "object" and "columns" in metadata))):
        raise bad("'input' must be {\"name\": ..., \"shape\": [batch, positive sizes...], \"dtype\": ...}", spec)
    if "columns" in metadata:
        _check_columns(path, metadata)
    outputs = metadata.get("outputs")
    if not (isinstance(outputs, list) and outputs and all(isinstance(o, dict) and isinstance(o.get("name"), str) and isinstance(o.get("shape"), list) for o in outputs)):
        raise bad("'outputs' must be a list of {\"name\": ..., \"shape\": [...]}", outputs)
    for key in ("classes", "feature_names"):
        if not (isinstance(metadata.get(key, []), list) and all(isinstance(v, str) for v in metadata.get(key, []))):
            raise bad(f"'{key}' must be a list of names", metadata.get(key))
    independent = metadata.get("batch_independent", {})
    if not (isinstance(independent, dict) and all(isinstance(k, str) and isinstance(v, bool) for k, v in independent.items())):
        raise bad("'batch_independent' must map file names to true or false", independent)
    _check_input_range(path, metadata.get("input_range"))


def _check_columns(path: Path, metadata: dict[str, Any]) -> None:
    """``columns``: one entry per raw column the model takes, with a known type, named as ``feature_names``
    and counted by the input shape; a category lists its values, a yes/no column its spellings."""
    columns = metadata["columns"]
    sound = isinstance(columns, list) and columns and all(
        isinstance(c, dict) and isinstance(c.get("name"), str) and c.get("type") in COLUMN_TYPES
        and (c["type"] != "category" or (isinstance(c.get("values"), list) and all(isinstance(v, str) for v in c["values"])))
        and (c["type"] != "binary" or all(isinstance(c.get(k), list) and all(isinstance(v, str) for v in c[k]) for k in ("true", "false")))
        for c in columns)
    if not sound:
        raise DeployError(f"{path}: 'columns' must list {{\"name\", \"type\": one of {list(COLUMN_TYPES)}, ...}} for each column; "
                          f"got {_show(columns)}; is it a pipeline-core bundle's metadata?")
    for column in columns:
        bounds = [column.get(key) for key in ("min", "max")]
        if column["type"] == "number" and bounds != [None, None] and not (
                all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bounds) and bounds[0] <= bounds[1]):
            raise DeployError(f"{path}: column {column['name']!r}'s training range must be finite numbers, min <= max; got {_show(bounds)}; "
                              "is it a pipeline-core bundle's metadata?")
    names = [c["name"] for c in columns]
    if names != metadata.get("feature_names") or [len(names)] != metadata["input"]["shape"][1:] or metadata["input"]["dtype"] != "object":
        raise DeployError(f"{path}: 'columns' {_show(names)} disagree with 'feature_names' {_show(metadata.get('feature_names'))} or "
                          f"the input {_show(metadata['input'])}; is it a pipeline-core bundle's metadata?")


def _check_input_range(path: Path, record: Any) -> None:
    """``input_range``: ``{"per": "feature" | "channel", "min": [...], "max": [...]}``, finite bounds,
    min ≤ max (how many there must be is checked with the other counts, by :func:`_count_disagreements`)."""
    if record is None:
        return
    try:
        low = np.asarray(record["min"], dtype=np.float64)
        high = np.asarray(record["max"], dtype=np.float64)
        sound = (record["per"] in ("feature", "channel") and low.ndim == 1 and low.shape == high.shape
                 and bool(np.isfinite(low).all() and np.isfinite(high).all() and (low <= high).all()))
    except (KeyError, TypeError, ValueError):
        sound = False
    if not sound:
        raise DeployError(f"{path}: 'input_range' must be {{\"per\": \"feature\" or \"channel\", \"min\": [...], \"max\": [...]}} "
                          f"with finite bounds, min <= max; got {_show(record)}; is it a pipeline-core bundle's metadata?")


def _range_count(metadata: dict[str, Any]) -> str | None:
    """How ``input_range``'s bounds disagree with the input shape (one per value of a row, or per channel)."""
    record, shape = metadata.get("input_range"), metadata["input"]["shape"][1:]
    if record is None:
        return None
    wanted = math.prod(shape) if record["per"] == "feature" else shape[0]
    if len(record["min"]) == wanted:
        return None
    return (f"metadata.json's input_range gives {len(record['min'])} bound(s) per {record['per']}, but its input shape {shape} "
            f"takes {wanted}")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


class _Absent:
    def __repr__(self) -> str:
        return "absent"


def _first_difference(ours: Any, theirs: Any, where: str) -> tuple[str, Any, Any]:
    """The deepest key under which two JSON values differ (lists are compared whole)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in sorted(set(ours) | set(theirs), key=str):
            if key not in ours or key not in theirs or _canonical(ours[key]) != _canonical(theirs[key]):
                return _first_difference(ours.get(key, _Absent()), theirs.get(key, _Absent()), f"{where}.{key}")
    return where, ours, theirs


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _props_disagreements(metadata: dict[str, Any], props: dict[str, str]) -> list[str]:
    """``model.onnx``'s metadata_props (each value a string, or JSON for other values) against
    ``metadata.json``: the exporter writes both from one dict."""
    problems = []
    for key in sorted(props):
        if key not in metadata:
            problems.append(f"model.onnx's metadata_props state {key!r} = {_show(_parsed(props[key]))}, but metadata.json has no {key!r}")
            continue
        stated = metadata[key]
        embedded = props[key] if isinstance(stated, str) else _parsed(props[key])
        if _canonical(stated) != _canonical(embedded):
            where, ours, theirs = _first_difference(stated, embedded, key)
            problems.append(f"metadata.json says {where!r} is {_show(ours)}, but model.onnx's metadata_props say {_show(theirs)}")
    return problems


def _dims_agree(stated: Sequence[Any], declared: Sequence[Any]) -> bool:
    """Whole sizes must be equal; a named size (the batch axis) must be named in both."""
    if len(stated) != len(declared):
        return False
    return all(a == b if isinstance(a, int) else not isinstance(b, int) for a, b in zip(stated, declared, strict=True))


def _graph_disagreements(metadata: dict[str, Any], session: Any) -> list[str]:
    """``metadata.json``'s input and outputs against the ONNX graph's own declarations."""
    problems = []
    spec, inputs = metadata["input"], session.get_inputs()
    if "columns" in metadata:
        problems += _column_disagreements(metadata["columns"], inputs)
    elif len(inputs) != 1:
        problems.append(f"metadata.json describes one input {spec['name']!r}, but model.onnx's graph takes {len(inputs)}: {[i.name for i in inputs]}")
    else:
        graph = inputs[0]
        dtype = _ONNX_DTYPES.get(graph.type.removeprefix("tensor(").removesuffix(")"), graph.type)
        if graph.name != spec["name"]:
            problems.append(f"metadata.json names the input {spec['name']!r}, but model.onnx's graph names it {graph.name!r}")
        if dtype != spec["dtype"]:
            problems.append(f"metadata.json says the input {spec['name']!r} is {spec['dtype']}, but model.onnx's graph takes {dtype}")
        if not _dims_agree(spec["shape"], graph.shape):
            problems.append(f"metadata.json gives the input {spec['name']!r} the shape {spec['shape']}, but model.onnx's graph declares {list(graph.shape)}")
    stated = {o["name"]: o["shape"] for o in metadata["outputs"]}
    declared = {o.name: o.shape for o in session.get_outputs()}
    if list(stated) != list(declared):
        problems.append(f"metadata.json lists the outputs {list(stated)}, but model.onnx's graph has {list(declared)}")
    for name in stated.keys() & declared.keys():
        if not _dims_agree(stated[name], declared[name]):
            problems.append(f"metadata.json gives the output {name!r} the shape {stated[name]}, but model.onnx's graph declares {list(declared[name])}")
    return problems


def _column_disagreements(columns: list[dict[str, Any]], inputs: Sequence[Any]) -> list[str]:
    """``metadata.json``'s columns against the graph's inputs: one per column, named and typed as it."""
    declared = {graph.name: graph for graph in inputs}
    if [c["name"] for c in columns] != [graph.name for graph in inputs]:
        return [f"metadata.json lists the columns {[c['name'] for c in columns]}, but model.onnx's graph takes the inputs {list(declared)}"]
    problems = []
    for column in columns:
        graph = declared[column["name"]]
        wanted = "tensor(float)" if column["type"] == "number" else "tensor(string)"
        if graph.type != wanted or not _dims_agree(["batch", 1], graph.shape):
            problems.append(f"metadata.json says column {column['name']!r} is a {column['type']} ({wanted}, [batch, 1]), but model.onnx's "
                            f"graph takes {graph.type} {list(graph.shape)}")
    return problems


def _count_disagreements(metadata: dict[str, Any], session: Any) -> list[str]:
    """Counts stated twice: feature names against the input's width, classes against the output's."""
    problems = []
    shape, features = metadata["input"]["shape"], metadata.get("feature_names") or []
    if features and len(features) != math.prod(shape[1:]):
        problems.append(f"metadata.json lists {len(features)} feature names {_show(features)}, but its input shape {shape} takes {math.prod(shape[1:])} value(s) per row")
    first = metadata["outputs"][0]["name"]
    declared = next((o.shape for o in session.get_outputs() if o.name == first), None)
    width = declared[-1] if declared and len(declared) >= 2 and isinstance(declared[-1], int) else None
    classes, task = metadata.get("classes") or [], metadata["task"]
    if task == "multiclass" and classes and width is not None and width != len(classes):
        problems.append(f"metadata.json lists {len(classes)} classes {_show(classes)}, but model.onnx's output {first!r} gives {width} value(s) per row (shape {list(declared)})")
    if (problem := _range_count(metadata)) is not None:
        problems.append(problem)
    if task == "binary" and (len(classes) not in (0, 2) or width not in (None, 1)):
        problems.append(f"a binary model has 2 classes and one output value per row; metadata.json lists {_show(classes)} and model.onnx's output {first!r} has the shape {list(declared or [])}")
    return problems


def _cross_check(folder: Path, metadata: dict[str, Any], session: Any) -> None:
    props = dict(session.get_modelmeta().custom_metadata_map)
    problems = [*_props_disagreements(metadata, props), *_graph_disagreements(metadata, session), *_count_disagreements(metadata, session)]
    if problems:
        raise DeployError(f"{folder}: the bundle contradicts itself, so it was changed after export (or put together by hand); refusing it: {'; '.join(problems)}")
