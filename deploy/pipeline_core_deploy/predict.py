"""Run a deploy bundle with onnxruntime alone.

This module imports neither torch nor the rest of pipeline_core: it needs Python, NumPy and
onnxruntime, and a copy of it ships inside every bundle as ``predict.py``::

    pip install onnxruntime numpy
    python bundle/predict.py bundle --input rows.csv --output predictions.csv

Loading is safe: every file is checked against the bundle's ``manifest.json`` (sha256) before use, an
ONNX file whose weights live in external data outside the bundle is refused, and what the bundle
states twice (classes, feature names, the input and outputs in ``metadata.json``, in ``model.onnx``'s
own ``metadata_props`` and in its graph) must agree. With ``--verify-key PUBLIC_KEY`` the manifest
must also carry an Ed25519 signature by that key (``manifest.json.sig``, written by ``pipeline sign``;
checking it needs the ``cryptography`` package, imported only then). Files the manifest does not list
are reported, never read.

A bundle of an image model (``metadata.json`` has ``image``) also takes PNG or JPEG files, one or a
folder of them, decoded with Pillow (imported only then) and resized as its data pipeline did;
the predictions then name each file.

Bad input gets an error naming what the bundle expects (its feature names, input shape and dtype),
never a traceback. Rows are counted as data rows from 1 (a CSV header is not a row), and a CSV's
messages also give the line of the file: ``rows.csv, line 7: data row 6, column 'x': 'abc' is not
a number``.
"""

from __future__ import annotations

import argparse
import base64
import csv
import functools
import hashlib
import io
import json
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

MANIFEST = "manifest.json"
METADATA = "metadata.json"
MODEL = "model.onnx"
#: the name ``--variant`` gives model.onnx itself, beside the optimized variants metadata.json lists
BASELINE_VARIANT = "float32"
SIGNATURE = "manifest.json.sig"
BUNDLE_DIR = "bundle"
INPUT_FORMATS = (".csv", ".npy", ".json")
SIGNATURE_FORMAT = {"name": "pipeline-core-signature", "version": 1}
TASKS = ("multiclass", "binary", "regression")
#: a run folder's own files, read only to explain why a run folder has no bundle
RUN_STATUS, RUN_WEIGHTS, FAILED_BUNDLE = "status.json", "weights.pt", "bundle.failed"
#: rows predicted and written at a time, so the output never holds every row's record at once
OUTPUT_CHUNK = 65536
#: images decoded, predicted and written at a time (a folder of them streams through)
IMAGE_CHUNK = 256


class DeployError(Exception):
    """A bad bundle or bad input; the message says what was expected (exit code 2)."""

    exit_code = 2


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeployError(f"{what} is missing: {path}") from None
    except (OSError, ValueError) as error:
        raise DeployError(f"{what} {path} cannot be read: {error}") from None


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[:limit]}…"


def _show(value: Any, limit: int = 200) -> str:
    return _clip(repr(value), limit)


def bundle_folder(path: Path) -> Path:
    """``path`` itself, or its ``bundle/`` when ``path`` is a run folder."""
    if (path / BUNDLE_DIR / MANIFEST).is_file() and not (path / METADATA).is_file():
        return path / BUNDLE_DIR
    return path


def _run_without_bundle(run: Path) -> str | None:
    """Why the run folder ``run`` has no sealed bundle, from its ``status.json`` (None: not a run folder)."""
    try:
        status = json.loads((run / RUN_STATUS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(status, dict):
        return None
    state, stage = status.get("status"), status.get("stage")
    at = f" at stage {stage!r}" if stage else ""
    if (run / RUN_WEIGHTS).is_file():
        remedy = f"after fixing the cause, export its trained weights again with `pipeline export {run}`"
    else:
        remedy = f"it has no trained weights ({RUN_WEIGHTS}) either; continue it with `pipeline run {run} --resume` or run it again"
    if state in ("failed", "interrupted"):
        error = _clip(" ".join(str(status.get("error", "")).split()), 240)
        rejected = f"; the files its export rejected are in {run / FAILED_BUNDLE}, unsealed" if (run / FAILED_BUNDLE).is_dir() else ""
        return f"this run {state}{at} ({error}), so it has no bundle{rejected}; {remedy}"
    if state == "running":
        return f"this run has not finished (status.json says 'running'{at}; it may still be running, or it was killed), so it has no bundle yet"
    stages = status.get("stages")
    if isinstance(stages, list) and "export" not in stages:
        return f"this run's stages {stages} have no 'export' stage, so it has no bundle; {remedy}"
    return f"this run (status {state!r}) has no sealed bundle ({run / BUNDLE_DIR / MANIFEST} is missing); {remedy}"


def _hash_mismatch(path: Path, entry: dict[str, Any], found: str, size: int) -> str:
    """Both hashes in full, where they first differ, and whether the size changed too."""
    expected = str(entry.get("sha256"))
    at = next((i for i, (a, b) in enumerate(zip(expected, found, strict=False)) if a != b), min(len(expected), len(found)))
    listed = entry.get("bytes")
    if isinstance(listed, int) and listed != size:
        sizes = f"; the manifest says {listed} bytes, the file has {size}"
    else:
        sizes = f"; the file still has {size} bytes, so bytes were changed in place" if isinstance(listed, int) else ""
    return (f"bundle file {path} does not match its sha256 in manifest.json: expected {expected}, found {found} "
            f"(first difference at hex digit {at + 1} of {len(expected)}{sizes})")


def _verified(folder: Path, name: str, expected: dict[str, Any]) -> bytes:
    """The bytes of ``name`` after checking them against the manifest: the bytes checked are the bytes used."""
    if name not in expected:
        raise DeployError(f"{folder / MANIFEST} does not list {name}; refusing a file the bundle does not vouch for")
    try:
        data = (folder / name).read_bytes()
    except FileNotFoundError:
        raise DeployError(f"bundle file is missing: {folder / name} (manifest.json lists it); refusing an incomplete bundle") from None
    except OSError as error:
        raise DeployError(f"bundle file {folder / name} cannot be read: {error}") from None
    if _sha256(data) != expected[name]["sha256"]:
        raise DeployError(f"{_hash_mismatch(folder / name, expected[name], _sha256(data), len(data))}; refusing a modified bundle")
    return data


def _file_sha256(path: Path) -> tuple[str, int]:
    """The sha256 and size of a file read in blocks, so a large TorchScript file is never held whole."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _inside(folder: Path, name: str) -> bool:
    """Whether manifest entry ``name`` is a plain relative path that stays inside ``folder``."""
    relative = Path(name)
    return bool(name) and not relative.is_absolute() and ".." not in relative.parts and "\\" not in name


def _file_problem(folder: Path, name: str, entry: dict[str, Any]) -> tuple[str, str] | None:
    """What is wrong with listed file ``name`` (``missing``, ``changed``, with the message), or None when it matches."""
    path = folder / name
    if not _inside(folder, name):
        return "changed", f"manifest.json lists {name!r}, which is not a file inside the bundle"
    try:
        found, size = _file_sha256(path)
    except FileNotFoundError:
        return "missing", f"bundle file is missing: {path} (manifest.json lists it)"
    except OSError as error:  # a folder where a file was, a file nobody may read
        return "missing", f"bundle file {path} cannot be read: {error.strerror or error}"
    return None if found == entry["sha256"] else ("changed", _hash_mismatch(path, entry, found, size))


def verify_files(folder: Path, files: dict[str, dict[str, Any]]) -> None:
    """Hash every file the manifest lists and refuse the bundle when any is missing or was changed,
    naming each one: a bundle is used whole or not at all, so a model card, a TorchScript file or
    the bundle's own ``predict.py`` that no longer matches is as much a reason to stop as the model."""
    problems = [problem for name, entry in sorted(files.items()) if (problem := _file_problem(folder, name, entry))]
    if problems:
        kind = "a modified" if any(kind == "changed" for kind, _ in problems) else "an incomplete"
        messages = [message for _, message in problems]
        listed = "; ".join(messages[:10]) + (f"; and {len(messages) - 10} more" if len(messages) > 10 else "")
        raise DeployError(f"{listed}; refusing {kind} bundle")


def _manifest_files(folder: Path, manifest: bytes) -> dict[str, dict[str, Any]]:
    try:
        files = json.loads(manifest)["files"]
        if isinstance(files, dict) and all(isinstance(entry["sha256"], str) for entry in files.values()):
            return files
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    raise DeployError(f"{folder / MANIFEST} is not a bundle manifest: expected {{\"files\": {{NAME: {{\"sha256\": ...}}}}}}")


def _unlisted(folder: Path, files: dict[str, Any]) -> list[str]:
    """Files in the bundle folder that the manifest does not list (nor the manifest and its signature)."""
    listed = {*files, MANIFEST, SIGNATURE}
    found = []
    for root, _, names in os.walk(folder):
        found.extend((Path(root) / name).relative_to(folder).as_posix() for name in names)
    return sorted(name for name in found if name not in listed)


# ---------------------------------------------------------------------------------------------
# Signatures (pipeline sign writes them; pipeline_core_deploy.signing holds the signing side)


def ed25519_api() -> Any:
    """cryptography's exceptions, serialization and ed25519 modules, imported on first use."""
    try:
        from cryptography import exceptions
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise DeployError("checking a bundle's signature needs the 'cryptography' package: pip install cryptography") from None
    return exceptions, serialization, ed25519


def key_id(public_key: Any) -> str:
    """A short name for an Ed25519 public key: the first 16 hex digits of the sha256 of its raw bytes."""
    _, serialization, _ = ed25519_api()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _sha256(raw)[:16]


def load_public_key(path: Path) -> Any:
    """The Ed25519 public key in ``path`` (PEM, as ``pipeline keygen`` writes it, or OpenSSH)."""
    exceptions, serialization, ed25519 = ed25519_api()
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DeployError(f"--verify-key: public key file not found: {path}") from None
    except OSError as error:
        raise DeployError(f"--verify-key: cannot read {path}: {error}") from None
    if b"PRIVATE KEY" in data:
        raise DeployError(f"--verify-key: {path} is a private key; checking a signature takes the public key "
                          "(the .pub file `pipeline keygen` wrote beside it), and the private key stays with whoever signs")
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_ssh_public_key(data)
    except (ValueError, TypeError, exceptions.UnsupportedAlgorithm) as error:
        raise DeployError(f"--verify-key: {path} is not a public key in PEM or OpenSSH format ({error})") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise DeployError(f"--verify-key: {path} is a {type(key).__name__} key; bundles are signed with Ed25519 keys (`pipeline keygen`)")
    return key


def verify_signature(folder: Path, manifest: bytes, key_path: Path) -> str:
    """Check that ``manifest`` (the bytes of ``folder``'s manifest) carries a valid signature by the
    public key in ``key_path``; returns the key's id. Raises :class:`DeployError` otherwise."""
    key = load_public_key(key_path)
    exceptions, _, _ = ed25519_api()
    wanted = key_id(key)
    path = folder / SIGNATURE
    if not path.is_file():
        raise DeployError(f"{folder} is not signed (no {SIGNATURE} beside its manifest), and --verify-key {key_path} accepts only "
                          "bundles signed with its private key (`pipeline sign BUNDLE --key PRIVATE_KEY`); refusing it")
    document = _read_json(path, "the bundle's signature")
    try:
        signature, signer = base64.b64decode(document["signature"], validate=True), str(document["key_id"])
    except (KeyError, TypeError, ValueError):
        raise DeployError(f"{path} is not a signature written by `pipeline sign`: expected \"key_id\" and a base64 \"signature\"") from None
    if signer != wanted:
        raise DeployError(f"{path}: the bundle was signed with key {signer}, not with {key_path} (key {wanted}); "
                          "refusing a bundle signed by someone else")
    try:
        key.verify(signature, manifest)
    except exceptions.InvalidSignature:
        changed = document.get("manifest_sha256") not in (None, _sha256(manifest))
        reason = f"{MANIFEST} was changed after it was signed" if changed else "the signature does not match the manifest (was the signature file edited?)"
        raise DeployError(f"{path}: {reason}; refusing the bundle (checked with {key_path}, key {wanted})") from None
    return wanted


# ---------------------------------------------------------------------------------------------
# What the bundle states twice must agree

_ONNX_DTYPES = {"float": "float32", "double": "float64", "float16": "float16", "uint8": "uint8", "int8": "int8",
                "uint16": "uint16", "int16": "int16", "int32": "int32", "int64": "int64", "bool": "bool"}


def _check_metadata(path: Path, metadata: Any) -> None:
    """The parts of ``metadata.json`` this module relies on, with the shapes it relies on."""
    def bad(what: str, value: Any) -> DeployError:
        return DeployError(f"{path}: {what}, got {_show(value)}; is it a pipeline-core bundle's metadata?")

    if not isinstance(metadata, dict):
        raise bad("expected an object", metadata)
    if metadata.get("task") not in TASKS:
        raise bad(f"'task' must be one of {list(TASKS)}", metadata.get("task"))
    spec = metadata.get("input")
    if not (isinstance(spec, dict) and isinstance(spec.get("name"), str) and isinstance(spec.get("shape"), list) and len(spec["shape"]) >= 2
            and all(isinstance(d, int) and d > 0 for d in spec["shape"][1:]) and spec.get("dtype") in _ONNX_DTYPES.values()):
        raise bad("'input' must be {\"name\": ..., \"shape\": [batch, positive sizes...], \"dtype\": ...}", spec)
    outputs = metadata.get("outputs")
    if not (isinstance(outputs, list) and outputs and all(isinstance(o, dict) and isinstance(o.get("name"), str) and isinstance(o.get("shape"), list) for o in outputs)):
        raise bad("'outputs' must be a list of {\"name\": ..., \"shape\": [...]}", outputs)
    for key in ("classes", "feature_names"):
        if not (isinstance(metadata.get(key, []), list) and all(isinstance(v, str) for v in metadata.get(key, []))):
            raise bad(f"'{key}' must be a list of names", metadata.get(key))
    independent = metadata.get("batch_independent", {})
    if not (isinstance(independent, dict) and all(isinstance(k, str) and isinstance(v, bool) for k, v in independent.items())):
        raise bad("'batch_independent' must map file names to true or false", independent)
    _check_input_range(path, metadata.get("input_range"))


def _check_input_range(path: Path, record: Any) -> None:
    """``input_range``: ``{"per": "feature" | "channel", "min": [...], "max": [...]}``, finite bounds,
    min ≤ max (how many there must be is checked with the other counts, by :func:`_count_disagreements`)."""
    if record is None:
        return
    try:
        low = np.asarray(record["min"], dtype=np.float64)
        high = np.asarray(record["max"], dtype=np.float64)
        sound = (record["per"] in ("feature", "channel") and low.ndim == 1 and low.shape == high.shape
                 and bool(np.isfinite(low).all() and np.isfinite(high).all() and (low <= high).all()))
    except (KeyError, TypeError, ValueError):
        sound = False
    if not sound:
        raise DeployError(f"{path}: 'input_range' must be {{\"per\": \"feature\" or \"channel\", \"min\": [...], \"max\": [...]}} "
                          f"with finite bounds, min <= max; got {_show(record)}; is it a pipeline-core bundle's metadata?")


def _range_count(metadata: dict[str, Any]) -> str | None:
    """How ``input_range``'s bounds disagree with the input shape (one per value of a row, or per channel)."""
    record, shape = metadata.get("input_range"), metadata["input"]["shape"][1:]
    if record is None:
        return None
    wanted = math.prod(shape) if record["per"] == "feature" else shape[0]
    if len(record["min"]) == wanted:
        return None
    return (f"metadata.json's input_range gives {len(record['min'])} bound(s) per {record['per']}, but its input shape {shape} "
            f"takes {wanted}")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


class _Absent:
    def __repr__(self) -> str:
        return "absent"


def _first_difference(ours: Any, theirs: Any, where: str) -> tuple[str, Any, Any]:
    """The deepest key under which two JSON values differ (lists are compared whole)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in sorted(set(ours) | set(theirs), key=str):
            if key not in ours or key not in theirs or _canonical(ours[key]) != _canonical(theirs[key]):
                return _first_difference(ours.get(key, _Absent()), theirs.get(key, _Absent()), f"{where}.{key}")
    return where, ours, theirs


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _props_disagreements(metadata: dict[str, Any], props: dict[str, str]) -> list[str]:
    """``model.onnx``'s metadata_props (each value a string, or JSON for other values) against
    ``metadata.json``: the exporter writes both from one dict."""
    problems = []
    for key in sorted(props):
        if key not in metadata:
            problems.append(f"model.onnx's metadata_props state {key!r} = {_show(_parsed(props[key]))}, but metadata.json has no {key!r}")
            continue
        stated = metadata[key]
        embedded = props[key] if isinstance(stated, str) else _parsed(props[key])
        if _canonical(stated) != _canonical(embedded):
            where, ours, theirs = _first_difference(stated, embedded, key)
            problems.append(f"metadata.json says {where!r} is {_show(ours)}, but model.onnx's metadata_props say {_show(theirs)}")
    return problems


def _dims_agree(stated: Sequence[Any], declared: Sequence[Any]) -> bool:
    """Whole sizes must be equal; a named size (the batch axis) must be named in both."""
    if len(stated) != len(declared):
        return False
    return all(a == b if isinstance(a, int) else not isinstance(b, int) for a, b in zip(stated, declared, strict=True))


def _graph_disagreements(metadata: dict[str, Any], session: Any) -> list[str]:
    """``metadata.json``'s input and outputs against the ONNX graph's own declarations."""
    problems = []
    spec, inputs = metadata["input"], session.get_inputs()
    if len(inputs) != 1:
        problems.append(f"metadata.json describes one input {spec['name']!r}, but model.onnx's graph takes {len(inputs)}: {[i.name for i in inputs]}")
    else:
        graph = inputs[0]
        dtype = _ONNX_DTYPES.get(graph.type.removeprefix("tensor(").removesuffix(")"), graph.type)
        if graph.name != spec["name"]:
            problems.append(f"metadata.json names the input {spec['name']!r}, but model.onnx's graph names it {graph.name!r}")
        if dtype != spec["dtype"]:
            problems.append(f"metadata.json says the input {spec['name']!r} is {spec['dtype']}, but model.onnx's graph takes {dtype}")
        if not _dims_agree(spec["shape"], graph.shape):
            problems.append(f"metadata.json gives the input {spec['name']!r} the shape {spec['shape']}, but model.onnx's graph declares {list(graph.shape)}")
    stated = {o["name"]: o["shape"] for o in metadata["outputs"]}
    declared = {o.name: o.shape for o in session.get_outputs()}
    if list(stated) != list(declared):
        problems.append(f"metadata.json lists the outputs {list(stated)}, but model.onnx's graph has {list(declared)}")
    for name in stated.keys() & declared.keys():
        if not _dims_agree(stated[name], declared[name]):
            problems.append(f"metadata.json gives the output {name!r} the shape {stated[name]}, but model.onnx's graph declares {list(declared[name])}")
    return problems


def _count_disagreements(metadata: dict[str, Any], session: Any) -> list[str]:
    """Counts stated twice: feature names against the input's width, classes against the output's."""
    problems = []
    shape, features = metadata["input"]["shape"], metadata.get("feature_names") or []
    if features and len(features) != math.prod(shape[1:]):
        problems.append(f"metadata.json lists {len(features)} feature names {_show(features)}, but its input shape {shape} takes {math.prod(shape[1:])} value(s) per row")
    first = metadata["outputs"][0]["name"]
    declared = next((o.shape for o in session.get_outputs() if o.name == first), None)
    width = declared[-1] if declared and len(declared) >= 2 and isinstance(declared[-1], int) else None
    classes, task = metadata.get("classes") or [], metadata["task"]
    if task == "multiclass" and classes and width is not None and width != len(classes):
        problems.append(f"metadata.json lists {len(classes)} classes {_show(classes)}, but model.onnx's output {first!r} gives {width} value(s) per row (shape {list(declared)})")
    if (problem := _range_count(metadata)) is not None:
        problems.append(problem)
    if task == "binary" and (len(classes) not in (0, 2) or width not in (None, 1)):
        problems.append(f"a binary model has 2 classes and one output value per row; metadata.json lists {_show(classes)} and model.onnx's output {first!r} has the shape {list(declared or [])}")
    return problems


def _cross_check(folder: Path, metadata: dict[str, Any], session: Any) -> None:
    props = dict(session.get_modelmeta().custom_metadata_map)
    problems = [*_props_disagreements(metadata, props), *_graph_disagreements(metadata, session), *_count_disagreements(metadata, session)]
    if problems:
        raise DeployError(f"{folder}: the bundle contradicts itself, so it was changed after export (or put together by hand); refusing it: {'; '.join(problems)}")


# ---------------------------------------------------------------------------------------------
# Opening a bundle


def _external_locations(model: bytes) -> list[str]:
    """Where the model's tensors keep external data (needs the onnx package; without it,
    onnxruntime's own check that external data stays beside the model applies)."""
    if b"location" not in model:  # external data always names its file under the key "location"
        return []
    try:
        import onnx
    except ImportError:
        return []
    proto = onnx.load_model_from_string(model)
    locations = []
    for tensor in proto.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            locations.extend(entry.value for entry in tensor.external_data if entry.key == "location")
    return locations


#: how far beyond its training range a value may lie before it is flagged, as a fraction of that range
#: (``--range-margin``): with 0.5, a feature seen between 1 and 7 is flagged below -2 and above 10
RANGE_MARGIN = 0.5
RANGE_CHECKS = ("flag", "refuse")
RANGE_CHECK_HELP = ("flag: add each row's features that lie outside their training range (by more than --range-margin of it) "
                    "as a last column 'out_of_range'; refuse: stop at the first such row (exit 2)")
RANGE_MARGIN_HELP = f"how far beyond its training range a value may lie, as a fraction of the range (default {RANGE_MARGIN})"


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
    def input_range(self) -> InputRange | None:
        """Each input value's training range, or None for a bundle exported before ranges were recorded."""
        return _input_range(self.metadata, self.input_shape, self.feature_names)

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
        if self.input_range is None:
            found.append(f"{self.folder} records no training range of its inputs (exported by an earlier version), "
                         "so rows far outside it cannot be flagged; export it again with `pipeline export RUN` to record it")
        return found

    def describe_input(self) -> str:
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
        step = batch_size if self.batch_independent else 1
        fixed = self.metadata["input"]["shape"][0]
        if isinstance(fixed, int):
            if len(inputs) % fixed:
                raise DeployError(f"{self.folder}: the model takes exactly {fixed} rows per call (exported with export.dynamic_batch = false), "
                                  f"and {len(inputs)} rows are not a multiple of {fixed}; re-export it with export.dynamic_batch = true")
            step = fixed
        input_name = self.metadata["input"]["name"]
        names = [output["name"] for output in self.metadata["outputs"]]
        parts: list[list[np.ndarray]] = [[] for _ in names]
        for start in range(0, len(inputs), step):
            for index, value in enumerate(self.session.run(names, {input_name: inputs[start : start + step]})):
                parts[index].append(value)
        return {name: part[0] if len(part) == 1 else np.concatenate(part) for name, part in zip(names, parts, strict=True)}


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


def _read_manifest(path: Path) -> tuple[Path, bytes]:
    """The bundle folder at ``path`` (or in the run folder ``path``) and its manifest's bytes, read once:
    the bytes checked are the bytes used."""
    folder = bundle_folder(path)
    if not folder.is_dir():
        raise DeployError(f"no bundle at {path}: expected a folder holding {MANIFEST}, {METADATA} and {MODEL}")
    if folder == path and not (path / METADATA).is_file():  # a run folder without a sealed bundle/
        reason = _run_without_bundle(path)
        if reason:
            raise DeployError(f"{path}: {reason}")
    try:
        return folder, (folder / MANIFEST).read_bytes()
    except FileNotFoundError:
        raise DeployError(f"the bundle's manifest is missing: {folder / MANIFEST}") from None
    except OSError as error:
        raise DeployError(f"the bundle's manifest {folder / MANIFEST} cannot be read: {error}") from None


def _session(folder: Path, model_file: str, files: dict[str, dict[str, Any]], device: str, threads: int) -> Any:
    """An onnxruntime session for the verified ``model_file``, made from the bytes that were checked
    (so the file cannot change between the check and the load), or from the file when its weights
    live in external data, each external file checked against the manifest first."""
    model = _verified(folder, model_file, files)
    root = folder.resolve()
    locations = _external_locations(model)
    for location in locations:
        target = (folder / location).resolve()
        if Path(location).is_absolute() or root not in target.parents:
            raise DeployError(f"{folder / model_file} keeps weights in external data outside the bundle ({location!r}); refused")
        _verified(folder, target.relative_to(root).as_posix(), files)

    import onnxruntime

    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            raise DeployError("--device cuda: this onnxruntime has no CUDA provider; install onnxruntime-gpu")
        providers.insert(0, "CUDAExecutionProvider")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    if threads > 0:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return onnxruntime.InferenceSession(str(folder / model_file) if locations else model, options, providers=providers)
    except Exception as error:  # onnxruntime raises its own exception types for a file it cannot load
        reason = _clip(" ".join(str(error).split()), 300)
        hint = "; a model with external data needs the onnx package to check those files (pip install onnx)" if b"location" in model else ""
        raise DeployError(f"{folder / model_file} cannot be loaded by onnxruntime: {reason}{hint}") from None


def open_bundle(path: Path, device: str = "cpu", threads: int = 0, verify_key: Path | None = None, variant: str | None = None) -> Bundle:
    """Verify and open a bundle folder (or a run folder holding ``bundle/``). Every file the manifest
    lists is hashed first, and the bundle refused when any is missing or changed. ``threads`` sets
    onnxruntime's intra-op threads (0: its default, one per core); a server that runs several
    batches or models at once chooses fewer, so they do not fight over the cores. With
    ``verify_key`` (a public key file) the manifest must carry a valid signature by that key.
    ``variant`` runs one of the bundle's optimized variants instead of model.onnx (see :func:`variant_file`)."""
    path = Path(path)
    folder, manifest = _read_manifest(path)
    signer = verify_signature(folder, manifest, Path(verify_key)) if verify_key is not None else None
    files = _manifest_files(folder, manifest)
    verify_files(folder, files)
    try:
        metadata = json.loads(_verified(folder, METADATA, files))
    except ValueError as error:
        raise DeployError(f"{folder / METADATA} is not JSON: {error}") from None
    _check_metadata(folder / METADATA, metadata)
    model_file = variant_file(folder, metadata, variant)
    session = _session(folder, model_file, files, device, threads)
    _cross_check(folder, metadata, session)
    return Bundle(folder, metadata, session, _unlisted(folder, files), signer, _sha256(manifest), variant or BASELINE_VARIANT, model_file, files)


@dataclass
class Verification:
    """What :func:`verify_bundle` checked: every listed file, the signature, and each ONNX file."""

    folder: Path
    manifest_sha256: str
    #: every file the manifest lists (each one hashed and matching)
    files: list[str]
    #: the key whose signature was checked, or None when no key was given
    signer: str | None
    #: variant name → (its file, whether it is batch independent: None when not measured)
    models: dict[str, tuple[str, bool | None]]
    warnings: list[str]

    def as_json(self) -> dict[str, Any]:
        return {"bundle": str(self.folder), "verified": True, "manifest_sha256": self.manifest_sha256, "files": self.files,
                "signed_by": self.signer, "models": {name: {"file": file, "batch_independent": independent}
                                                     for name, (file, independent) in self.models.items()},
                "warnings": self.warnings}


def verify_bundle(path: Path, verify_key: Path | None = None) -> Verification:
    """Check a bundle without predicting: the signature (with ``verify_key``), every file the manifest
    lists, and every ONNX file it ships (model.onnx and each variant) loaded by onnxruntime and held
    against ``metadata.json``. Raises :class:`DeployError` naming what fails."""
    bundle = open_bundle(path, threads=1, verify_key=verify_key)  # model.onnx, and every listed file hashed
    files = bundle.listed
    models = {BASELINE_VARIANT: (MODEL, bundle.batch_independent)}
    warnings = bundle.warnings()
    for name in bundle.metadata.get("variants") or {}:
        if name == BASELINE_VARIANT:
            continue
        model_file = variant_file(bundle.folder, bundle.metadata, name)
        _cross_check(bundle.folder, bundle.metadata, _session(bundle.folder, model_file, files, "cpu", 1))
        variant = Bundle(bundle.folder, bundle.metadata, None, variant=name, model_file=model_file, listed=files)
        models[name] = (model_file, variant.batch_independent)
        warnings += [message for message in variant.warnings() if model_file in message]
    return Verification(bundle.folder, bundle.manifest_sha256, sorted(files), bundle.signer, models, warnings)


# ---------------------------------------------------------------------------------------------
# Reading inputs


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


def _read_csv(path: Path, bundle: Bundle) -> tuple[np.ndarray, Callable[[int], str]]:
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
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise DeployError(f"{path}: {error}; expected a numeric array") from None
    if array.dtype.kind not in "biuf":
        raise DeployError(f"{path}: expected a numeric array, got dtype {array.dtype}")
    if array.size == 0:
        raise DeployError(f"{path} is empty: expected rows of {bundle.describe_input()}")
    return array, None


def read_located(path: Path, bundle: Bundle) -> tuple[np.ndarray, Callable[[int], str] | None]:
    """Rows from a CSV, NPY or JSON file, checked and shaped to what the bundle's model takes, and
    what says where a row is in the file (a CSV's line), for later messages about it."""
    path = Path(path)
    readers = {".csv": _read_csv, ".json": _read_json_rows, ".npy": _read_npy}
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
    return None if record is None else record.outside(_flat(rows), margin)


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
        raise DeployError(f"{place}: {record.describe(index, _flat(rows)[row, index].item(), margin)}; "
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


# ---------------------------------------------------------------------------------------------
# Reading images (PNG and JPEG files, a folder of them, or base64 in JSON): Pillow, imported only here


#: image files a bundle whose metadata.json has an ``image`` entry takes, besides arrays
IMAGE_FORMATS = (".png", ".jpg", ".jpeg")
_IMAGE_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise DeployError("reading image files needs Pillow: pip install pillow") from None
    return Image


def is_image_input(path: Path) -> bool:
    """Whether ``path`` is an image file or a folder of them (else a file of rows)."""
    return path.is_dir() or path.suffix.lower() in IMAGE_FORMATS


def image_spec(bundle: Bundle, source: str) -> dict[str, Any]:
    """``metadata.json``'s ``image``: the channels, size and resize steps an image becomes an input row by."""
    spec = bundle.metadata.get("image")
    if not isinstance(spec, dict):
        raise DeployError(f"{source}: this bundle's model takes rows of {bundle.describe_input()}, not images "
                          "(its metadata.json has no 'image' entry)")
    return spec


def _resample(Image: Any, name: str) -> Any:
    return {"nearest": Image.Resampling.NEAREST, "bicubic": Image.Resampling.BICUBIC}.get(name, Image.Resampling.BILINEAR)


def _resized(Image: Any, picture: Any, steps: list[dict[str, Any]], height: int, width: int) -> Any:
    """``picture`` through the data pipeline's geometric steps, with torchvision's meaning (``resize``
    to [h, w], or the shorter side to [s] keeping the aspect ratio; ``center_crop``, padding with
    zeros where the image is smaller), then to (``width``, ``height``) if it is not there yet."""
    for step in steps:
        size, (w, h) = step["size"], picture.size
        if step["op"] == "resize":
            if len(size) == 1:
                short, long = (w, h) if w <= h else (h, w)
                new_short, new_long = size[0], int(size[0] * long / short)
                size = [new_long, new_short] if w <= h else [new_short, new_long]
            picture = picture.resize((size[1], size[0]), _resample(Image, step.get("interpolation", "bilinear")))
        elif step["op"] == "center_crop":
            crop_h, crop_w = size if len(size) == 2 else (size[0], size[0])
            top = int(round((h - crop_h) / 2.0)) if h >= crop_h else -((crop_h - h) // 2)
            left = int(round((w - crop_w) / 2.0)) if w >= crop_w else -((crop_w - w) // 2)
            picture = picture.crop((left, top, left + crop_w, top + crop_h))  # Pillow fills outside the image with zeros
    if picture.size != (width, height):
        picture = picture.resize((width, height), Image.Resampling.BILINEAR)
    return picture


def decode_image(data: bytes, bundle: Bundle, source: str) -> np.ndarray:
    """One PNG or JPEG image as the model's input row: decoded to the bundle's channels, resized as
    its data pipeline did, (C, H, W) pixels 0–255 in the model's input dtype. ``source`` names the
    image in every message (a file, or ``request body: image 2``)."""
    spec = image_spec(bundle, source)
    Image = _pillow()
    channels, height, width = spec["channels"], spec["height"], spec["width"]
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in ("PNG", "JPEG"):
                raise DeployError(f"{source} is a {image.format} image; send PNG or JPEG")
            image.load()  # decodes every pixel: a truncated or corrupt file fails here
            picture = image.convert(_IMAGE_MODES[channels])
    except DeployError:
        raise
    except Image.DecompressionBombError as error:
        raise DeployError(f"{source} is too large to decode safely ({error})") from None
    except Exception as error:  # Pillow raises UnidentifiedImageError, OSError, SyntaxError, ValueError for bad files
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise DeployError(f"{source} is not a readable PNG or JPEG image ({reason})") from None
    pixels = np.asarray(_resized(Image, picture, list(spec.get("resize", [])), height, width), dtype=np.uint8)
    pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
    return pixels.transpose(2, 0, 1).astype(bundle.input_dtype)


class ImageFiles:
    """The image files of ``path`` (one file, or every PNG and JPEG file of a folder, by name) as rows
    the model takes, decoded a slice at a time: a folder larger than memory streams through
    :func:`write_predictions`. ``names`` are the files, in row order."""

    def __init__(self, path: Path, bundle: Bundle) -> None:
        image_spec(bundle, str(path))
        if path.is_dir():
            self.files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_FORMATS and p.is_file() and not p.name.startswith("."))
            if not self.files:
                raise DeployError(f"{path} holds no PNG or JPEG files ({', '.join(IMAGE_FORMATS)})")
            self.names = [p.name for p in self.files]
        elif path.is_file():
            self.files, self.names = [path], [path.name]
        else:
            raise DeployError(f"input file not found: {path}")
        self.bundle = bundle

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, rows: slice) -> np.ndarray:
        return np.stack([decode_image(self._read(file), self.bundle, str(file)) for file in self.files[rows]])

    @staticmethod
    def _read(file: Path) -> bytes:
        try:
            data = file.read_bytes()
        except OSError as error:
            raise DeployError(f"cannot read {file}: {error.strerror or error}") from None
        if not data:
            raise DeployError(f"{file} is empty: expected a PNG or JPEG image")
        return data


def images_from_json(data: list[Any], bundle: Bundle, source: str) -> np.ndarray:
    """Rows from JSON items ``{"b64": "<base64 PNG or JPEG>"}`` (TensorFlow Serving's and KServe
    v1's convention for binary data in JSON), one image each."""
    rows = []
    for number, item in enumerate(data, start=1):
        where = f"{source}: image {number}"
        try:
            encoded = base64.b64decode(item["b64"], validate=True)
        except (TypeError, ValueError):
            raise DeployError(f"{where}: 'b64' must be a base64 string of a PNG or JPEG file") from None
        rows.append(decode_image(encoded, bundle, where))
    return np.stack(rows)


# ---------------------------------------------------------------------------------------------
# Predictions


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _table(bundle: Bundle, outputs: dict[str, np.ndarray]) -> tuple[list[str], list[str] | None, np.ndarray]:
    """The predictions as columns: value column names, the labels (None for regression), the values."""
    raw = outputs[bundle.metadata["outputs"][0]["name"]]
    if bundle.task == "regression":
        values = raw.reshape(len(raw), -1)
        names = ["prediction"] if values.shape[1] == 1 else [f"prediction_{i}" for i in range(values.shape[1])]
        return names, None, values
    probabilities = outputs.get("probabilities")
    if bundle.task == "binary":
        positive = (probabilities if probabilities is not None else 1 / (1 + np.exp(-raw))).reshape(-1)
        probabilities = np.stack([1 - positive, positive], axis=1)
    elif probabilities is None:
        probabilities = _softmax(raw)
    classes = bundle.classes or [str(i) for i in range(probabilities.shape[1])]
    labels = [classes[i] for i in probabilities.argmax(axis=1).tolist()]
    return [f"probability_{c}" for c in classes], labels, probabilities


def predictions(bundle: Bundle, outputs: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """One record per row: the class label and its probabilities, or the predicted values."""
    names, labels, values = _table(bundle, outputs)
    rows = values.tolist()
    if labels is None:
        return [dict(zip(names, row, strict=True)) for row in rows]
    return [{"label": label, **dict(zip(names, row, strict=True))} for label, row in zip(labels, rows, strict=True)]


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


OUT_OF_RANGE = "out_of_range"


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
                   files: list[str] | None = None) -> None:
    """Predict ``rows`` and write them OUTPUT_CHUNK at a time (IMAGE_CHUNK images): CSV with a
    header, or a JSON list of records; with ``files``, each row's file comes first."""
    writer = csv.writer(stream, lineterminator="\n")
    chunk = OUTPUT_CHUNK if files is None else IMAGE_CHUNK
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
                      checks: RowChecks | None = None) -> None:
    """Predict ``rows`` (checked by :func:`read_inputs`, or :class:`ImageFiles`) and write CSV, or
    JSON when ``output`` ends in .json, to ``output`` (atomically: a complete file or none) or as
    CSV to standard output; ``files`` names each row's image file in a first column. ``checks`` says
    what else is checked of each row (the training range) and how messages name rows."""
    checks = checks or RowChecks("input")
    if output is None:
        _write_records(sys.stdout, bundle, rows, batch_size, False, checks, files)
        return
    temporary = output.with_name(f".{output.name}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8", newline="") as stream:
            _write_records(stream, bundle, rows, batch_size, output.suffix.lower() == ".json", checks, files)
        temporary.replace(output)
    except OSError as error:
        raise DeployError(f"cannot write the predictions to {output}: {error.strerror or error}") from None
    finally:
        temporary.unlink(missing_ok=True)


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def predict(bundle_path: Path, input_path: Path, output: Path | None = None, batch_size: int = 1024, device: str = "cpu",
            verify_key: Path | None = None, warn: Callable[[str], None] = _warn, variant: str | None = None,
            range_check: str | None = None, margin: float = RANGE_MARGIN) -> int:
    """Open ``bundle_path`` (checking its signature against ``verify_key`` when given), read
    ``input_path``, run the model, write the predictions; returns the number of rows predicted.
    ``range_check`` ``flag`` adds each row's features outside their training range (by more than
    ``margin`` of it) to the output; ``refuse`` refuses such a row."""
    if batch_size < 1:
        raise DeployError(f"--batch-size must be at least 1, got {batch_size}")
    if range_check not in (None, *RANGE_CHECKS):
        raise DeployError(f"--range-check must be one of {', '.join(RANGE_CHECKS)}, got {range_check!r}")
    if not (math.isfinite(margin) and margin >= 0):
        raise DeployError(f"--range-margin must be a finite number of at least 0, got {margin!r}")
    if output is not None:
        check_output_path(Path(output), Path(input_path))
    bundle = open_bundle(bundle_path, device, verify_key=verify_key, variant=variant)
    for message in bundle.warnings():
        warn(message)
    if is_image_input(Path(input_path)):  # an image file or a folder of them
        images = ImageFiles(Path(input_path), bundle)
        checks = RowChecks(str(input_path), lambda row: f" ({images.names[row]})", range_check, margin)
        write_predictions(bundle, images, output, batch_size, images.names, checks)
        return len(images)
    rows, locate = read_located(input_path, bundle)
    write_predictions(bundle, rows, output, batch_size, checks=RowChecks(str(input_path), locate, range_check, margin))
    return len(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """``python predict.py BUNDLE --input FILE [--output FILE] [--batch-size N] [--device cpu|cuda] [--verify-key PUBLIC_KEY]
    [--variant NAME] [--range-check flag|refuse] [--range-margin M]``."""
    parser = argparse.ArgumentParser(prog="predict.py", description="Predict with a pipeline-core bundle using onnxruntime.")
    parser.add_argument("bundle", type=Path, help="the bundle folder (or a run folder holding bundle/)")
    parser.add_argument("--input", required=True, type=Path, help="rows to predict: .csv, .npy or .json; or a .png/.jpg image or a folder of them")
    parser.add_argument("--output", type=Path, help="where to write predictions (.csv or .json); default: stdout")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--verify-key", type=Path, help="refuse the bundle unless its manifest is signed by this Ed25519 public key")
    parser.add_argument("--variant", help="run one of the bundle's optimized variants (metadata.json lists them) instead of model.onnx")
    parser.add_argument("--range-check", choices=RANGE_CHECKS, help=RANGE_CHECK_HELP)
    parser.add_argument("--range-margin", type=float, default=RANGE_MARGIN, help=RANGE_MARGIN_HELP)
    args = parser.parse_args(argv)
    try:
        predict(args.bundle, args.input, args.output, args.batch_size, args.device, args.verify_key, variant=args.variant,
                range_check=args.range_check, margin=args.range_margin)
    except DeployError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
