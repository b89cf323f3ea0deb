"""A verified bundle as the rest of the deploy side uses it: :class:`Bundle` (the metadata, the
onnxruntime session, and what follows from them: input shape and dtype, the training range, batch
independence, the warnings a deployer should see) and :func:`variant_file` (which file runs a variant).

Why its own module: every reader, check and writer takes a :class:`Bundle`, and none of them needs
to know how one is verified and opened (:mod:`pipeline_core_deploy.opening` does that).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline_core_deploy.common import BASELINE_VARIANT, MODEL, DeployError
from pipeline_core_deploy.table_columns import TableColumns


@dataclass
class InputRange:
    """The range each input value took in the training split (``metadata.json``'s ``input_range``),
    spread to one low and one high bound per value of a flattened row: the yardstick a row far from
    anything the model was trained on is flagged by."""

    low: np.ndarray
    high: np.ndarray
    #: what position ``i`` is called: its feature's name, its channel (``channel 0``), or ``value i+1``
    names: tuple[str, ...]
    _bounds: dict[float, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def bounds(self, margin: float) -> tuple[np.ndarray, np.ndarray]:
        """The lowest and highest value allowed at each position: the range widened by ``margin`` of its
        width (kept per margin: the server asks for every request)."""
        if margin not in self._bounds:
            width = self.high - self.low
            self._bounds[margin] = (self.low - margin * width, self.high + margin * width)
        return self._bounds[margin]

    def outside(self, flat: np.ndarray, margin: float) -> np.ndarray:
        """A (rows, values) mask of the values outside their range by more than ``margin``."""
        low, high = self.bounds(margin)
        return (flat < low) | (flat > high)

    def names_outside(self, mask_row: np.ndarray) -> list[str]:
        """The names of the positions a row's mask flags, each once (a channel is named once however many pixels)."""
        return list(dict.fromkeys(self.names[i] for i in np.flatnonzero(mask_row)))

    def describe(self, index: int, value: float, margin: float) -> str:
        low, high = self.bounds(margin)
        return (f"{self.names[index]!r} is {value!r}, outside the training range [{self.low[index]:.6g}, {self.high[index]:.6g}] "
                f"by more than the margin ({margin:g} of the range: allowed [{low[index]:.6g}, {high[index]:.6g}])")


def _input_range(metadata: dict[str, Any], shape: tuple[int, ...], names: list[str]) -> InputRange | None:
    """``metadata.json``'s ``input_range`` (checked by :func:`_check_metadata`) spread over a flattened row."""
    record = metadata.get("input_range")
    if record is None:
        return None
    low, high = np.asarray(record["min"], dtype=np.float64), np.asarray(record["max"], dtype=np.float64)
    width = math.prod(shape)
    if record["per"] == "channel":
        per_channel = width // shape[0]
        labels = tuple(f"channel {c}" for c in range(shape[0]) for _ in range(per_channel))
        return InputRange(np.repeat(low, per_channel), np.repeat(high, per_channel), labels)
    labels = tuple(names) if len(names) == width else tuple(f"value {i + 1}" for i in range(width))
    return InputRange(low, high, labels)


@dataclass
class Bundle:
    """A verified bundle: its metadata and an onnxruntime session for its model."""

    folder: Path
    metadata: dict[str, Any]
    session: Any
    #: files in the folder that the manifest does not list (reported, never read)
    unlisted: list[str] = field(default_factory=list)
    #: the id of the key whose signature was checked, when one was
    signer: str | None = None
    #: the sha256 of the manifest as it was verified
    manifest_sha256: str = ""
    #: which of the bundle's files runs: ``float32`` (model.onnx) or an optimized variant (``--variant``)
    variant: str = BASELINE_VARIANT
    #: the file that runs the variant
    model_file: str = MODEL
    #: what the verified manifest lists: file name → its sha256 and size
    listed: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: False for a plain ONNX file (``opening.open_plain_onnx``): nothing was checked against a manifest
    verified: bool = True

    @property
    def task(self) -> str:
        return str(self.metadata["task"])

    @property
    def classes(self) -> list[str]:
        return list(self.metadata.get("classes", []))

    @property
    def feature_names(self) -> list[str]:
        return list(self.metadata.get("feature_names", []))

    # cached: the server checks every request against these (the metadata never changes once verified)
    @functools.cached_property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.metadata["input"]["shape"][1:])

    @functools.cached_property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self.metadata["input"]["dtype"])

    @functools.cached_property
    def columns(self) -> TableColumns | None:
        """The raw table columns the model takes, one input each (``metadata.json``'s ``columns``), or
        None for a model of one input tensor."""
        entries = self.metadata.get("columns")
        return TableColumns.from_metadata(entries) if entries else None

    @functools.cached_property
    def input_range(self) -> InputRange | None:
        """Each input value's training range, or None for a bundle exported before ranges were recorded;
        for raw table columns, the number columns' ranges (:meth:`range_values` gives their values)."""
        if self.columns is not None:
            ranged = [self.columns.columns[i] for i in self.columns.ranged]
            if not ranged:
                return None
            return InputRange(np.asarray([c.low for c in ranged], dtype=np.float64), np.asarray([c.high for c in ranged], dtype=np.float64),
                              tuple(c.name for c in ranged))
        return _input_range(self.metadata, self.input_shape, self.feature_names)

    def range_values(self, rows: np.ndarray) -> np.ndarray:
        """The values of checked ``rows`` that :attr:`input_range` bounds, one row each: every value of a
        row flattened, or a table's number columns."""
        return self.columns.range_values(rows) if self.columns is not None else rows.reshape(len(rows), -1)

    @functools.cached_property
    def batch_independent(self) -> bool | None:
        """Whether this file answers a row the same alone and inside any batch (``metadata.json``'s
        ``batch_independent``, measured at export for every ONNX file); None when the bundle was
        exported before it was measured. A dynamically quantized model is not: it scales each batch's
        activations by that batch's largest value, so one extreme row changes every other row's answer."""
        recorded = self.metadata.get("batch_independent")
        value = recorded.get(self.model_file) if isinstance(recorded, dict) else None
        return value if isinstance(value, bool) else None

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def warnings(self) -> list[str]:
        """What a deployer should know but that does not stop the bundle: files nobody vouches for,
        a model that must run each row alone."""
        if not self.verified:
            return [f"{self.folder} is a plain ONNX file, not a bundle: UNVERIFIED (no manifest or signature says it is the file "
                    "you meant to serve), its input and outputs taken from the graph, no training range to flag rows far "
                    "from it, and batch independence not measured, so every row runs alone (slower, never wrong)"]
        found = []
        if self.unlisted:
            names = ", ".join(self.unlisted[:10]) + (f" and {len(self.unlisted) - 10} more" if len(self.unlisted) > 10 else "")
            found.append(f"{self.folder} holds {len(self.unlisted)} file(s) its manifest does not list: {names}; "
                         "they are not verified (nor signed) and nothing here reads them")
        if self.batch_independent is False:
            found.append(f"{self.model_file} ({self.variant}) answers a row differently depending on the other rows of its batch "
                         "(measured at export), so every row runs alone: no row ever changes another's answer, at the cost of speed")
        elif self.batch_independent is None:
            found.append(f"{self.folder} was exported before batch independence was measured, so every row of {self.model_file} "
                         "runs alone (slower, never wrong); export it again with `pipeline export RUN` to measure it")
        if self.input_range is None and self.columns is None:
            found.append(f"{self.folder} records no training range of its inputs (exported by an earlier version), "
                         "so rows far outside it cannot be flagged; export it again with `pipeline export RUN` to record it")
        return found

    def describe_input(self) -> str:
        if self.columns is not None:
            return self.columns.describe()
        width = math.prod(self.input_shape)
        names = f": {', '.join(self.feature_names)}" if self.feature_names else ""
        return f"{width} {self.input_dtype.name} value(s) per row, shape {list(self.input_shape)}{names}"

    def column(self, index: int) -> str:
        """How a message names the value at flat position ``index`` of a row: its feature name when known."""
        names = self.feature_names
        if len(names) == math.prod(self.input_shape):
            return f"column {names[index]!r}"
        if len(self.input_shape) > 1:
            return f"position {[int(i) for i in np.unravel_index(index, self.input_shape)]}"
        return f"column {index + 1}"

    def run(self, inputs: np.ndarray, batch_size: int = 1024) -> dict[str, np.ndarray]:
        """Every output of the model for ``inputs`` (already shaped and typed), ``batch_size`` rows per
        call, or one row per call when the model is not known to be batch independent: each row then
        gets the answer it gets alone, whatever rows came with it. A model exported with a fixed batch
        size (``export.dynamic_batch = false``) takes exactly that many rows per call."""
        step = self._rows_per_call(len(inputs), batch_size)
        input_name = self.metadata["input"]["name"]
        names = [output["name"] for output in self.metadata["outputs"]]
        parts: list[list[np.ndarray]] = [[] for _ in names]
        for start in range(0, len(inputs), step):
            chunk = inputs[start : start + step]
            feeds = self.columns.feeds(chunk) if self.columns is not None else {input_name: chunk}
            for index, value in enumerate(self.session.run(names, feeds)):
                parts[index].append(value)
        return {name: part[0] if len(part) == 1 else np.concatenate(part) for name, part in zip(names, parts, strict=True)}

    def call_sizes(self, rows: int, batch_size: int = 1024) -> list[int]:
        """The rows of each onnxruntime call :meth:`run` makes for ``rows`` rows (what a server reports
        as its batch sizes: one row per call for a model that runs each row alone)."""
        step = self._rows_per_call(rows, batch_size)
        return [min(step, rows - start) for start in range(0, rows, step)]

    def _rows_per_call(self, rows: int, batch_size: int) -> int:
        fixed = self.metadata["input"]["shape"][0]
        if isinstance(fixed, int):
            if rows % fixed:
                raise DeployError(f"{self.folder}: the model takes exactly {fixed} rows per call (exported with export.dynamic_batch = false), "
                                  f"and {rows} rows are not a multiple of {fixed}; re-export it with export.dynamic_batch = true")
            return fixed
        return batch_size if self.batch_independent else 1


def variant_file(folder: Path, metadata: dict[str, Any], variant: str | None) -> str:
    """The file that runs ``variant``: model.onnx for none or ``float32``, else the variant the
    bundle lists in metadata.json (each passed its accuracy gate at export); an unknown name is an
    error listing what the bundle has."""
    listed = metadata.get("variants") or {}
    if variant in (None, BASELINE_VARIANT):
        return MODEL
    if variant in listed and isinstance(listed[variant], dict) and isinstance(listed[variant].get("file"), str):
        return str(listed[variant]["file"])
    if not listed:
        raise DeployError(f"--variant {variant}: {folder} has no variants, only {MODEL} ({BASELINE_VARIANT}); "
                          "add some with `pipeline export RUN --set 'export.optimize.variants=[\"int8_dynamic\"]'`")
    choices = ", ".join(f"{name} ({entry.get('file')})" for name, entry in listed.items() if isinstance(entry, dict))
    raise DeployError(f"--variant {variant}: {folder} has no such variant; it has {choices}")
