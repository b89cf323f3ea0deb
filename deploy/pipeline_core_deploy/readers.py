"""Rows from a file (CSV, JSON or NPY) or from parsed JSON, checked and shaped to what the model
takes: :func:`read_inputs`, :func:`read_located` and :func:`rows_from_json`.

Why its own module: it is the one door rows come in by, whatever their format; the server parses
request bodies with :func:`rows_from_json` too, so a request gets the message a file would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline_core_deploy.bundle import Bundle
from pipeline_core_deploy.common import DeployError, _read_json, _show
from pipeline_core_deploy.csv_input import _columns_by_name, _read_csv
from pipeline_core_deploy.images import images_from_json
from pipeline_core_deploy.row_checks import check_rows

INPUT_FORMATS = (".csv", ".npy", ".json", ".parquet")


def _read_json_rows(path: Path, bundle: Bundle) -> tuple[np.ndarray, None]:
    return rows_from_json(_read_json(path, "input file"), bundle, str(path)), None


def _first_bad_row(data: list[Any]) -> str:
    """Which row stops a list of rows from being one array of numbers."""
    first = None
    for number, row in enumerate(data, start=1):
        try:
            shape = np.asarray(row, dtype=np.float64).shape
        except (TypeError, ValueError):
            return f"; data row {number} holds something other than numbers: {_show(row, 80)}"
        if first is not None and shape != first:
            return f"; data row {number} has shape {list(shape)}, data row 1 {list(first)}"
        first = shape
    return ""


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
    if all(isinstance(row, dict) and set(row) == {"b64"} for row in data):  # images, base64-encoded
        return images_from_json(data, bundle, source)
    if all(isinstance(row, dict) for row in data):
        for number, row in enumerate(data, start=1):
            _columns_by_name(list(row), bundle, f"{source}: data row {number}")
        data = [[row[name] for name in bundle.feature_names] for row in data]
    if bundle.columns is not None:  # raw table columns: text and blanks are values here, typed by check_rows
        return np.asarray(data, dtype=object)
    culprit = _first_non_number(data)
    if culprit is not None:
        number, value = culprit
        raise DeployError(f"{source}: data row {number} holds {value!r} ({type(value).__name__}), which is not a JSON number; "
                          f"every value must be a number: expected {bundle.describe_input()}")
    try:
        array = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise DeployError(f"{source}: every value must be a number and every row the same length{_first_bad_row(data)}; "
                          f"expected {bundle.describe_input()}") from None
    return array


_NUMBER_TYPES = frozenset({int, float})


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _first_non_number(data: list[Any]) -> tuple[int, Any] | None:
    """The first value of a list of rows (or of one row) that is not a JSON number, with its row
    (from 1): the string "2", true and null are not numbers, though NumPy would read the first two as
    2.0 and 1.0. All-number lists are decided a nesting level at a time at C speed."""
    level = data
    while (kinds := set(map(type, level))) == {list}:
        level = [value for inner in level for value in inner]
    if kinds <= _NUMBER_TYPES:
        return None
    rows = data if any(isinstance(row, list) for row in data) else [data]
    for number, row in enumerate(rows, start=1):
        for value in _leaves(row):
            if type(value) not in _NUMBER_TYPES:
                return number, value
    return None


def _read_npy(path: Path, bundle: Bundle) -> tuple[np.ndarray, None]:
    if bundle.columns is not None:
        raise DeployError(f"{path}: this model takes raw table columns ({bundle.describe_input()}), which a .npy array of "
                          "numbers cannot hold; give a .csv or .json file with a header or keys naming the columns")
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise DeployError(f"{path}: {error}; expected a numeric array") from None
    if array.dtype.kind not in "biuf":
        raise DeployError(f"{path}: expected a numeric array, got dtype {array.dtype}")
    if array.size == 0:
        raise DeployError(f"{path} is empty: expected rows of {bundle.describe_input()}")
    return array, None


def _read_parquet(path: Path, bundle: Bundle) -> tuple[np.ndarray, Callable[[int], str]]:
    """Rows from a Parquet file (needs pyarrow, imported only here): its columns by the bundle's
    feature names, any order; a null is a blank (for a model of raw table columns) and is refused
    by name for a model of numbers, like a NaN."""
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise DeployError(f"{path} is a Parquet file, which needs pyarrow: pip install pyarrow (or give a .csv or .json file)") from None
    try:
        table = parquet.read_table(path)
    except (OSError, ValueError) as error:
        raise DeployError(f"{path}: cannot read it as Parquet: {error}") from None
    names = list(table.column_names)
    order = _columns_by_name(names, bundle, str(path)) if bundle.feature_names else list(range(len(names)))
    columns = [table.column(index).to_pylist() for index in order]
    if not columns or not columns[0]:
        raise DeployError(f"{path} holds no rows: expected rows of {bundle.describe_input()}")
    if bundle.columns is not None:
        return np.array(list(zip(*columns, strict=True)), dtype=object), lambda index: ""
    rows = list(zip(*columns, strict=True))
    culprit = _first_non_number([list(row) for row in rows])
    if culprit is not None:
        number, value = culprit
        raise DeployError(f"{path}: data row {number} holds {value!r}, which is not a number; expected {bundle.describe_input()}")
    return np.asarray(rows, dtype=np.float64), lambda index: ""


def read_located(path: Path, bundle: Bundle) -> tuple[np.ndarray, Callable[[int], str] | None]:
    """Rows from a CSV, NPY or JSON file, checked and shaped to what the bundle's model takes, and
    what says where a row is in the file (a CSV's line), for later messages about it."""
    path = Path(path)
    readers = {".csv": _read_csv, ".json": _read_json_rows, ".npy": _read_npy, ".parquet": _read_parquet}
    if path.suffix.lower() not in readers:
        raise DeployError(f"{path}: unsupported input format {path.suffix!r}; use one of {', '.join(INPUT_FORMATS)}")
    if not path.is_file():
        raise DeployError(f"input file not found: {path}")
    if path.stat().st_size == 0:
        raise DeployError(f"{path} is empty: expected rows of {bundle.describe_input()}")
    array, locate = readers[path.suffix.lower()](path, bundle)
    return check_rows(array, bundle, str(path), locate), locate


def read_inputs(path: Path, bundle: Bundle) -> np.ndarray:
    """Rows from a CSV, NPY or JSON file, checked and shaped to what the bundle's model takes."""
    return read_located(path, bundle)[0]
