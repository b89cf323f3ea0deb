"""Rows from a CSV file: a header of the feature names (any order) or none, read by NumPy's own
parser when the file is a clean table, else cell by cell.

Why its own module: CSV is what people hand-edit, so it has the most ways to be wrong, and each
gets a message naming the line, the data row and the column (and a hint when the file is separated
by semicolons, tabs or bars instead of commas).
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

import numpy as np

from pipeline_core_deploy.bundle import Bundle
from pipeline_core_deploy.common import DeployError


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _columns_by_name(header: list[str], bundle: Bundle, source: str) -> list[int]:
    expected = bundle.feature_names
    repeated = {name: [i + 1 for i, h in enumerate(header) if h == name] for name in header if header.count(name) > 1}
    if repeated:
        listed = "; ".join(f"{name!r} {len(at)} times (columns {', '.join(map(str, at))})" for name, at in repeated.items())
        raise DeployError(f"{source}: the header names {listed}; each column may appear once; the bundle expects the columns {expected}")
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


def _open_text(path: Path) -> TextIO:
    return open(path, encoding="utf-8-sig", newline="")


def _csv_rows(path: Path, header: bool) -> Iterator[tuple[int, int, list[str]]]:
    """(data row counted from 1, line of the file, cells) for every row that is not blank, after the header."""
    try:
        with _open_text(path) as stream:
            reader = csv.reader(stream)
            number = -1 if header else 0
            for cells in reader:
                if any(cell.strip() for cell in cells):
                    number += 1
                    if number > 0:
                        yield number, reader.line_num, cells
    except UnicodeDecodeError as error:
        raise DeployError(f"{path} is not UTF-8 text: {error}") from None


def _csv_header(path: Path, bundle: Bundle) -> tuple[list[str] | None, int]:
    """The header (None when the first row that is not blank holds a number: it is data) and the
    number of lines up to the end of the header (0 without one)."""
    try:
        with _open_text(path) as stream:
            reader = csv.reader(stream)
            for cells in reader:
                if any(cell.strip() for cell in cells):
                    if any(_is_number(cell) for cell in cells):  # a header has no numbers; a bad data row has some
                        return None, 0
                    return [cell.strip() for cell in cells], reader.line_num
    except UnicodeDecodeError as error:
        raise DeployError(f"{path} is not UTF-8 text: {error}") from None
    raise DeployError(f"{path} is empty: expected rows of {bundle.describe_input()}")


def _csv_numbers(path: Path, skip: int, dtype: np.dtype) -> np.ndarray | None:
    """The file after its first ``skip`` lines as a table of ``dtype`` by NumPy's own parser (fast),
    or None when it reads no clean table of finite numbers; the cell-by-cell reader then says what is
    wrong. (NumPy parses a float32 cell as float64 and rounds that, as casting float64 rows would.)"""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": the cell reader says it better
            values = np.loadtxt(path, dtype=dtype, delimiter=",", comments=None, skiprows=skip, ndmin=2,
                                encoding="utf-8-sig", quotechar='"')
    except ValueError:
        return None
    return values if np.isfinite(values).all() else None  # NaN, or beyond float32: the exact cell is in the message


def _csv_cells(path: Path, bundle: Bundle, header: list[str] | None) -> np.ndarray:
    """The rows read cell by cell: slow, but it names the line, row and column of the first bad cell."""
    width = math.prod(bundle.input_shape)
    names = header or bundle.feature_names
    rows = []
    for number, line, cells in _csv_rows(path, header is not None):
        if len(cells) != width:
            raise DeployError(f"{path}, line {line}: data row {number} has {len(cells)} values; the bundle expects {bundle.describe_input()}")
        try:
            rows.append([float(cell) for cell in cells])
        except ValueError:
            column = next(c for c, cell in enumerate(cells) if not _is_number(cell))
            label = repr(names[column]) if column < len(names) else column + 1
            raise DeployError(f"{path}, line {line}: data row {number}, column {label}: {cells[column]!r} is not a number") from None
    if not rows:
        raise DeployError(f"{path} has a header but no rows" if header else f"{path} is empty: expected rows of {bundle.describe_input()}")
    return np.asarray(rows, dtype=np.float64)


def _csv_line(path: Path, header: bool) -> Callable[[int], str]:
    """Where data row ``index + 1`` is in the file, for a message about it (reads the file again)."""

    def locate(index: int) -> str:
        return next((f", line {line}" for number, line, _ in _csv_rows(path, header) if number == index + 1), "")

    return locate


#: separators people save tables with instead of commas (a spreadsheet in a locale with decimal commas writes ';')
_OTHER_DELIMITERS = {";": "semicolons", "\t": "tabs", "|": "vertical bars"}


def _delimiter_hint(path: Path) -> str:
    """When the file's first line that is not blank has no comma but another separator, a sentence saying so."""
    try:
        with _open_text(path) as stream:
            line = next((line for line in stream if line.strip()), "")
    except (OSError, UnicodeDecodeError):
        return ""
    found = [name for mark, name in _OTHER_DELIMITERS.items() if mark in line]
    if "," in line or not found:
        return ""
    return (f"; the file's first line has no commas but {found[0]}: predict reads comma-separated values, so save the "
            "table as CSV with commas between columns (and points, not commas, as decimal marks)")


def _read_csv_columns(path: Path, bundle: Bundle) -> tuple[np.ndarray, Callable[[int], str]]:
    """The cells of a table for a model that takes raw columns (text and blanks kept as they are, typed
    by :func:`~pipeline_core_deploy.row_checks.check_rows`); the header naming the columns is required."""
    lines: list[int] = []
    cells: list[list[str]] = []
    header: list[str] | None = None
    try:
        with _open_text(path) as stream:
            reader = csv.reader(stream)
            for row in reader:
                if row in ([], [""]):  # an empty line; a line of commas is a row of blanks, and is kept
                    continue
                if header is None:
                    header, header_line = row, reader.line_num
                    order = _columns_by_name([cell.strip() for cell in header], bundle, f"{path}, line {header_line}")
                    continue
                if len(row) != len(header):
                    raise DeployError(f"{path}, line {reader.line_num}: data row {len(cells) + 1} has {len(row)} cells, the header {len(header)}")
                cells.append([row[index] for index in order])
                lines.append(reader.line_num)
    except UnicodeDecodeError as error:
        raise DeployError(f"{path} is not UTF-8 text: {error}") from None
    if header is None:
        raise DeployError(f"{path} is empty: expected a header naming the columns, then rows of {bundle.describe_input()}")
    if not cells:
        raise DeployError(f"{path} has a header but no rows")
    return np.asarray(cells, dtype=object), lambda index: f", line {lines[index]}"


def _read_csv(path: Path, bundle: Bundle) -> tuple[np.ndarray, Callable[[int], str]]:
    if bundle.columns is not None:
        return _read_csv_columns(path, bundle)
    try:
        header, skip = _csv_header(path, bundle)
        order = _columns_by_name(header, bundle, f"{path}, line {skip}") if header and bundle.feature_names else None
        # a float32 model's rows are parsed straight to float32 (half the memory); others need float64 to check them
        values = _csv_numbers(path, skip, np.dtype(np.float32 if bundle.input_dtype == np.float32 else np.float64))
        if values is None or len(values) == 0 or values.shape[1] != math.prod(bundle.input_shape):
            values = _csv_cells(path, bundle, header)
    except DeployError as error:
        raise DeployError(f"{error}{_delimiter_hint(path)}") from None
    if order is not None and order != sorted(order):
        values = values[:, order]
    return values, _csv_line(path, header is not None)
