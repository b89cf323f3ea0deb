"""The model repository: verified bundles served under a name and a version.

A bundle's name is its pipeline (``metadata["pipeline"]``); its version is ``metadata["version"]``
when the bundle has one, else its folder's name when that is a number (Triton's layout:
``models/iris/1/`` serves ``iris`` version ``1``; for a run folder holding ``bundle/``, the run
folder's name, after resolving links such as ``artifacts/iris/latest``), else ``1``. A folder name
that is not a number is never taken for a version: ``runs/try/bundle`` is version ``1``, not ``try``.
Both can be overridden per bundle. Several versions of one name may be served; a request without a
version gets the newest (numeric versions compare as numbers, others as text).

Every bundle is verified against its manifest by ``predict.open_bundle`` before anything is served
(and its signature checked, for a bundle given a ``verify_key``). A model that is not known to be
batch independent (``predict.Bundle.batch_independent``) is never batched across requests, whatever
its batching settings say: each of its rows runs alone, so no client can change another's answers.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline_core_deploy import predict
from pipeline_core_deploy.serve.batching import Batcher, BatchingConfig, Observer
from pipeline_core_deploy.serve.column_inputs import column_specs
from pipeline_core_deploy.serve.protocol import ProtocolError, TensorSpec, datatype
from pipeline_core_deploy.serve.statistics import ModelStatistics

PLATFORM = "onnxruntime_onnx"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class ModelSpec:
    """One bundle to serve, as the command line or the configuration file names it."""

    path: Path
    name: str | None = None
    version: str | None = None
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    #: an Ed25519 public key: serve the bundle only if its manifest is signed by it
    verify_key: Path | None = None
    variant: str | None = None  # one of the bundle's optimized variants instead of model.onnx
    #: rows outside the training range: ``flag`` them in the answer, or ``refuse`` them (HTTP 400)
    range_check: str = "flag"
    range_margin: float = predict.RANGE_MARGIN


def _version_key(version: str) -> tuple[int, int, str]:
    return (1, int(version), "") if version.isdigit() else (0, 0, version)


def default_version(folder: Path, metadata: dict[str, Any]) -> str:
    """``metadata["version"]``, else the bundle's folder name (its run folder's for ``…/bundle``) when
    that is a number, else ``1``."""
    if metadata.get("version") is not None:
        return str(metadata["version"])
    folder = folder.resolve()
    if folder.is_file():  # a plain ONNX file: its folder's name (Triton's layout: models/iris/1/model.onnx)
        folder = folder.parent
    name = folder.parent.name if folder.name == predict.BUNDLE_DIR else folder.name
    return name if name.isdigit() else "1"


class ServedModel:
    """A verified bundle with its batcher: what ``/v2/models/{name}/versions/{version}`` serves."""

    def __init__(self, bundle: predict.Bundle, name: str, version: str, batching: BatchingConfig, range_check: str = "flag",
                 range_margin: float = predict.RANGE_MARGIN) -> None:
        #: whether requests may share a batch: only for a model measured batch independent at export
        self.shares_batches = bundle.batch_independent is True
        if not self.shares_batches:
            batching = dataclasses.replace(batching, dynamic_batching=False)
        self.bundle, self.name, self.version, self.batching = bundle, name, version, batching
        self.range_check, self.range_margin = range_check, range_margin
        if range_check == "refuse" and bundle.input_range is None:
            raise predict.DeployError(f"{bundle.folder}: range_check = \"refuse\" needs the training range of the inputs, which this "
                                      "bundle does not record (exported by an earlier version); export it again with `pipeline export RUN`, "
                                      "or use range_check = \"flag\"")
        metadata = bundle.metadata
        fixed = metadata["input"]["shape"][0]
        if not isinstance(fixed, str):
            raise predict.DeployError(
                f"{bundle.folder}: the model takes exactly {fixed} rows per call (exported with export.dynamic_batch = false); "
                "the server batches requests of any size, so re-export it with export.dynamic_batch = true"
            )
        #: a model of raw table columns takes one V2 input per column (``column_inputs``); ``input`` then
        #: names them together, for logs and messages
        self.column_inputs = column_specs(bundle.columns) if bundle.columns is not None else None
        self.input = (TensorSpec(metadata["input"]["name"], "BYTES", (-1, *bundle.input_shape)) if bundle.columns is not None
                      else TensorSpec(metadata["input"]["name"], datatype(bundle.input_dtype), (-1, *bundle.input_shape)))
        types = {o.name: o.type for o in bundle.session.get_outputs()}
        self.outputs = [
            TensorSpec(o["name"], _onnx_datatype(types.get(o["name"], "tensor(float)")), (-1, *(int(d) for d in o["shape"][1:])))
            for o in metadata["outputs"]
        ]
        self.batcher: Batcher | None = None
        self.statistics = ModelStatistics()
        self.spec: ModelSpec | None = None  # what it was loaded from, for the repository extension's load

    def attach(self, executor: Executor, observer: Observer) -> None:
        self.batcher = Batcher(self._run, self.batching, executor, observer, self._screen)

    def _run(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        return self.bundle.run(rows, batch_size=self.batching.max_batch_size)

    def call_sizes(self, rows: int) -> list[int]:
        """The rows of each onnxruntime call that :meth:`_run` makes for ``rows`` rows."""
        return self.bundle.call_sizes(rows, batch_size=self.batching.max_batch_size)

    def _screen(self, rows: np.ndarray, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A batch's outputs screened for the whole batch at once (one NumPy pass per batch, not one per
        request), on the event loop: done on the inference threads, the same few NumPy calls cost
        several times as much, each thread waiting for the GIL the event loop holds. Only a batch
        with a row to report gets a per-row screen, which the batcher splits with the outputs: which
        rows have an output that is not finite, which lie outside the training range."""
        # a sum is NaN or infinite when any element is (and, rarely, when finite ones overflow: the exact test then decides)
        if not all(math.isfinite(value.sum()) for value in outputs.values() if value.dtype.kind == "f"):
            broken = np.zeros(len(rows), dtype=bool)
            for value in outputs.values():
                if value.dtype.kind == "f":
                    broken |= ~np.isfinite(value.reshape(len(value), -1)).all(axis=1)
            outputs[_NOT_FINITE] = broken
        outside = predict.out_of_range(self.bundle, rows, self.range_margin)
        if outside is not None and outside.any():
            outputs[_OUTSIDE] = outside.any(axis=1)
        return outputs

    async def infer(self, rows: np.ndarray, source: str) -> tuple[dict[str, np.ndarray], list[int]]:
        """Every output for ``rows`` (already checked by :meth:`check`), batched with others when the
        model is batch independent, and the rows (from 0) outside the training range by more than the
        margin. Outputs that are not finite are refused naming the row."""
        assert self.batcher is not None, "ServedModel.attach() was not called"
        outputs = await self.batcher.submit(rows)
        broken, outside = outputs.pop(_NOT_FINITE, None), outputs.pop(_OUTSIDE, None)
        if broken is not None and broken.any():
            predict.check_outputs(self.bundle, outputs, source, rows=rows)
        return outputs, np.flatnonzero(outside).tolist() if outside is not None else []

    def check(self, array: np.ndarray, source: str) -> np.ndarray:
        """``array`` checked and shaped as ``predict.py`` checks a file (the same messages), and refused
        when a row lies outside the training range and the model's ``range_check`` is ``refuse``."""
        rows = predict.check_rows(array, self.bundle, source)
        if self.range_check == "refuse":
            predict.refuse_out_of_range(self.bundle, rows, self.range_margin, source)
        return rows

    def out_of_range_names(self, rows: np.ndarray) -> list[list[str]]:
        """Each row's features outside the training range by more than the margin (what the predict
        endpoint names in the records of the rows :meth:`infer` said were outside)."""
        return predict.out_of_range_names(self.bundle, rows, self.range_margin) or [[] for _ in rows]

    def metadata(self, versions: list[str]) -> dict[str, Any]:
        """The v2 model metadata, with the bundle's own description under ``parameters``."""
        meta = self.bundle.metadata
        return {
            "name": self.name,
            "versions": versions,
            "platform": PLATFORM,
            "inputs": [spec.as_json() for spec in self.column_inputs or [self.input]],
            "outputs": [o.as_json() for o in self.outputs],
            "parameters": {
                # false for a plain ONNX file: nothing checked it against a manifest, and its description comes from the graph
                "verified": self.bundle.verified,
                "pipeline": meta.get("pipeline"),
                "task": self.bundle.task,
                "classes": self.bundle.classes,
                "feature_names": self.bundle.feature_names,
                **({"image": meta["image"]} if "image" in meta else {}),  # an image model also takes PNG/JPEG on …/predict
                **({"columns": meta["columns"]} if "columns" in meta else {}),  # each raw column's type and known values
                "metrics": meta.get("metrics", {}),
                "config_sha256": meta.get("config_sha256"),
                # which file serves: model.onnx (float32) or an optimized variant, with its measured figures
                "variant": self.bundle.variant,
                # false: a row's answer would depend on the rows batched with it, so each row runs alone
                "batch_independent": self.bundle.batch_independent,
                "requests_share_batches": self.shares_batches,
                "range_check": self.range_check,
                "range_margin": self.range_margin,
                "input_range": self.bundle.metadata.get("input_range"),
                **({"variant_figures": meta["variants"][self.bundle.variant]} if self.bundle.variant in meta.get("variants", {}) else {}),
            },
        }

    def config(self) -> dict[str, Any]:
        """Triton's model configuration (``…/config``), for clients that read it."""

        def tensor(spec: TensorSpec) -> dict[str, Any]:
            return {"name": spec.name, "data_type": f"TYPE_{spec.datatype}", "dims": list(spec.shape[1:])}

        config: dict[str, Any] = {
            "name": self.name,
            "platform": PLATFORM,
            "max_batch_size": self.batching.max_batch_size,
            "input": [tensor(spec) for spec in self.column_inputs or [self.input]],
            "output": [tensor(o) for o in self.outputs],
            "instance_group": [{"count": self.batching.instances, "kind": "KIND_CPU"}],
            # Triton's string parameters: why this model's requests never share a batch, when they do not
            "parameters": {"batch_independent": {"string_value": _MEASURED[self.bundle.batch_independent]},
                           "requests_share_batches": {"string_value": str(self.shares_batches).lower()}},
        }
        if self.batching.dynamic_batching:
            config["dynamic_batching"] = {
                "max_queue_delay_microseconds": self.batching.max_queue_delay_us,
                "default_queue_policy": {"max_queue_size": self.batching.max_queue_size},
            }
        return config


_MEASURED = {True: "true", False: "false", None: "not measured"}
#: the per-row screens :meth:`ServedModel._run` adds to a batch's outputs when a row needs them (names no
#: output of a bundle takes: they hold spaces)
_NOT_FINITE, _OUTSIDE = "rows with outputs that are not finite", "rows outside the training range"


def _onnx_datatype(onnx_type: str) -> str:
    names = {"float": "FP32", "float16": "FP16", "double": "FP64", "uint8": "UINT8", "int8": "INT8", "int32": "INT32", "int64": "INT64", "bool": "BOOL"}
    return names.get(onnx_type.removeprefix("tensor(").removesuffix(")"), "FP32")


class Repository:
    """The served models by name and version. Models change only through :meth:`replace` and
    :meth:`remove`, each one assignment on the event loop, so a request sees a name's old versions or
    its new ones, never a mix."""

    def __init__(self, models: Iterable[ServedModel]) -> None:
        grouped: dict[str, list[ServedModel]] = {}
        for model in models:
            grouped.setdefault(model.name, []).append(model)
        self._models = {name: by_version(versions) for name, versions in grouped.items()}

    def __iter__(self) -> Iterator[ServedModel]:
        return (model for versions in list(self._models.values()) for model in list(versions.values()))

    def names(self) -> list[str]:
        return sorted(self._models)

    def replace(self, name: str, models: list[ServedModel]) -> list[ServedModel]:
        """Serve ``models`` (every version of ``name``) from now on; the versions they replace are returned."""
        old = list(self._models.get(name, {}).values())
        self._models[name] = by_version(models)
        return old

    def remove(self, name: str) -> list[ServedModel]:
        """Stop serving ``name``; its versions are returned."""
        return list(self._models.pop(name, {}).values())

    def versions(self, name: str) -> list[str]:
        """``name``'s versions, oldest first (each name's dict is kept in that order)."""
        return list(self._models.get(name, ()))

    def get_quietly(self, name: str, version: str | None = None) -> ServedModel | None:
        """The model, or None (for labels and readiness, where an unknown model is no error)."""
        versions = self._models.get(name)
        if not versions:
            return None
        return versions.get(version) if version is not None else versions[next(reversed(versions))]

    def get(self, name: str, version: str | None = None) -> ServedModel:
        """The model, or a 404 that lists what the server has."""
        versions = self._models.get(name)
        if not versions:
            raise ProtocolError(404, f"unknown model {name!r}; this server has {sorted(self._models)}")
        if version is None:
            return versions[next(reversed(versions))]  # the newest: the dict is in version order
        if version not in versions:
            raise ProtocolError(404, f"model {name!r} has no version {version!r}; it has {self.versions(name)}")
        return versions[version]


def by_version(models: Iterable[ServedModel]) -> dict[str, ServedModel]:
    """One model's versions by version, oldest first (so the newest is the last key, found without
    sorting on every request), refused when two bundles claim the same one."""
    versions: dict[str, ServedModel] = {}
    for model in models:
        if model.version in versions:
            raise predict.DeployError(
                f"two bundles would both be {model.name!r} version {model.version!r}: {versions[model.version].bundle.folder} "
                f"and {model.bundle.folder}; give one another version (NAME:VERSION=PATH on the command line)"
            )
        versions[model.version] = model
    return {version: versions[version] for version in sorted(versions, key=_version_key)}


def load(specs: Iterable[ModelSpec], device: str = "cpu", threads: int = 1) -> Repository:
    """Verify and open every bundle (a :class:`predict.DeployError` names the first bad one)."""
    return Repository(open_models(specs, device, threads))


def open_models(specs: Iterable[ModelSpec], device: str = "cpu", threads: int = 1) -> list[ServedModel]:
    """Every bundle verified and opened, each with the spec it came from (``ServedModel.spec``)."""
    models = []
    for spec in specs:
        bundle = predict.open_bundle(spec.path, device, threads, spec.verify_key, spec.variant)
        name = spec.name or str(bundle.metadata.get("pipeline") or "model")
        version = spec.version or default_version(bundle.folder, bundle.metadata)
        for what, value in (("name", name), ("version", version)):
            if not NAME_PATTERN.match(value):
                raise predict.DeployError(f"{spec.path}: model {what} {value!r} may hold only letters, digits, '_', '.' and '-'; set one with NAME:VERSION=PATH")
        model = ServedModel(bundle, name, version, spec.batching, spec.range_check, spec.range_margin)
        model.spec = spec
        models.append(model)
    return models
