"""The Open Inference Protocol (KServe v2 REST) on the wire: tensors as JSON or as binary data,
datatypes, and the errors a request can earn.

Only the encoding lives here; what a model accepts is checked by ``predict.check_rows``, so a
request gets the same message ``predict.py`` gives for the same rows in a file. Binary tensors
follow Triton's ``binary_tensor_data`` extension (the ``Inference-Header-Content-Length`` header),
which ``tritonclient`` uses by default. JSON goes through orjson (about 4× faster than the standard
library on a 784-value MNIST request), with the standard library as the fallback for what orjson
refuses, such as the ``NaN`` that Python clients write, so NaN still gets predict.py's message.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

HEADER_LENGTH = "Inference-Header-Content-Length"

#: v2 datatype names and the NumPy dtypes they travel as (little-endian, as the protocol fixes).
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_NAMES = {dtype: name for name, dtype in DATATYPES.items()}


class ProtocolError(Exception):
    """A request the server answers with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def bad_request(message: str) -> ProtocolError:
    return ProtocolError(400, message)


@functools.lru_cache(maxsize=64)  # every response names its tensors' datatypes
def datatype(dtype: np.dtype) -> str:
    """The v2 name of a NumPy dtype (``float32`` → ``FP32``)."""
    name = _NAMES.get(np.dtype(dtype).newbyteorder("<"))
    if name is None:
        raise ValueError(f"no Open Inference Protocol datatype for {dtype}")
    return name


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output as the protocol describes it; ``-1`` marks the batch axis."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def describe(self) -> str:
        return f"{self.name!r} ({self.datatype}, shape {list(self.shape)})"

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class InferRequest:
    """A decoded ``…/infer`` body: the single input the bundles take, and what to send back."""

    id: str | None
    array: np.ndarray
    outputs: list[str] | None  # None: every output
    binary: set[str]  # outputs to send as binary data


def loads(data: bytes) -> Any:
    """Parsed JSON, as ``json.loads`` would give it (NaN and infinities included)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)  # NaN, Infinity, integers beyond 64 bits; or the real error message


def dumps(document: Any) -> bytes:
    """Compact JSON; NumPy arrays are written directly (float32 values as float32)."""
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)


def parse_body(body: bytes, header_length: str | None) -> tuple[dict[str, Any], bytes]:
    """The JSON part of a request body and the binary part after it (empty without one)."""
    if header_length is None:
        json_part, binary = body, b""
    else:
        try:
            size = int(header_length)
        except ValueError:
            raise bad_request(f"{HEADER_LENGTH} must be a whole number of bytes, got {header_length!r}") from None
        if not 0 < size <= len(body):
            raise bad_request(f"{HEADER_LENGTH} is {size}, but the body has {len(body)} bytes")
        json_part, binary = body[:size], body[size:]
    if not json_part.strip():
        raise bad_request("the request body is empty: expected a JSON object")
    return json_object(json_part), binary


def json_object(body: bytes) -> dict[str, Any]:
    """A request body that must be one JSON object, or the 400 that says what it is instead."""
    try:
        document = loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise bad_request(f"the request body is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise bad_request(f"the request body must be a JSON object, got {type(document).__name__}")
    return document


def _shape(tensor: dict[str, Any], where: str) -> list[int]:
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise bad_request(f"{where}: 'shape' must be a list of non-negative integers, got {shape!r}")
    return shape


def _expected_shape(spec: TensorSpec) -> str:
    return f"[N, {', '.join(map(str, spec.shape[1:]))}] (N rows, the batch axis first)"


def check_shape(shape: list[int], spec: TensorSpec, where: str) -> None:
    """The tensor's shape must be the model's, batch axis first: [N, 4] for a model of 4 features, never
    [4] or [1, 2, 2], though they hold as many values (a layout the model does not declare is a mistake)."""
    if len(shape) != len(spec.shape) or tuple(shape[1:]) != spec.shape[1:]:
        raise bad_request(f"{where}: shape {shape} does not match the model's input; expected {_expected_shape(spec)}")


#: the Python types a JSON ``data`` value may have, per v2 datatype (orjson gives ints and floats; bool is not an int here)
_NUMBERS, _BOOLEANS = frozenset({int, float}), frozenset({bool})


def _json_values(data: Any, shape: list[int], spec: TensorSpec, where: str) -> list[Any]:
    """The values of a JSON ``data`` list, flat, after checking that it is flat or nested exactly as
    ``shape`` says and holds only what ``spec``'s datatype takes (numbers for FP32: never the string
    "2", nor true). Checked a nesting level at a time with C-speed ``map``: a 784-value row costs microseconds."""
    allowed = _BOOLEANS if spec.datatype == "BOOL" else _NUMBERS
    what = "true or false" if spec.datatype == "BOOL" else "numbers"
    if not isinstance(data, list):
        raise bad_request(f"{where}: 'data' must be a list of {what}, flat or nested as the shape {shape} says; got {_kind(data)}")
    level, nested = data, [len(data)]
    while True:
        kinds = set(map(type, level))
        if kinds <= allowed:
            break
        if kinds != {list}:
            culprit = next(value for value in level if type(value) not in allowed and not isinstance(value, list))
            raise bad_request(f"{where}: 'data' holds {_kind(culprit)}; a {spec.datatype} tensor takes {what} only")
        lengths = set(map(len, level))
        if len(lengths) != 1:
            raise bad_request(f"{where}: 'data' is a ragged list (inner lists of {sorted(lengths)[:4]} values); "
                              f"send it flat or nested exactly as the shape {shape} says")
        nested.append(lengths.pop())
        level = [value for inner in level for value in inner]
    if len(nested) == 1 and nested[0] != math.prod(shape):
        raise bad_request(f"{where}: 'data' holds {nested[0]} value(s) but shape {shape} needs {math.prod(shape)}")
    if nested != shape and nested != [math.prod(shape)]:
        raise bad_request(f"{where}: 'data' is nested as {nested}, but the shape says {shape}; send it flat "
                          f"({math.prod(shape)} values) or nested exactly as the shape")
    return level


def _kind(value: Any) -> str:
    names = {str: "a string", bool: "a boolean", type(None): "null", dict: "an object", list: "a list"}
    return f"{names.get(type(value), type(value).__name__)} ({_clip(repr(value))})"


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else f"{text[:limit]}…"


def _decode_tensor(tensor: dict[str, Any], spec: TensorSpec, binary: memoryview, offset: int, where: str) -> tuple[np.ndarray, int]:
    shape = _shape(tensor, where)
    declared = tensor.get("datatype")
    if declared != spec.datatype:
        raise bad_request(f"{where}: datatype {declared!r} does not match the model's; expected {spec.datatype} (shape {list(spec.shape)})")
    check_shape(shape, spec, where)
    count = math.prod(shape)
    size = (tensor.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        dtype = DATATYPES[spec.datatype]
        if not isinstance(size, int) or size != count * dtype.itemsize:
            raise bad_request(f"{where}: binary_data_size is {size!r}; shape {shape} of {spec.datatype} needs {count * dtype.itemsize} bytes")
        if offset + size > len(binary):
            raise bad_request(f"{where}: the body holds {len(binary) - offset} bytes of binary data; binary_data_size says {size}")
        return np.frombuffer(binary[offset : offset + size], dtype=dtype).reshape(shape), offset + size
    if "data" not in tensor:
        raise bad_request(f"{where}: no 'data' (nor parameters.binary_data_size)")
    values = _json_values(tensor["data"], shape, spec, where)
    try:  # numbers are read as float64 first: the model's own check then refuses 1.5 for UINT8 by name
        array = np.asarray(values, dtype=np.bool_ if spec.datatype == "BOOL" else np.float64)
    except OverflowError:  # an integer beyond float64's range
        raise bad_request(f"{where}: 'data' holds an integer too large for any {spec.datatype} value") from None
    return array.reshape(shape), offset


def decode_infer(document: dict[str, Any], binary: bytes, model_input: TensorSpec, outputs: list[TensorSpec],
                 columns: list[TensorSpec] | None = None) -> InferRequest:
    """Check an ``…/infer`` request against the model's input (or, for a model of raw table columns,
    its ``columns`` inputs) and outputs, and decode its tensors."""
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, dict) for t in inputs):
        raise bad_request(f"'inputs' must be a list of tensors; the model takes {model_input.describe()}")
    names = [t.get("name") for t in inputs]
    if columns is not None:
        from pipeline_core_deploy.serve.column_inputs import rest_columns

        array, used = rest_columns(inputs, memoryview(binary), columns)
    else:
        unknown = [n for n in names if n != model_input.name]
        if unknown or len(names) != 1:
            raise bad_request(f"inputs {names} do not match the model's; it takes one input {model_input.describe()}")
        array, used = _decode_tensor(inputs[0], model_input, memoryview(binary), 0, f"input {model_input.name!r}")
    if used != len(binary):
        raise bad_request(f"the body holds {len(binary) - used} byte(s) of binary data that no input claims")
    parameters = document.get("parameters") or {}
    binary_default = bool(parameters.get("binary_data_output", False)) if isinstance(parameters, dict) else False
    known = [o.name for o in outputs]
    requested = document.get("outputs")
    if requested is None:
        return InferRequest(_request_id(document), array, None, set(known) if binary_default else set())
    if not isinstance(requested, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in requested):
        raise bad_request(f"'outputs' must be a list of objects with a 'name'; the model's outputs are {known}")
    wanted, send_binary = [], set()
    for output in requested:
        if output["name"] not in known:
            raise bad_request(f"unknown output {output['name']!r}; the model's outputs are {known}")
        wanted.append(output["name"])
        if (output.get("parameters") or {}).get("binary_data", binary_default):
            send_binary.add(output["name"])
    return InferRequest(_request_id(document), array, wanted, send_binary)


def _request_id(document: dict[str, Any]) -> str | None:
    value = document.get("id")
    return None if value is None else str(value)


def encode_infer(name: str, version: str, request: InferRequest, values: dict[str, np.ndarray],
                 parameters: dict[str, Any] | None = None) -> tuple[bytes, int | None]:
    """The response body (with the response-level ``parameters``, when there are any), and the JSON
    header's length when binary data follows it."""
    chosen = request.outputs if request.outputs is not None else list(values)
    tensors, chunks = [], []
    for output in chosen:
        value = values[output]
        tensor: dict[str, Any] = {"name": output, "datatype": datatype(value.dtype), "shape": list(value.shape)}
        if output in request.binary:
            raw = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")).tobytes()
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            tensor["data"] = np.ascontiguousarray(value.reshape(-1))
        tensors.append(tensor)
    response: dict[str, Any] = {"model_name": name, "model_version": version, "outputs": tensors}
    if request.id is not None:
        response["id"] = request.id
    if parameters:
        response["parameters"] = parameters
    header = dumps(response)
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)
