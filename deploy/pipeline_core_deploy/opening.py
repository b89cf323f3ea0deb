"""Opening a bundle: :func:`open_bundle` (every check, in order, then an onnxruntime session) and
:func:`verify_bundle` (the same checks on every ONNX file the bundle ships, without predicting).
:func:`open_bundle` also takes a plain ``.onnx`` file (:func:`open_plain_onnx`): served and predicted
as it is, its input and outputs read from the graph, and said everywhere to be unverified.

Why its own module: the order of the checks is the security argument, so it is written once, here:
the signature of the manifest's exact bytes, every listed file hashed, ``metadata.json`` read from
the bytes that were hashed, the model loaded from the bytes that were hashed (external data only
from inside the bundle), and what the bundle states twice held against each other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline_core_deploy.bundle import Bundle, variant_file
from pipeline_core_deploy.common import BASELINE_VARIANT, MANIFEST, METADATA, MODEL, DeployError, _clip, _sha256
from pipeline_core_deploy.consistency import _check_metadata, _cross_check
from pipeline_core_deploy.manifest import _manifest_files, _read_manifest, _unlisted, _verified, verify_files
from pipeline_core_deploy.signature import verify_signature


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

    return _new_session(str(folder / model_file) if locations else model, str(folder / model_file), device, threads, b"location" in model)


def _new_session(source: str | bytes, name: str, device: str, threads: int, external_hint: bool = False) -> Any:
    """An onnxruntime session for ``source`` (a path, or a model's bytes), ``name`` in messages."""
    try:
        import onnxruntime
    except ImportError:
        raise DeployError(f"onnxruntime is not installed, and {name} needs it to run: install the deploy side with one "
                          f"runtime, pip install 'pipeline-core-deploy[cpu]' (onnxruntime, CPU) or 'pipeline-core-deploy[gpu]' "
                          f"(onnxruntime-gpu, CUDA and CPU); from a checkout, pip install './deploy[cpu]'") from None

    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            raise DeployError("--device cuda: this onnxruntime has no CUDA provider; install the gpu runtime in its place: "
                              "pip uninstall onnxruntime && pip install 'pipeline-core-deploy[gpu]'")
        providers.insert(0, "CUDAExecutionProvider")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    if threads > 0:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return onnxruntime.InferenceSession(source, options, providers=providers)
    except Exception as error:  # onnxruntime raises its own exception types for a file it cannot load
        reason = _clip(" ".join(str(error).split()), 300)
        hint = "; a model with external data needs the onnx package to check those files (pip install onnx)" if external_hint else ""
        raise DeployError(f"{name} cannot be loaded by onnxruntime: {reason}{hint}") from None


#: onnxruntime's tensor types and the NumPy dtypes rows are given as
_ORT_TYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16", "tensor(uint8)": "uint8",
              "tensor(int8)": "int8", "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(bool)": "bool"}


def _plain_dims(shape: list[Any], where: str, dynamic_after_batch_ok: bool = False) -> list[Any]:
    """A graph's shape as bundle metadata writes it: a dynamic batch axis as ``"batch"``, every other
    dimension a number (-1 where an output's dimension is dynamic)."""
    if not shape:
        raise DeployError(f"{where} is a scalar; a model served here takes and gives rows, with the batch axis first")
    rest = []
    for position, dim in enumerate(shape[1:], start=1):
        if isinstance(dim, int):
            rest.append(dim)
        elif dynamic_after_batch_ok:
            rest.append(-1)
        else:
            raise DeployError(f"{where}: dimension {position} is dynamic ({dim!r}); a plain ONNX file is served with fixed dimensions "
                              "after the batch axis (export it with them fixed, or as a bundle with `pipeline export`)")
    return [shape[0] if isinstance(shape[0], int) else "batch", *rest]


def open_plain_onnx(path: Path, device: str = "cpu", threads: int = 0, verify_key: Path | None = None,
                    variant: str | None = None) -> Bundle:
    """A plain ``.onnx`` file as a :class:`Bundle` described by its graph: one input (its name, type
    and shape), every output, the answer written as the first output's values. Nothing vouches for
    it (no manifest, no signature, no training range; batch independence not measured, so each row
    runs alone) and ``Bundle.verified`` is False, which every command and endpoint says."""
    for option, value in (("--verify-key", verify_key), ("--variant", variant)):
        if value is not None:
            raise DeployError(f"{option}: {path} is a plain ONNX file, not a bundle: it has no manifest to sign nor variants; "
                              "use it without the option, or export a bundle with `pipeline export`")
    beside = [name for name in (MANIFEST, METADATA) if (path.parent / name).exists()]
    if beside:  # a bundle's model taken out of its bundle (or a bundle whose manifest was removed) is never served unverified
        raise DeployError(f"{path} belongs to a bundle ({', '.join(beside)} beside it); serve or predict with the bundle folder "
                          f"{path.parent}, which is verified, not with its model file alone")
    session = _new_session(str(path), str(path), device, threads)
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        raise DeployError(f"{path} takes {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); a model served here takes one")
    tensor = inputs[0]
    if tensor.type not in _ORT_TYPES:
        raise DeployError(f"{path}: input {tensor.name!r} is {tensor.type}; a model served here takes one of {', '.join(_ORT_TYPES)}")
    metadata = {
        "pipeline": path.stem,
        "task": "regression",  # the values of the first output: no labels are known
        "input": {"name": tensor.name, "dtype": _ORT_TYPES[tensor.type], "shape": _plain_dims(list(tensor.shape), f"{path}: input {tensor.name!r}")},
        "outputs": [{"name": o.name, "shape": _plain_dims(list(o.shape), f"{path}: output {o.name!r}", True)} for o in outputs],
        "source": "plain ONNX file",
    }
    return Bundle(path, metadata, session, verified=False)


def open_bundle(path: Path, device: str = "cpu", threads: int = 0, verify_key: Path | None = None, variant: str | None = None) -> Bundle:
    """Verify and open a bundle folder (or a run folder holding ``bundle/``). Every file the manifest
    lists is hashed first, and the bundle refused when any is missing or changed. ``threads`` sets
    onnxruntime's intra-op threads (0: its default, one per core); a server that runs several
    batches or models at once chooses fewer, so they do not fight over the cores. With
    ``verify_key`` (a public key file) the manifest must carry a valid signature by that key.
    ``variant`` runs one of the bundle's optimized variants instead of model.onnx (see :func:`variant_file`)."""
    path = Path(path)
    if path.suffix.lower() == ".onnx" and path.is_file():
        return open_plain_onnx(path, device, threads, verify_key, variant)
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
    if not bundle.verified:
        raise DeployError(f"{path} is a plain ONNX file, not a bundle: there is no manifest to verify it against; "
                          "export a bundle with `pipeline export RUN` to ship a model that can be verified")
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
