"""Your own tabular data from a CSV (or Parquet) file: a header row, one column as the target.

Class labels are read from the file (strings or integers) and kept with the loaded data, so predictions come
back as your labels. A table whose features are all numbers without blanks is a float matrix, as it
always was. A table with text, yes/no or blank cells has typed columns (``number``, ``category``,
``binary``; :mod:`pipeline_core.data.columns` has the rules, ``[data.columns]`` overrides them): each
column's encoding is fitted on the training split and the exported model takes the raw columns.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from pipeline_core import ConfigError, DatasetContext, DataSpec, Register, SplitOptions, hookimpl, is_blank, split_options

if TYPE_CHECKING:
    import numpy as np

    from pipeline_core import LoadedData

ColumnKind = Literal["number", "category", "binary"]

#: With ``task = "auto"``, whole-number targets with at most this many distinct values are classes.
MAX_AUTO_CLASSES = 20


def _read_parquet(path: Path) -> tuple[list[str], list[list[str]]]:
    """A Parquet file as text cells (a null as a blank, a number as its exact decimal text), so its
    columns are typed by the rules a CSV's are."""
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise ConfigError(f"[data] path: {path} is a Parquet file, which needs pyarrow: pip install pyarrow") from None
    try:
        table = parquet.read_table(path)
    except FileNotFoundError:
        raise ConfigError(f"[data] path: Parquet file not found: {path}") from None
    except (OSError, ValueError) as error:
        raise ConfigError(f"[data] path: cannot read {path} as Parquet: {error}") from None
    columns = [["" if value is None else repr(value) if isinstance(value, float) else str(value) for value in column.to_pylist()]
               for column in table.columns]
    if table.num_rows == 0:
        raise ConfigError(f"{path}: expected at least one data row")
    return list(table.column_names), [list(row) for row in zip(*columns, strict=True)]


def _read(path: Path, delimiter: str) -> tuple[list[str], list[list[str]]]:
    if path.suffix.lower() == ".parquet":
        return _read_parquet(path)
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


def _is_plain_numbers(table: _Table, declared: dict[str, ColumnKind]) -> bool:
    """Whether every feature cell is a number (no blank, no text) and no type is declared: such a
    table is read as a float matrix, exactly as before typed columns existed."""
    if declared:
        return False
    columns = [table.header.index(name) for name in table.features]
    return all(not is_blank(row[c]) and _is_number(row[c]) for row in table.rows for c in columns)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _targets(table: _Table, target: str) -> np.ndarray:
    import numpy as np

    blank = [line for line, value in enumerate(table.labels, start=2) if is_blank(value)]
    if blank:
        lines = ", ".join(map(str, blank[:10])) + (f" and {len(blank) - 10} more" if len(blank) > 10 else "")
        raise ConfigError(f"{table.file}: the target column {target!r} is blank on line(s) {lines}; a row without a target "
                          "teaches nothing: remove those rows (or fill them) before training")
    if table.task == "regression":
        return np.array([_as_float(v, table.file, line, target) for line, v in enumerate(table.labels, start=2)], dtype=np.float32)
    index = {label: i for i, label in enumerate(table.classes)}
    return np.array([index[v] for v in table.labels], dtype=np.int64)


@split_options()
def csv_dataset(
    context: DatasetContext,
    *,
    path: str,
    target: str,
    features: list[str] | None = None,
    task: Literal["auto", "multiclass", "binary", "regression"] = "auto",
    delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ",",
    columns: dict[str, ColumnKind] | None = None,
    fill: Literal["mean", "median"] = "mean",
    missing_indicator: bool = False,
    max_categories: Annotated[int, Field(ge=2)] = 50,
    split: SplitOptions,
) -> LoadedData:
    """A CSV (or ``.parquet``) file with a header; ``target`` is the label column, ``features`` the inputs (default: the rest).

    ``path`` is relative to the pipeline file. ``task = "auto"`` treats text labels and whole numbers
    with at most 20 distinct values as classes, anything else as regression. Columns with text,
    yes/no values or blanks are typed (``columns`` declares a column's type: ``number``, ``category``
    or ``binary``); blank numbers are filled with the training ``fill`` (``mean`` or ``median``), with
    a was-missing column when ``missing_indicator``; a text column with more than ``max_categories``
    distinct values is refused.
    """
    import numpy as np

    from pipeline_core import split_columns, split_tabular

    table = _table(context, path, target, features, task, delimiter)
    y = _targets(table, target)
    declared = dict(columns or {})
    if _is_plain_numbers(table, declared):
        file, header = table.file, table.header
        indices = [header.index(name) for name in table.features]
        x = np.array(
            [[_as_float(row[c], file, line, header[c]) for c in indices] for line, row in enumerate(table.rows, start=2)],
            dtype=np.float32,
        )
        return split_tabular(
            x, y, split, task=table.task, seed=context.seed, classes=table.classes, feature_names=tuple(table.features),  # type: ignore[arg-type]
            description=f"CSV file {file.name}",
        )
    cells = {name: [row[table.header.index(name)] for row in table.rows] for name in table.features}
    return split_columns(cells, y, split, task=table.task, seed=context.seed, classes=table.classes, declared=declared,  # type: ignore[arg-type]
                         max_categories=max_categories, fill=fill, missing_indicator=missing_indicator, where=str(table.file),
                         description=f"table {table.file.name}")


def csv_spec(
    context: DatasetContext, *, path: str, target: str, features: list[str] | None, task: str, delimiter: str,
    columns: dict[str, ColumnKind] | None, fill: str, missing_indicator: bool, max_categories: int, **split: object
) -> DataSpec:
    """The loaded data's spec from the header and the target column, without parsing a feature; a
    table of typed columns is loaded, since its width follows from the categories of its training split."""
    table = _table(context, path, target, features, task, delimiter)
    if not _is_plain_numbers(table, dict(columns or {})):
        return csv_dataset(context, path=path, target=target, features=features, task=task, delimiter=delimiter, columns=columns,
                           fill=fill, missing_indicator=missing_indicator, max_categories=max_categories, **split).spec
    outputs = 1 if table.task != "multiclass" else len(table.classes)
    return DataSpec(table.task, (len(table.features),), outputs, table.classes, tuple(table.features))  # type: ignore[arg-type]


@hookimpl
def register_datasets(register: Register) -> None:
    register("csv", csv_dataset, spec=csv_spec)
