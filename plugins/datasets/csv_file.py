"""Your own tabular data from a CSV file: a header row, one column as the target.

Class labels are read from the file (strings or integers) and kept with the loaded data, so predictions come
back as your labels. Every cell is checked: a non-numeric feature names its row and column.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from pipeline_core import ConfigError, DatasetContext, DataSpec, Register, SplitOptions, hookimpl, split_options

if TYPE_CHECKING:
    from pipeline_core import LoadedData

#: With ``task = "auto"``, whole-number targets with at most this many distinct values are classes.
MAX_AUTO_CLASSES = 20


def _read(path: Path, delimiter: str) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as stream:
            rows = [row for row in csv.reader(stream, delimiter=delimiter) if any(cell.strip() for cell in row)]
    except FileNotFoundError:
        raise ConfigError(f"[data] path: CSV file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"[data] path: cannot read {path}: {error}") from None
    if len(rows) < 2:
        raise ConfigError(f"{path}: expected a header row and at least one data row")
    header = [cell.strip() for cell in rows[0]]
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ConfigError(f"{path}: line {number} has {len(row)} cells, the header has {len(header)}")
    return header, rows[1:]


def _as_float(cell: str, path: Path, line: int, column: str) -> float:
    try:
        return float(cell)
    except ValueError:
        raise ConfigError(f"{path}: line {line}, column {column!r}: {cell!r} is not a number") from None


def _task_of(values: list[str], task: str) -> str:
    numbers = []
    for value in values:
        try:
            numbers.append(float(value))
        except ValueError:
            break
    if task != "auto":
        return task
    if len(numbers) < len(values):
        return "binary" if len(set(values)) == 2 else "multiclass"
    if all(n.is_integer() for n in numbers) and len(set(numbers)) <= MAX_AUTO_CLASSES:
        return "binary" if len(set(numbers)) == 2 else "multiclass"
    return "regression"


def _label_order(values: list[str]) -> list[str]:
    distinct = set(values)
    try:
        return sorted(distinct, key=float)  # numeric labels in numeric order: "2" before "10"
    except ValueError:
        return sorted(distinct)


@dataclass(frozen=True)
class _Table:
    """A CSV file read and its columns chosen: everything but the numbers themselves."""

    file: Path
    header: list[str]
    rows: list[list[str]]
    features: list[str]
    labels: list[str]
    task: str
    classes: tuple[str, ...]


def _table(context: DatasetContext, path: str, target: str, features: list[str] | None, task: str, delimiter: str) -> _Table:
    file = Path(path) if Path(path).is_absolute() else context.base_dir / path
    header, rows = _read(file, delimiter)
    if target not in header:
        raise ConfigError(f"{file}: no target column {target!r}; the columns are {header}")
    chosen = features if features is not None else [name for name in header if name != target]
    unknown = [name for name in chosen if name not in header]
    if unknown or target in chosen or not chosen:
        problem = (
            f"unknown feature column(s) {unknown}" if unknown
            else "the features must be other columns than the target" if target in chosen
            else "[data] features = [] selects no column" if features is not None
            else f"there is no column besides the target {target!r}, so no feature to learn from"
        )
        raise ConfigError(f"{file}: {problem}; the columns are {header}")
    labels = [row[header.index(target)].strip() for row in rows]
    kind = _task_of(labels, task)
    classes = () if kind == "regression" else tuple(_label_order(labels))
    if kind == "binary" and len(classes) != 2:
        raise ConfigError(f"{file}: task 'binary' needs exactly 2 labels in {target!r}, found {len(classes)}: {list(classes)[:10]}")
    return _Table(file, header, rows, chosen, labels, kind, classes)


@split_options()
def csv_dataset(
    context: DatasetContext,
    *,
    path: str,
    target: str,
    features: list[str] | None = None,
    task: Literal["auto", "multiclass", "binary", "regression"] = "auto",
    delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ",",
    split: SplitOptions,
) -> LoadedData:
    """A CSV file with a header; ``target`` is the label column, ``features`` the inputs (default: the rest).

    ``path`` is relative to the pipeline file. ``task = "auto"`` treats text labels and whole numbers
    with at most 20 distinct values as classes, anything else as regression.
    """
    import numpy as np

    from pipeline_core import split_tabular

    table = _table(context, path, target, features, task, delimiter)
    file, header = table.file, table.header
    columns = [header.index(name) for name in table.features]
    x = np.array(
        [[_as_float(row[c], file, line, header[c]) for c in columns] for line, row in enumerate(table.rows, start=2)],
        dtype=np.float32,
    )
    if table.task == "regression":
        y = np.array([_as_float(v, file, line, target) for line, v in enumerate(table.labels, start=2)], dtype=np.float32)
    else:
        index = {label: i for i, label in enumerate(table.classes)}
        y = np.array([index[v] for v in table.labels], dtype=np.int64)
    return split_tabular(
        x, y, split, task=table.task, seed=context.seed, classes=table.classes, feature_names=tuple(table.features),  # type: ignore[arg-type]
        description=f"CSV file {file.name}",
    )


def csv_spec(
    context: DatasetContext, *, path: str, target: str, features: list[str] | None, task: str, delimiter: str, **split: object
) -> DataSpec:
    """The loaded data's spec from the header and the target column, without parsing a feature."""
    table = _table(context, path, target, features, task, delimiter)
    outputs = 1 if table.task != "multiclass" else len(table.classes)
    return DataSpec(table.task, (len(table.features),), outputs, table.classes, tuple(table.features))  # type: ignore[arg-type]


@hookimpl
def register_datasets(register: Register) -> None:
    register("csv", csv_dataset, spec=csv_spec)
