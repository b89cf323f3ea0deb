"""V2 inputs of a model that takes raw table columns: one tensor per column, named as the column,
shape ``[N, 1]``, ``FP32`` for a number column and ``BYTES`` (strings) for a category or yes/no
column, as ``tritonclient``'s ``InferInput(name, [N, 1], "BYTES")`` sends them; decoded from REST
JSON, REST binary data (Triton's ``binary_tensor_data``: each string its 4-byte little-endian length
then its bytes) or gRPC (``fp32_contents``, ``bytes_contents`` or ``raw_input_contents``) into the
rows the rest of the server takes: an object array ``[N, columns]`` in the model's column order,
typed cell by cell afterwards by ``predict.check_rows``, with ``predict.py``'s messages.

A blank is NaN in a number column (``null`` in JSON, which has no NaN) and ``""`` (or ``NA``) in a
string column.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pipeline_core_deploy.serve.protocol import DATATYPES, TensorSpec, bad_request
from pipeline_core_deploy.table_columns import TableColumns


def column_specs(columns: TableColumns) -> list[TensorSpec]:
    """The V2 inputs of a model of raw columns: ``FP32`` for numbers, ``BYTES`` for the rest, each ``[-1, 1]``."""
    return [TensorSpec(column.name, "FP32" if column.kind == "number" else "BYTES", (-1, 1)) for column in columns.columns]


def _check_names(names: list[Any], specs: list[TensorSpec]) -> None:
    expected = [spec.name for spec in specs]
    if sorted(map(str, names)) != sorted(expected) or len(set(names)) != len(names):
        missing = [name for name in expected if name not in names]
        unknown = [name for name in names if name not in expected]
        detail = "; ".join(part for part in (f"missing {missing}" if missing else "", f"unknown {unknown}" if unknown else "",
                                             "an input named twice" if len(set(names)) != len(names) else "") if part)
        raise bad_request(f"inputs {names} do not match the model's ({detail}); it takes one input per column: "
                          + ", ".join(spec.describe() for spec in specs))


def _check_shape(shape: list[int], spec: TensorSpec, where: str) -> int:
    if len(shape) != 2 or shape[1] != 1 or shape[0] < 1:
        raise bad_request(f"{where}: shape {shape} does not match the model's input; expected [N, 1] (N rows, one value each)")
    return shape[0]


def _strings(raw: bytes | memoryview, count: int, where: str) -> tuple[list[str], int]:
    """``count`` strings of Triton's binary BYTES layout from the start of ``raw``, and the bytes they took."""
    values, offset = [], 0
    for _ in range(count):
        if offset + 4 > len(raw):
            raise bad_request(f"{where}: the binary data ends inside the length of string {len(values) + 1} of {count}")
        length = int.from_bytes(raw[offset : offset + 4], "little")
        if offset + 4 + length > len(raw):
            raise bad_request(f"{where}: string {len(values) + 1} of {count} says {length} bytes, more than the binary data holds")
        try:
            values.append(bytes(raw[offset + 4 : offset + 4 + length]).decode("utf-8"))
        except UnicodeDecodeError:
            raise bad_request(f"{where}: string {len(values) + 1} is not UTF-8 text") from None
        offset += 4 + length
    return values, offset


def _json_column(data: Any, count: int, spec: TensorSpec, where: str) -> list[Any]:
    """The values of a column's JSON ``data`` (flat, or nested as [N, 1]): numbers or null for FP32, strings (or null) for BYTES."""
    values = data
    if isinstance(values, list) and values and all(isinstance(v, list) for v in values):
        if any(len(v) != 1 for v in values):
            raise bad_request(f"{where}: 'data' is nested with rows of {sorted({len(v) for v in values})[:4]} values; each row holds one value")
        values = [v[0] for v in values]
    if not isinstance(values, list) or len(values) != count:
        raise bad_request(f"{where}: 'data' must be a list of {count} value(s), flat or nested as [N, 1]")
    allowed = (int, float) if spec.datatype == "FP32" else (str,)
    for row, value in enumerate(values, start=1):
        if value is not None and (isinstance(value, bool) or not isinstance(value, allowed)):
            what = "numbers (or null for a blank)" if spec.datatype == "FP32" else "strings (or null for a blank)"
            raise bad_request(f"{where}: data row {row} holds {value!r}; a {spec.datatype} column takes {what}")
    return [math.nan if v is None and spec.datatype == "FP32" else "" if v is None else v for v in values]


def rest_columns(inputs: list[dict[str, Any]], binary: memoryview, specs: list[TensorSpec]) -> tuple[np.ndarray, int]:
    """REST ``inputs`` (JSON ``data`` or binary data, in the order given) as rows ``[N, columns]``; and the binary bytes used."""
    _check_names([tensor.get("name") for tensor in inputs], specs)
    by_name = {spec.name: spec for spec in specs}
    decoded: dict[str, list[Any]] = {}
    offset, count = 0, None
    for tensor in inputs:
        spec = by_name[tensor["name"]]
        where = f"input {spec.name!r}"
        if tensor.get("datatype") != spec.datatype:
            raise bad_request(f"{where}: datatype {tensor.get('datatype')!r} does not match the model's; expected {spec.datatype} [N, 1]")
        shape = tensor.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise bad_request(f"{where}: 'shape' must be a list of non-negative integers, got {shape!r}")
        rows = _check_shape(shape, spec, where)
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise bad_request(f"{where}: binary_data_size is {size!r}, but the body holds {len(binary) - offset} bytes of binary data")
            chunk = binary[offset : offset + size]
            if spec.datatype == "FP32":
                if size != rows * 4:
                    raise bad_request(f"{where}: binary_data_size is {size}; shape {shape} of FP32 needs {rows * 4} bytes")
                decoded[spec.name] = np.frombuffer(chunk, dtype=DATATYPES["FP32"]).astype(np.float64).tolist()
            else:
                values, used = _strings(chunk, rows, where)
                if used != size:
                    raise bad_request(f"{where}: binary_data_size is {size} but its {rows} strings take {used} bytes")
                decoded[spec.name] = values
            offset += size
        elif "data" in tensor:
            decoded[spec.name] = _json_column(tensor["data"], rows, spec, where)
        else:
            raise bad_request(f"{where}: no 'data' (nor parameters.binary_data_size)")
        if count is not None and rows != count:
            raise bad_request(f"{where}: {rows} rows, but the other inputs hold {count}; every column holds one value per row")
        count = rows
    return _rows(decoded, specs), offset


def grpc_columns(request: Any, specs: list[TensorSpec]) -> np.ndarray:
    """A ``ModelInferRequest``'s column tensors as rows ``[N, columns]``."""
    names = [tensor.name for tensor in request.inputs]
    _check_names(names, specs)
    by_name = {spec.name: spec for spec in specs}
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(names):
        raise bad_request(f"raw_input_contents holds {len(raw)} entries for {len(names)} inputs; send every input raw, or none")
    decoded: dict[str, list[Any]] = {}
    count = None
    for index, tensor in enumerate(request.inputs):
        spec, where = by_name[tensor.name], f"input {tensor.name!r}"
        if tensor.datatype != spec.datatype:
            raise bad_request(f"{where}: datatype {tensor.datatype!r} does not match the model's; expected {spec.datatype} [N, 1]")
        rows = _check_shape(list(tensor.shape), spec, where)
        typed = tensor.contents.fp32_contents if spec.datatype == "FP32" else tensor.contents.bytes_contents
        if raw:
            if len(typed):
                raise bad_request(f"{where}: send the tensor once, in raw_input_contents or in contents, not both")
            if spec.datatype == "FP32":
                if len(raw[index]) != rows * 4:
                    raise bad_request(f"{where}: raw_input_contents holds {len(raw[index])} bytes; shape [{rows}, 1] of FP32 needs {rows * 4}")
                values: list[Any] = np.frombuffer(raw[index], dtype=DATATYPES["FP32"]).astype(np.float64).tolist()
            else:
                values, used = _strings(raw[index], rows, where)
                if used != len(raw[index]):
                    raise bad_request(f"{where}: raw_input_contents holds {len(raw[index]) - used} bytes after its {rows} strings")
        else:
            if len(typed) != rows:
                field = "fp32_contents" if spec.datatype == "FP32" else "bytes_contents"
                raise bad_request(f"{where}: contents.{field} holds {len(typed)} value(s) but shape [{rows}, 1] needs {rows}")
            try:
                values = list(typed) if spec.datatype == "FP32" else [value.decode("utf-8") for value in typed]
            except UnicodeDecodeError:
                raise bad_request(f"{where}: a string is not UTF-8 text") from None
        if count is not None and rows != count:
            raise bad_request(f"{where}: {rows} rows, but the other inputs hold {count}; every column holds one value per row")
        decoded[spec.name], count = values, rows
    return _rows(decoded, specs)


def _rows(decoded: dict[str, list[Any]], specs: list[TensorSpec]) -> np.ndarray:
    count = len(decoded[specs[0].name])
    rows = np.empty((count, len(specs)), dtype=object)
    for index, spec in enumerate(specs):
        rows[:, index] = decoded[spec.name]
    return rows
