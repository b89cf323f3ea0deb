"""What rows must be before the model runs them, and what its answers must be before anyone sees
them: the input shape and dtype (:func:`check_rows`), the training range (:func:`out_of_range`,
:func:`refuse_out_of_range`) and outputs that are numbers (:func:`check_outputs`).

Why its own module: files (``predict``) and the server's requests go through these same checks, so
both give the same message for the same rows, and the two cannot drift.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from pipeline_core_deploy.bundle import Bundle
from pipeline_core_deploy.common import DeployError, _show

#: how far beyond its training range a value may lie before it is flagged, as a fraction of that range
#: (``--range-margin``): with 0.5, a feature seen between 1 and 7 is flagged below -2 and above 10
RANGE_MARGIN = 0.5
RANGE_CHECKS = ("flag", "refuse")


@functools.lru_cache(maxsize=32)
def _float_top(model: np.dtype, given: np.dtype) -> float:
    """The largest magnitude a finite ``given`` value may have to be run by a ``model`` input:
    the model dtype's range when it is a narrower float, else any finite value."""
    if model.kind == "f" and given.itemsize > model.itemsize:
        return float(np.finfo(model).max)
    return float(np.finfo(given).max)


def check_rows(array: np.ndarray, bundle: Bundle, source: str, locate: Callable[[int], str] | None = None) -> np.ndarray:
    """``array`` checked and shaped to what the bundle's model takes: rows of the model's input shape,
    the same without its axes of size 1 (a grayscale image as [28, 28] for [1, 28, 28]), or flattened
    (as a CSV holds them), or one flattened row alone; finite, and representable in the model's dtype.
    Files and the server's requests go through this one check, so both get the same messages
    (prefixed with ``source``, and with what ``locate`` says of a row's place in its file). Another
    layout with the same count, (N, 2, 2) for a model of 4 features say, is refused: it is far more
    likely a mistake than a meaning."""
    if bundle.columns is not None:  # raw table columns: typed cell by cell
        return bundle.columns.typed(array, source, locate)
    shape, width = bundle.input_shape, math.prod(bundle.input_shape)
    if array.ndim == 1 and array.size == width:
        array = array.reshape(1, width)
    if array.ndim == 0 or len(array) == 0:
        raise DeployError(f"{source} holds no rows: expected rows of {bundle.describe_input()}")
    if array.shape[1:] not in (shape, (width,), tuple(d for d in shape if d != 1)):
        flattened = f" (rows of shape {list(shape)}, or flattened to [{width}])" if len(shape) > 1 else ""
        raise DeployError(f"{source}: rows have shape {list(array.shape[1:])}; the bundle expects {bundle.describe_input()}{flattened}")
    flat = array.reshape(len(array), width)

    def where(bad: np.ndarray) -> tuple[str, Any]:
        row, column = (int(i) for i in np.argwhere(bad)[0])
        return f"{source}{locate(row) if locate else ''}: data row {row + 1}", (bundle.column(column), flat[row, column].item())

    dtype = bundle.input_dtype
    # one reduction decides the common case: the largest magnitude is NaN for a NaN, inf for an
    # infinity, and above the model dtype's range for a value it cannot hold (the server checks every
    # request here, and each NumPy call on a small array costs microseconds)
    if flat.dtype.kind == "f" and not np.abs(flat).max() <= _float_top(dtype, flat.dtype):
        if not np.isfinite(flat).all():
            place, (column, value) = where(~np.isfinite(flat))
            raise DeployError(f"{place} holds a value that is not finite (NaN or infinity) in {column}: {value}")
        top = _float_top(dtype, flat.dtype)
        place, (column, value) = where((flat > top) | (flat < -top))
        raise DeployError(f"{place}, {column} holds {value!r}: the model takes {dtype.name} inputs, which reach ±{top:.4g}")
    if dtype.kind in "iu" and array.dtype != dtype:
        info = np.iinfo(dtype)
        bad = (flat != np.round(flat)) | (flat < info.min) | (flat > info.max)
        if bad.any():
            place, (column, value) = where(bad)
            raise DeployError(f"{place}, {column} holds {value!r}: the model takes {dtype.name} inputs; values must be whole numbers in [{info.min}, {info.max}]")
    return array.reshape(len(array), *shape).astype(dtype, copy=False)


def _flat(rows: np.ndarray) -> np.ndarray:
    return rows.reshape(len(rows), -1)


def out_of_range(bundle: Bundle, rows: np.ndarray, margin: float = RANGE_MARGIN) -> np.ndarray | None:
    """Which values of ``rows`` (checked by :func:`check_rows`) lie outside their training range by
    more than ``margin`` of it: a (rows, values) mask; None when the bundle records no range."""
    record = bundle.input_range
    return None if record is None else record.outside(bundle.range_values(rows), margin)


def out_of_range_names(bundle: Bundle, rows: np.ndarray, margin: float = RANGE_MARGIN) -> list[list[str]] | None:
    """For each row, the features (or channels) outside their training range by more than ``margin``."""
    mask, record = out_of_range(bundle, rows, margin), bundle.input_range
    if mask is None or record is None:
        return None
    flagged = mask.any(axis=1)
    return [record.names_outside(mask[row]) if flagged[row] else [] for row in range(len(rows))]


def refuse_out_of_range(bundle: Bundle, rows: np.ndarray, margin: float, source: str, locate: Callable[[int], str] | None = None,
                        first_row: int = 0) -> None:
    """Refuse ``rows`` when one lies outside the training range by more than ``margin``, naming the
    first such row and value (the strict mode: ``--range-check refuse``). A bundle that records no
    range cannot be checked, and is refused too: a strict check that passes everything is no check."""
    mask, record = out_of_range(bundle, rows, margin), bundle.input_range
    if mask is None or record is None:
        raise DeployError(f"{bundle.folder} records no training range of its inputs (exported by an earlier version), so "
                          "--range-check refuse cannot check rows; export it again with `pipeline export RUN`, or use --range-check flag")
    if mask.any():
        row, index = (int(i) for i in np.argwhere(mask)[0])
        place = f"{source}{locate(first_row + row) if locate else ''}: data row {first_row + row + 1}"
        raise DeployError(f"{place}: {record.describe(index, bundle.range_values(rows)[row, index].item(), margin)}; "
                          "refusing it (strict range check); predictions this far from the training data are guesses")


def check_outputs(bundle: Bundle, outputs: dict[str, np.ndarray], source: str, locate: Callable[[int], str] | None = None,
                  first_row: int = 0, rows: np.ndarray | None = None) -> None:
    """Refuse outputs that are not finite, naming the first such row: a NaN logit would still have an
    argmax, so without this check a row the model cannot answer would get a label. ``rows`` (the
    inputs) let the message say which of the row's values are outside the training range."""
    for name, value in outputs.items():
        if value.dtype.kind != "f" or np.isfinite(value).all():  # one reduction decides the common case
            continue
        row = int(np.argwhere(~np.isfinite(_flat(value)))[0][0])
        place = f"{source}{locate(first_row + row) if locate else ''}: data row {first_row + row + 1}"
        outside = out_of_range_names(bundle, rows[row : row + 1]) if rows is not None else None
        why = (f"; its value(s) {', '.join(map(repr, outside[0]))} lie far outside the training range" if outside and outside[0]
               else "")
        raise DeployError(f"{place}: the model's output {name!r} is not finite ({_show(_flat(value)[row].tolist(), 120)}){why}; "
                          "no answer computed from it can be trusted, so none is given")
