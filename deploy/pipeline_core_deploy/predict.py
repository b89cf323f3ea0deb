"""Run a deploy bundle with onnxruntime alone.

This module imports neither torch nor the rest of pipeline_core: it needs Python, NumPy and
onnxruntime, and a copy of it ships inside every bundle as ``predict.py``::

    pip install onnxruntime numpy
    python bundle/predict.py bundle --input rows.csv --output predictions.csv

Loading is safe: every file is checked against the bundle's ``manifest.json`` (sha256) before use, and
an ONNX file whose weights live in external data outside the bundle is refused. Bad input gets an
error naming what the bundle expects (its feature names, input shape and dtype), never a traceback.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
METADATA = "metadata.json"
MODEL = "model.onnx"
BUNDLE_DIR = "bundle"
INPUT_FORMATS = (".csv", ".npy", ".json")


class DeployError(Exception):
    """A bad bundle or bad input; the message says what was expected (exit code 2)."""

    exit_code = 2


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeployError(f"{what} is missing: {path}") from None
    except (OSError, ValueError) as error:
        raise DeployError(f"{what} {path} cannot be read: {error}") from None


def bundle_folder(path: Path) -> Path:
    """``path`` itself, or its ``bundle/`` when ``path`` is a run folder."""
    if (path / BUNDLE_DIR / MANIFEST).is_file() and not (path / METADATA).is_file():
        return path / BUNDLE_DIR
    return path


def _external_locations(model: bytes) -> list[str]:
    """Where the model's tensors keep external data (needs the onnx package; without it,
    onnxruntime's own check that external data stays beside the model applies)."""
    try:
        import onnx
    except ImportError:
        return []
    proto = onnx.load_model_from_string(model)
    locations = []
    for tensor in proto.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            locations.extend(entry.value for entry in tensor.external_data if entry.key == "location")
    return locations


def _verified(folder: Path, name: str, expected: dict[str, Any]) -> bytes:
    if name not in expected:
        raise DeployError(f"{folder / MANIFEST} does not list {name}; refusing a file the bundle does not vouch for")
    try:
        data = (folder / name).read_bytes()
    except FileNotFoundError:
        raise DeployError(f"bundle file is missing: {folder / name}") from None
    if _sha256(data) != expected[name]["sha256"]:
        raise DeployError(
            f"bundle file {folder / name} does not match its sha256 in manifest.json "
            f"(expected {expected[name]['sha256'][:12]}…, found {_sha256(data)[:12]}…); refusing a modified bundle"
        )
    return data


@dataclass
class Bundle:
    """A verified bundle: its metadata and an onnxruntime session for its model."""

    folder: Path
    metadata: dict[str, Any]
    session: Any

    @property
    def task(self) -> str:
        return str(self.metadata["task"])

    @property
    def classes(self) -> list[str]:
        return list(self.metadata.get("classes", []))

    @property
    def feature_names(self) -> list[str]:
        return list(self.metadata.get("feature_names", []))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.metadata["input"]["shape"][1:])

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self.metadata["input"]["dtype"])

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def describe_input(self) -> str:
        width = math.prod(self.input_shape)
        names = f": {', '.join(self.feature_names)}" if self.feature_names else ""
        return f"{width} {self.input_dtype.name} value(s) per row, shape {list(self.input_shape)}{names}"

    def run(self, inputs: np.ndarray, batch_size: int = 1024) -> dict[str, np.ndarray]:
        """Every output of the model for ``inputs`` (already shaped and typed), in batches."""
        input_name = self.metadata["input"]["name"]
        names = [output["name"] for output in self.metadata["outputs"]]
        parts: list[list[np.ndarray]] = [[] for _ in names]
        for start in range(0, len(inputs), batch_size):
            for index, value in enumerate(self.session.run(names, {input_name: inputs[start : start + batch_size]})):
                parts[index].append(value)
        return {name: np.concatenate(values) for name, values in zip(names, parts, strict=True)}


def open_bundle(path: Path, device: str = "cpu", threads: int = 0) -> Bundle:
    """Verify and open a bundle folder (or a run folder holding ``bundle/``). ``threads`` sets
    onnxruntime's intra-op threads (0: its default, one per core); a server that runs several
    batches or models at once chooses fewer, so they do not fight over the cores."""
    folder = bundle_folder(Path(path))
    if not folder.is_dir():
        raise DeployError(f"no bundle at {path}: expected a folder holding {MANIFEST}, {METADATA} and {MODEL}")
    manifest = _read_json(folder / MANIFEST, "the bundle's manifest")
    files = manifest.get("files", {}) if isinstance(manifest, dict) else {}
    metadata = json.loads(_verified(folder, METADATA, files))
    model = _verified(folder, MODEL, files)
    root = folder.resolve()
    for location in _external_locations(model):
        target = (folder / location).resolve()
        if Path(location).is_absolute() or root not in target.parents:
            raise DeployError(f"{folder / MODEL} keeps weights in external data outside the bundle ({location!r}); refused")
        _verified(folder, target.relative_to(root).as_posix(), files)

    import onnxruntime

    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            raise DeployError("--device cuda: this onnxruntime has no CUDA provider; install onnxruntime-gpu")
        providers.insert(0, "CUDAExecutionProvider")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    if threads > 0:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(folder / MODEL), options, providers=providers)
    return Bundle(folder, metadata, session)


# ---------------------------------------------------------------------------------------------
# Reading inputs


def _number(cell: str, where: str) -> float:
    try:
        return float(cell)
    except ValueError:
        raise DeployError(f"{where}: {cell!r} is not a number") from None


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _columns_by_name(header: list[str], bundle: Bundle, source: str) -> list[int]:
    expected = bundle.feature_names
    missing = [name for name in expected if name not in header]
    unknown = [name for name in header if name not in expected]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing column(s) {missing}")
        if unknown:
            parts.append(f"unknown column(s) {unknown}")
        raise DeployError(f"{source}: {'; '.join(parts)}; the bundle expects the columns {expected}")
    return [header.index(name) for name in expected]


def _read_csv(path: Path, bundle: Bundle) -> np.ndarray:
    rows = [row for row in csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))) if any(c.strip() for c in row)]
    if not rows:
        raise DeployError(f"{path} is empty: expected rows of {bundle.describe_input()}")
    header: list[str] | None = None
    if not any(_is_number(cell) for cell in rows[0]):  # a header has no numbers; a bad data row has some
        header = [cell.strip() for cell in rows[0]]
        rows = rows[1:]
        if not rows:
            raise DeployError(f"{path} has a header but no rows")
    order = _columns_by_name(header, bundle, str(path)) if header and bundle.feature_names else None
    width = math.prod(bundle.input_shape)
    names = header or bundle.feature_names
    values = []
    for number, row in enumerate(rows, start=2 if header else 1):
        if len(row) != width:
            raise DeployError(f"{path}: row {number} has {len(row)} values; the bundle expects {bundle.describe_input()}")
        cells = [row[i] for i in order] if order else row
        columns = order or range(len(row))
        values.append([
            _number(cell, f"{path}: row {number}, column {repr(names[c]) if c < len(names) else c + 1}")
            for cell, c in zip(cells, columns, strict=True)
        ])
    return np.asarray(values, dtype=np.float64)


def _read_json_rows(path: Path, bundle: Bundle) -> np.ndarray:
    return rows_from_json(_read_json(path, "input file"), bundle, str(path))


def rows_from_json(data: Any, bundle: Bundle, source: str) -> np.ndarray:
    """Rows from parsed JSON: a list of rows (lists of numbers) or of objects keyed by feature name,
    or an object holding such a list under ``inputs`` or ``instances``. ``source`` starts every
    message (a file name, or ``request body`` for the server), so each says where the problem is."""
    if isinstance(data, dict):
        data = data.get("inputs", data.get("instances"))
        if data is None:
            raise DeployError(f"{source}: expected a list of rows, or an object with an 'inputs' list")
    if not isinstance(data, list) or not data:
        raise DeployError(f"{source} holds no rows: expected a list of rows of {bundle.describe_input()}")
    if all(isinstance(row, dict) for row in data):
        for number, row in enumerate(data, start=1):
            _columns_by_name(list(row), bundle, f"{source}: row {number}")
        data = [[row[name] for name in bundle.feature_names] for row in data]
    try:
        array = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError):
        raise DeployError(f"{source}: every value must be a number and every row the same length; expected {bundle.describe_input()}") from None
    return array


def _read_npy(path: Path, bundle: Bundle) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise DeployError(f"{path}: {error}; expected a numeric array") from None
    if array.dtype.kind not in "biuf":
        raise DeployError(f"{path}: expected a numeric array, got dtype {array.dtype}")
    if array.size == 0:
        raise DeployError(f"{path} is empty: expected rows of {bundle.describe_input()}")
    return array


def read_inputs(path: Path, bundle: Bundle) -> np.ndarray:
    """Rows from a CSV, NPY or JSON file, checked and shaped to what the bundle's model takes."""
    path = Path(path)
    readers = {".csv": _read_csv, ".json": _read_json_rows, ".npy": _read_npy}
    if path.suffix.lower() not in readers:
        raise DeployError(f"{path}: unsupported input format {path.suffix!r}; use one of {', '.join(INPUT_FORMATS)}")
    if not path.is_file():
        raise DeployError(f"input file not found: {path}")
    if path.stat().st_size == 0:
        raise DeployError(f"{path} is empty: expected rows of {bundle.describe_input()}")
    return check_rows(readers[path.suffix.lower()](path, bundle), bundle, str(path))


def check_rows(array: np.ndarray, bundle: Bundle, source: str) -> np.ndarray:
    """``array`` checked and shaped to what the bundle's model takes: any row layout with the right
    number of values, finite, and representable in the model's dtype. Files and the server's
    requests go through this one check, so both get the same messages (prefixed with ``source``)."""
    shape, width = bundle.input_shape, math.prod(bundle.input_shape)
    if array.ndim == 1 and array.size == width:
        array = array.reshape(1, width)
    if array.ndim == 0 or len(array) == 0:
        raise DeployError(f"{source} holds no rows: expected rows of {bundle.describe_input()}")
    if math.prod(array.shape[1:]) != width:  # any row layout with the right count: (N, 784), (N, 28, 28), ...
        raise DeployError(f"{source}: rows have shape {list(array.shape[1:])}; the bundle expects {bundle.describe_input()}")
    array = array.reshape(len(array), *shape)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        row = int(np.argwhere(~np.isfinite(array.reshape(len(array), -1)))[0][0]) + 1
        raise DeployError(f"{source}: row {row} holds a value that is not finite (NaN or infinity)")
    dtype = bundle.input_dtype
    if dtype.kind in "iu" and array.dtype != dtype:
        info = np.iinfo(dtype)
        if (array != np.round(array)).any() or array.min() < info.min or array.max() > info.max:
            raise DeployError(f"{source}: the model takes {dtype.name} inputs; values must be whole numbers in [{info.min}, {info.max}]")
    return array.astype(dtype, copy=False)


# ---------------------------------------------------------------------------------------------
# Predictions


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def predictions(bundle: Bundle, outputs: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """One record per row: the class label and its probabilities, or the predicted values."""
    raw = outputs[bundle.metadata["outputs"][0]["name"]]
    if bundle.task == "regression":
        values = raw.reshape(len(raw), -1)
        if values.shape[1] == 1:
            return [{"prediction": float(v[0])} for v in values]
        return [{f"prediction_{i}": float(x) for i, x in enumerate(v)} for v in values]
    probabilities = outputs.get("probabilities")
    if bundle.task == "binary":
        positive = (probabilities if probabilities is not None else 1 / (1 + np.exp(-raw))).reshape(-1)
        probabilities = np.stack([1 - positive, positive], axis=1)
    elif probabilities is None:
        probabilities = _softmax(raw)
    classes = bundle.classes or [str(i) for i in range(probabilities.shape[1])]
    return [
        {"label": classes[int(p.argmax())], **{f"probability_{c}": float(x) for c, x in zip(classes, p, strict=True)}}
        for p in probabilities
    ]


def write_predictions(records: list[dict[str, Any]], output: Path | None) -> None:
    """CSV (or JSON when ``output`` ends in .json) to ``output``, or CSV on standard output."""
    if output is not None and output.suffix.lower() == ".json":
        text = json.dumps(records, indent=1) + "\n"
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(records[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        text = buffer.getvalue()
    if output is None:
        sys.stdout.write(text)
        return
    temporary = output.with_name(f".{output.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(output)


def predict(bundle_path: Path, input_path: Path, output: Path | None = None, batch_size: int = 1024, device: str = "cpu") -> list[dict[str, Any]]:
    """Open ``bundle_path``, read ``input_path``, run the model, write the predictions."""
    if batch_size < 1:
        raise DeployError(f"--batch-size must be at least 1, got {batch_size}")
    bundle = open_bundle(bundle_path, device)
    records = predictions(bundle, bundle.run(read_inputs(input_path, bundle), batch_size))
    write_predictions(records, output)
    return records


def main(argv: Sequence[str] | None = None) -> int:
    """``python predict.py BUNDLE --input FILE [--output FILE] [--batch-size N] [--device cpu|cuda]``."""
    parser = argparse.ArgumentParser(prog="predict.py", description="Predict with a pipeline-core bundle using onnxruntime.")
    parser.add_argument("bundle", type=Path, help="the bundle folder (or a run folder holding bundle/)")
    parser.add_argument("--input", required=True, type=Path, help="rows to predict: .csv, .npy or .json")
    parser.add_argument("--output", type=Path, help="where to write predictions (.csv or .json); default: stdout")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args(argv)
    try:
        predict(args.bundle, args.input, args.output, args.batch_size, args.device)
    except DeployError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
