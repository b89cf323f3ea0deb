"""Rows of raw table columns for a model that takes them (``metadata.json`` lists ``columns``): the
values people have (text, numbers, blanks) checked against each column's type and made into the
inputs ``model.onnx`` takes, one per column.

Why its own module: a model trained on a table of typed columns encodes them itself (blanks filled,
categories one-hot), so the deploy side must hand it each column as it is, typed as the graph wants
(``float32`` with NaN for a blank number, a string for a category or a yes/no value), and refuse
what would be silently misread: text in a number column, a yes/no column holding something else.
A category value never seen in training is not refused: the model answers it from its unknown bucket,
as it was trained to (the column's known values are in ``metadata.json``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline_core_deploy.common import DeployError

#: cells that mean "no value", compared case-insensitively after stripping spaces (as in training)
BLANK_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "#n/a"})
COLUMN_TYPES = ("number", "category", "binary")


def is_blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and value.strip().lower() in BLANK_TOKENS


@dataclass(frozen=True)
class TableColumn:
    name: str
    kind: str
    #: a category's values seen in training; a yes/no column's accepted spellings (lower case)
    known: tuple[str, ...] = ()
    #: a number column's training range (None when the bundle records none)
    low: float | None = None
    high: float | None = None

    def describe(self) -> str:
        if self.kind == "number":
            return f"{self.name!r} (number)"
        if self.kind == "binary":
            return f"{self.name!r} (yes/no)"
        return f"{self.name!r} (category)"


@dataclass(frozen=True)
class TableColumns:
    """The columns a bundle's model takes, in order (``metadata.json``'s ``columns``)."""

    columns: tuple[TableColumn, ...]

    @classmethod
    def from_metadata(cls, entries: list[dict[str, Any]]) -> TableColumns:
        columns = []
        for entry in entries:
            known = entry.get("values", []) if entry["type"] == "category" else [*entry.get("true", []), *entry.get("false", [])]
            columns.append(TableColumn(entry["name"], entry["type"], tuple(str(value) for value in known), entry.get("min"), entry.get("max")))
        return cls(tuple(columns))

    @functools.cached_property
    def ranged(self) -> list[int]:
        """The positions of the number columns with a training range: what a range check looks at."""
        return [i for i, column in enumerate(self.columns) if column.kind == "number" and column.low is not None and column.high is not None]

    def range_values(self, rows: np.ndarray) -> np.ndarray:
        """The ranged number columns of typed rows as float64 (NaN for a blank, which no range flags)."""
        return rows[:, self.ranged].astype(np.float64)

    @functools.cached_property
    def names(self) -> list[str]:
        return [column.name for column in self.columns]

    def describe(self) -> str:
        return f"{len(self.columns)} column(s) per row: {', '.join(column.describe() for column in self.columns)}"

    def typed(self, rows: Any, source: str, locate: Callable[[int], str] | None = None) -> np.ndarray:
        """``rows`` (a list of rows, each a list of values in column order, or an array of them)
        checked cell by cell: an object array (rows, columns) of floats (NaN for a blank) in number
        columns and stripped strings (``""`` for a blank) elsewhere. Messages name the data row
        (from 1), its place in the file (``locate``) and the column."""
        table = np.asarray(rows, dtype=object)
        if table.ndim == 1 and len(table) == len(self.columns) and not any(isinstance(v, (list, tuple)) for v in table):
            table = table.reshape(1, -1)
        if table.ndim != 2 or table.shape[1] != len(self.columns) or len(table) == 0:
            got = f"rows of {table.shape[1]} value(s)" if table.ndim == 2 else f"an array of shape {list(table.shape)}"
            raise DeployError(f"{source}: got {got}; the bundle expects {self.describe()}")
        typed = np.empty(table.shape, dtype=object)
        for index, column in enumerate(self.columns):
            for row, value in enumerate(table[:, index]):
                typed[row, index] = self._cell(column, value, lambda row=row: f"{source}{locate(row) if locate else ''}: data row {row + 1}")
        return typed

    @staticmethod
    def _cell(column: TableColumn, value: Any, place: Callable[[], str]) -> float | str:
        if is_blank(value):
            return math.nan if column.kind == "number" else ""
        if column.kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float, str, np.number)):
                raise DeployError(f"{place()}, column {column.name!r}: {value!r} is not a number (a number column takes numbers, or a blank)")
            try:
                number = float(value)
            except ValueError:
                raise DeployError(f"{place()}, column {column.name!r}: {value!r} is not a number (a number column takes numbers, "
                                  "or a blank)") from None
            if not math.isfinite(number):
                raise DeployError(f"{place()}, column {column.name!r}: {value!r} is not finite; a blank is written as an empty cell or NA")
            return number
        if column.kind == "binary" and isinstance(value, bool):  # JSON true/false
            return str(value).lower()
        if not isinstance(value, str):
            raise DeployError(f"{place()}, column {column.name!r}: {value!r} is not text; a {column.kind} column takes strings "
                              f"{'such as ' + ', '.join(map(repr, column.known[:5])) if column.known else ''}")
        text = value.strip()
        if column.kind == "binary" and text.lower() not in column.known:
            raise DeployError(f"{place()}, column {column.name!r}: {text!r} is not a yes/no value; it takes {'/'.join(column.known)} "
                              "(any case) or a blank")
        return text

    def feeds(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Typed rows (:meth:`typed`) as the inputs ``model.onnx`` takes: one ``[rows, 1]`` array per column."""
        return {column.name: (rows[:, index].astype(np.float32) if column.kind == "number" else rows[:, index].astype(object)).reshape(-1, 1)
                for index, column in enumerate(self.columns)}
