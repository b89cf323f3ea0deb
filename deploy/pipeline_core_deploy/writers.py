"""Writing predictions: CSV with a header, or a JSON list of records, a chunk of rows at a time, to
a file (atomically: a complete file or none) or to standard output.

Why its own module: output is where a large input could exhaust memory and where a failure could
leave half a file behind, so both are handled here once: rows are predicted and written
``OUTPUT_CHUNK`` (images ``IMAGE_CHUNK``) at a time, and a file is written beside its target and
renamed into place.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from pipeline_core_deploy.bundle import Bundle
from pipeline_core_deploy.common import DeployError
from pipeline_core_deploy.images import ImageFiles
from pipeline_core_deploy.records import OUT_OF_RANGE, _table, predictions
from pipeline_core_deploy.row_checks import RANGE_MARGIN, check_outputs, out_of_range_names, refuse_out_of_range

#: rows predicted and written at a time, so the output never holds every row's record at once
OUTPUT_CHUNK = 65536
#: images decoded, predicted and written at a time (a folder of them streams through)
IMAGE_CHUNK = 256


@dataclass(frozen=True)
class RowChecks:
    """What is checked of each chunk besides its values: the training range (``range_check``: None,
    ``flag`` or ``refuse``, with ``margin``), and where rows are, for messages (``source`` and ``locate``)."""

    source: str
    locate: Callable[[int], str] | None = None
    range_check: str | None = None
    margin: float = RANGE_MARGIN


def _predict_chunk(bundle: Bundle, rows: np.ndarray, first_row: int, batch_size: int, checks: RowChecks) -> tuple[dict[str, np.ndarray], list[list[str]] | None]:
    """The outputs for one chunk of rows starting at data row ``first_row`` (from 0), checked, and
    each row's out-of-range features when they are flagged."""
    if checks.range_check == "refuse":
        refuse_out_of_range(bundle, rows, checks.margin, checks.source, checks.locate, first_row)
    outputs = bundle.run(rows, batch_size)
    check_outputs(bundle, outputs, checks.source, checks.locate, first_row, rows)
    flags = out_of_range_names(bundle, rows, checks.margin) if checks.range_check == "flag" else None
    if checks.range_check == "flag" and flags is None:
        raise DeployError(f"{bundle.folder} records no training range of its inputs (exported by an earlier version), so "
                          "--range-check flag cannot check rows; export it again with `pipeline export RUN`")
    return outputs, flags


def _write_chunk(stream: TextIO, writer: Any, bundle: Bundle, rows: np.ndarray, first_row: int, batch_size: int, as_json: bool,
                 named: list[str] | None, checks: RowChecks) -> None:
    """One chunk of :func:`_write_records` (its own function, so the chunk's records are gone before the next's)."""
    outputs, flags = _predict_chunk(bundle, rows, first_row, batch_size, checks)
    first = first_row == 0
    if as_json:  # the text json.dumps(records, indent=1) gives for all rows, a chunk at a time
        records = predictions(bundle, outputs)
        if flags is not None:
            records = [{**record, OUT_OF_RANGE: flagged} for record, flagged in zip(records, flags, strict=True)]
        records = [{"file": name, **record} for name, record in zip(named, records, strict=True)] if named is not None else records
        stream.write(("[\n" if first else ",\n") + json.dumps(records, indent=1)[2:-2])
        return
    names, labels, values = _table(bundle, outputs)
    table: Iterator[list[Any]] = iter(values.tolist()) if labels is None else ([label, *row] for label, row in zip(labels, values.tolist(), strict=True))
    if flags is not None:
        table = ([*row, "; ".join(flagged)] for row, flagged in zip(table, flags, strict=True))
    if first:
        header = (["file"] if named is not None else []) + (names if labels is None else ["label", *names])
        writer.writerow(header + ([OUT_OF_RANGE] if flags is not None else []))
    writer.writerows(table if named is None else ([name, *row] for name, row in zip(named, table, strict=True)))


def _write_records(stream: TextIO, bundle: Bundle, rows: np.ndarray | ImageFiles, batch_size: int, as_json: bool, checks: RowChecks,
                   files: list[str] | None, chunk: int) -> None:
    """Predict ``rows`` and write them ``chunk`` at a time: CSV with a header, or a JSON list of
    records; with ``files``, each row's file comes first."""
    writer = csv.writer(stream, lineterminator="\n")
    for start in range(0, len(rows), chunk):
        named = files[start : start + chunk] if files is not None else None
        _write_chunk(stream, writer, bundle, rows[start : start + chunk], start, batch_size, as_json, named, checks)
    if as_json:
        stream.write("\n]\n")


OUTPUT_FORMATS = (".csv", ".json")


def check_output_path(output: Path, input_path: Path) -> None:
    """Refuse an output that would overwrite the input, that is not .csv or .json, or whose folder is
    missing: before any work, with what would be right."""
    if output.suffix.lower() not in OUTPUT_FORMATS:
        raise DeployError(f"--output {output}: predictions are written as .csv or .json, and {output.suffix or 'no suffix'!r} "
                          f"is neither; name the file {output.with_suffix('.csv').name} or {output.with_suffix('.json').name}")
    if output.exists() and input_path.exists() and output.resolve() == Path(input_path).resolve():
        raise DeployError(f"--output {output} is the input file; writing the predictions there would destroy the rows they came from: "
                          "choose another file")
    if output.is_dir():
        raise DeployError(f"--output {output} is a folder; give a file name such as {output / 'predictions.csv'}")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise DeployError(f"--output {output}: the folder {parent} does not exist; create it first (mkdir -p {parent})")


def write_predictions(bundle: Bundle, rows: np.ndarray | ImageFiles, output: Path | None, batch_size: int = 1024, files: list[str] | None = None,
                      checks: RowChecks | None = None, chunk: int | None = None) -> None:
    """Predict ``rows`` (checked by :func:`read_inputs`, or :class:`ImageFiles`) and write CSV, or
    JSON when ``output`` ends in .json, to ``output`` (atomically: a complete file or none) or as
    CSV to standard output; ``files`` names each row's image file in a first column. ``checks`` says
    what else is checked of each row (the training range) and how messages name rows. ``chunk`` rows
    are predicted and written at a time (default ``OUTPUT_CHUNK``, ``IMAGE_CHUNK`` with ``files``):
    what the output holds at once, whatever the input's size."""
    checks = checks or RowChecks("input")
    chunk = chunk or (OUTPUT_CHUNK if files is None else IMAGE_CHUNK)
    if output is None:
        _write_records(sys.stdout, bundle, rows, batch_size, False, checks, files, chunk)
        return
    temporary = output.with_name(f".{output.name}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8", newline="") as stream:
            _write_records(stream, bundle, rows, batch_size, output.suffix.lower() == ".json", checks, files, chunk)
        temporary.replace(output)
    except OSError as error:
        raise DeployError(f"cannot write the predictions to {output}: {error.strerror or error}") from None
    finally:
        temporary.unlink(missing_ok=True)
