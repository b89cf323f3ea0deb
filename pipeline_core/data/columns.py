"""Typed table columns: what each column of a table is (``number``, ``category``, ``binary``), the
rules that decide it from the file, and the encoding fitted on the training split that turns raw
columns (strings, blanks) into the float matrix a network trains on.

Why its own module: the same fitted encoding must run in three places and give the same numbers
everywhere: here with NumPy while training, inside the exported ONNX graph
(:mod:`pipeline_core.export.column_graph`), and on the deploy side, which reads the description
:meth:`ColumnEncoder.describe` writes into ``metadata.json``. Torch-free: a dataset's spec can be
worked out without importing torch.

The rules (docs/data.md says them to users):

* A cell is **blank** when it is empty or one of :data:`BLANK_TOKENS` (case-insensitive): ``NA``,
  ``N/A``, ``NaN``, ``null``, ``None``, ``#N/A``.
* A column whose non-blank cells are all numbers is a ``number``. One whose cells are all spellings of
  yes and no (:data:`TRUE_SPELLINGS`, :data:`FALSE_SPELLINGS`; ``1``/``0`` only when declared, since
  they are numbers) is ``binary``. Any other column of text is a ``category`` when it has at most
  ``max_categories`` distinct values, else refused (an id or free text column teaches nothing a
  category can hold). A column with numbers and text mixed, or blank in every row, is refused. A
  declared type (``[data.columns]``) overrides the inference and is checked cell by cell.
* Every statistic is fitted on the training split only. ``number``: blanks filled with the training
  mean (or median), then standardized with the training mean and standard deviation of the filled
  values; with ``missing_indicator``, a column that had blanks in training gets a 0/1 "was missing"
  column next to it. ``category``: one-hot over the values seen in training, a blank its own value
  ``(missing)`` when training had blanks; a value never seen in training, or a blank when training had
  none, is the **unknown bucket**: every one-hot column 0. ``binary``: 1 for yes, -1 for no, 0 for a
  blank or anything else, plus a "was missing" column when training had blanks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from pipeline_core.errors import ConfigError

ColumnKind = Literal["number", "category", "binary"]
COLUMN_KINDS: tuple[ColumnKind, ...] = ("number", "category", "binary")
Fill = Literal["mean", "median"]

#: cells that mean "no value", compared case-insensitively after stripping spaces
BLANK_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "#n/a"})
TRUE_SPELLINGS = ("yes", "y", "true", "t", "1")
FALSE_SPELLINGS = ("no", "n", "false", "f", "0")
#: a text column with more distinct values than this is refused unless declared a category
MAX_CATEGORIES = 50
#: how a blank category cell is named among the category's values (one-hot column ``name=(missing)``)
MISSING_LEVEL = "(missing)"


def is_blank(cell: str) -> bool:
    return cell.strip().lower() in BLANK_TOKENS


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _binary_value(cell: str) -> float | None:
    """1.0 for a yes spelling, -1.0 for a no spelling, None for anything else."""
    word = cell.strip().lower()
    return 1.0 if word in TRUE_SPELLINGS else -1.0 if word in FALSE_SPELLINGS else None


def infer_kind(name: str, cells: Sequence[str], declared: ColumnKind | None, max_categories: int, where: str) -> ColumnKind:
    """The type of column ``name`` from its text ``cells`` (every row of the file), or ``declared``
    when given; a column whose type cannot be decided is a :class:`ConfigError` naming it. ``where``
    (the file) starts every message."""
    present = [cell.strip() for cell in cells if not is_blank(cell)]
    if not present:
        raise ConfigError(f"{where}: column {name!r} is blank in every row, so there is nothing to learn from it; "
                          "leave it out with [data] features = [...] (the columns to use)")
    if declared is not None:
        return declared
    numbers = [cell for cell in present if _is_number(cell)]
    if len(numbers) == len(present):
        return "number"
    if numbers:
        text = next(cell for cell in present if not _is_number(cell))
        raise ConfigError(f"{where}: column {name!r} mixes numbers ({numbers[0]!r}) and text ({text!r}), so its type cannot be "
                          f"decided; fix the cells, or declare it in [data.columns], e.g. {name} = \"category\" (or \"number\" "
                          "to refuse text cells by line)")
    if all(_binary_value(cell) is not None for cell in present):
        return "binary"
    distinct = len(set(present))
    if distinct > max_categories:
        raise ConfigError(f"{where}: column {name!r} has {distinct} distinct text values, more than max_categories = "
                          f"{max_categories}: an id or free text teaches a model nothing a category can hold; leave it out "
                          "with [data] features = [...], or raise [data] max_categories if it really is a category")
    return "category"


def parse_column(name: str, kind: ColumnKind, cells: Sequence[str], where: str, first_line: int = 2) -> np.ndarray:
    """Text cells as the raw values the encoding takes: float64 with NaN for blanks (``number``),
    stripped strings with ``""`` for blanks (``category``, ``binary``). A cell that does not fit its
    column's type is a :class:`ConfigError` naming its line (``first_line`` is the first cell's)."""
    if kind == "number":
        values = np.empty(len(cells), dtype=np.float64)
        for index, cell in enumerate(cells):
            if is_blank(cell):
                values[index] = math.nan
                continue
            try:
                values[index] = float(cell)
            except ValueError:
                raise ConfigError(f"{where}: line {first_line + index}, column {name!r}: {cell.strip()!r} is not a number, and "
                                  f"{name!r} is a number column; fix the cell, or declare {name} = \"category\" in [data.columns]") from None
            if not math.isfinite(values[index]):
                raise ConfigError(f"{where}: line {first_line + index}, column {name!r}: {cell.strip()!r} is not a finite number; "
                                  "a model cannot learn from it (leave the cell empty, or NA, for a blank)")
        return values
    texts = np.array(["" if is_blank(cell) else cell.strip() for cell in cells], dtype=object)
    if kind == "binary":
        for index, cell in enumerate(texts):
            if cell and _binary_value(cell) is None:
                raise ConfigError(f"{where}: line {first_line + index}, column {name!r}: {cell!r} is not a yes/no value; a binary "
                                  f"column holds {'/'.join(TRUE_SPELLINGS)} or {'/'.join(FALSE_SPELLINGS)} (any case), or a blank")
    return texts


@dataclass(frozen=True)
class ColumnEncoding:
    """One column's fitted encoding (see the module docstring); ``levels`` are a category's values
    seen in training, in one-hot order (:data:`MISSING_LEVEL` last when training had blanks)."""

    name: str
    kind: ColumnKind
    fill: float = 0.0
    mean: float = 0.0
    std: float = 1.0
    indicator: bool = False
    levels: tuple[str, ...] = ()
    #: a number column's smallest and largest value in the training split (what the deploy side flags rows far outside of)
    low: float = 0.0
    high: float = 0.0

    @property
    def encoded_names(self) -> list[str]:
        """The names of the float columns this column becomes, in order."""
        if self.kind == "category":
            return [f"{self.name}={level}" for level in self.levels]
        return [self.name, *([f"{self.name}=(missing)"] if self.indicator else [])]

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Raw values (as :func:`parse_column` gives them) → float32 (rows, len(encoded_names))."""
        if self.kind == "number":
            raw = np.asarray(values, dtype=np.float32)
            missing = np.isnan(raw)
            scaled = (np.where(missing, np.float32(self.fill), raw) - np.float32(self.mean)) / np.float32(self.std)
            parts = [scaled, missing.astype(np.float32)] if self.indicator else [scaled]
            return np.stack(parts, axis=1).astype(np.float32)
        texts = [str(value) for value in values]
        if self.kind == "category":
            index = {level: position for position, level in enumerate(self.levels)}
            blank = index.get(MISSING_LEVEL)
            table = np.vstack([np.eye(len(self.levels), dtype=np.float32), np.zeros((1, len(self.levels)), dtype=np.float32)])
            unknown = len(self.levels)  # the zero row: a value never seen in training
            rows = [(unknown if blank is None else blank) if is_blank(text) else index.get(text.strip(), unknown) for text in texts]
            return table[np.asarray(rows, dtype=np.int64)]
        signs = np.asarray([_binary_value(text) or 0.0 for text in texts], dtype=np.float32)
        parts = [signs, np.asarray([is_blank(text) for text in texts], dtype=np.float32)] if self.indicator else [signs]
        return np.stack(parts, axis=1)

    def describe(self) -> dict[str, Any]:
        """This column for ``metadata.json``: its name, type, what it accepts and how it is encoded."""
        entry: dict[str, Any] = {"name": self.name, "type": self.kind, "encoded_as": self.encoded_names}
        if self.kind == "number":
            entry.update(fill=self.fill, mean=self.mean, std=self.std, min=self.low, max=self.high)
        elif self.kind == "category":
            entry["values"] = [level for level in self.levels if level != MISSING_LEVEL]
        else:
            entry.update(true=list(TRUE_SPELLINGS), false=list(FALSE_SPELLINGS))
        return entry


def fit_column(name: str, kind: ColumnKind, train: np.ndarray, *, fill: Fill, missing_indicator: bool, standardize: bool) -> ColumnEncoding:
    """Column ``name``'s encoding fitted on its training-split raw values ``train``."""
    if kind == "number":
        present = train[~np.isnan(train)]
        if len(present) == 0:
            raise ConfigError(f"column {name!r} is blank in every row of the training split; nothing to fill its blanks with: "
                              "leave it out with [data] features = [...]")
        value = float(np.float32(np.mean(present) if fill == "mean" else np.median(present)))
        filled = np.where(np.isnan(train), value, train).astype(np.float32)
        mean, std = (float(filled.mean(dtype=np.float64)), float(filled.std(dtype=np.float64))) if standardize else (0.0, 1.0)
        mean, std = float(np.float32(mean)), float(np.float32(std if std > 0 else 1.0))
        return ColumnEncoding(name, kind, value, mean, std, missing_indicator and bool(np.isnan(train).any()),
                              low=float(present.min()), high=float(present.max()))
    blanks = any(text == "" for text in train)
    if kind == "category":
        levels = tuple(sorted({str(text) for text in train if text != ""}))
        if MISSING_LEVEL in levels:  # the name a blank takes among the values: a real value so named would be mistaken for it
            raise ConfigError(f"column {name!r} holds the value {MISSING_LEVEL!r}, which is how a blank is named among a "
                              "category's values; rename that value in the table")
        return ColumnEncoding(name, kind, levels=levels + ((MISSING_LEVEL,) if blanks else ()))
    return ColumnEncoding(name, kind, indicator=blanks)


@dataclass(frozen=True)
class ColumnEncoder:
    """Every feature column's fitted encoding, in the order of the encoded matrix's columns."""

    columns: tuple[ColumnEncoding, ...]

    @property
    def names(self) -> list[str]:
        return [column.name for column in self.columns]

    @property
    def encoded_names(self) -> list[str]:
        return [name for column in self.columns for name in column.encoded_names]

    def encode(self, raw: Mapping[str, np.ndarray]) -> np.ndarray:
        """Raw columns by name (as :func:`parse_column` gives them, one entry per row) → float32 (rows, encoded width)."""
        return np.concatenate([column.encode(raw[column.name]) for column in self.columns], axis=1).astype(np.float32)

    def describe(self) -> list[dict[str, Any]]:
        return [column.describe() for column in self.columns]


@dataclass(frozen=True)
class RawColumns:
    """What a dataset of typed columns hands on besides the encoded splits: the fitted encoder and
    each split's raw columns (for the export check, which runs the shipped model on raw rows)."""

    encoder: ColumnEncoder
    splits: dict[str, dict[str, np.ndarray]]

    def kinds(self) -> dict[str, ColumnKind]:
        return {column.name: column.kind for column in self.encoder.columns}
