"""The manifest: the sha256 of every file a bundle ships, checked before anything is used.

Why its own module: hashing is the first line of trust and the one every other check stands on. A
bundle is used whole or not at all, so every listed file is hashed (a model card or the bundle's
``predict.py`` that no longer matches stops the bundle as much as the model does), every problem is
named at once, and a file the manifest lists is read once: the bytes checked are the bytes used.
A run folder without a sealed bundle is explained from its ``status.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from pipeline_core_deploy.common import (
    BUNDLE_DIR,
    FAILED_BUNDLE,
    MANIFEST,
    METADATA,
    MODEL,
    RUN_STATUS,
    RUN_WEIGHTS,
    SIGNATURE,
    DeployError,
    _clip,
    _sha256,
)


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


def _read_manifest(path: Path) -> tuple[Path, bytes]:
    """The bundle folder at ``path`` (or in the run folder ``path``) and its manifest's bytes, read once:
    the bytes checked are the bytes used."""
    folder = bundle_folder(path)
    if not folder.is_dir():
        raise DeployError(f"no bundle at {path}: expected a folder holding {MANIFEST}, {METADATA} and {MODEL} "
                          "(or a plain .onnx file, served unverified)")
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
