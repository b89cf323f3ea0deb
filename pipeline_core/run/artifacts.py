"""Run folders, atomic writes and the manifest.

A file in a run folder is either complete or absent: every write goes to a temporary file in the same
folder, is flushed and fsynced, and is renamed over the target, so a crash or a full disk never leaves
a half-written artifact and never destroys the previous good copy.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline_core.errors import PipelineError
from pipeline_core.version import installed_version

#: Where run folders go unless ``--out`` or ``--artifacts`` says otherwise: ``<root>/<pipeline>/<timestamp>``.
DEFAULT_ROOT = Path("artifacts")


class RunFiles:
    """The files of a run folder that the host and the stages agree on, by name."""

    CONFIG = "config.toml"  # the resolved configuration, every default written out
    RUN_RECORD = "run.json"  # where the run came from: the pipeline file, its folder, the config hash
    STATUS = "status.json"  # why a run folder without a manifest stopped, or that the run succeeded
    WEIGHTS = "weights.pt"  # the trained state dict (torch.load(..., weights_only=True))
    TRAINING = "training.json"  # what training actually did: epochs run, steps, early stop (TrainingSummary)
    HISTORY = "history.csv"  # one row per epoch
    METRICS = "metrics.json"  # split → metric → value
    DATA = "data.json"  # with streamed splits: decoded into memory or streamed, sizes, memory limit, workers
    EXPORT_REPORT = "export_report.json"  # per format: the export check
    MANIFEST = "manifest.json"  # versions, provenance and the sha256 of every file; written last

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Have ``write`` fill a temporary file next to ``path``, fsync it, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temp_path = Path(temporary)
    os.chmod(temp_path, 0o666 & ~_UMASK)  # mkstemp creates 0600; artifacts are ordinary files
    try:
        write(temp_path)
        with open(temp_path, "rb+") as stream:
            os.fsync(stream.fileno())
        os.replace(temp_path, path)
    except OSError as error:
        temp_path.unlink(missing_ok=True)
        raise PipelineError(f"could not write {path}: {error.strerror or error}; the previous file is untouched") from error
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    return atomic_write(path, lambda temp: temp.write_bytes(data))


def write_text(path: Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def json_text(value: Any) -> str:
    """``value`` as the JSON text every file of a run folder is written in."""
    return json.dumps(value, indent=2, sort_keys=False, default=str) + "\n"


def write_json(path: Path, value: Any) -> Path:
    return write_text(path, json_text(value))


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file's object, or ``{}`` when it is missing or unreadable (a run folder stopped early)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def csv_text(rows: list[dict[str, Any]], last: tuple[str, ...] = ()) -> str:
    """Rows with possibly different keys as CSV; columns are the union, in first-seen order, except
    those named in ``last``, which end the row in that order (where a column that only some rows have
    appears after them, as a history's val_ columns when the first epoch was not validated)."""
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    columns = [key for key in columns if key not in last] + [key for key in last if key in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def new_run_dir(artifacts_root: Path, pipeline_name: str, out: Path | None) -> Path:
    """``--out DIR`` (which must be empty or absent), else ``<root>/<name>/<UTC timestamp>``."""
    if out is not None:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise PipelineError(f"--out {out}: the folder already holds files; choose a new folder or empty it")
        out.mkdir(parents=True, exist_ok=True)
        return out
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    base = artifacts_root / pipeline_name
    candidate, counter = base / stamp, 1
    while candidate.exists():
        counter += 1
        candidate = base / f"{stamp}-{counter}"
    candidate.mkdir(parents=True)
    return candidate


def point_latest(run_dir: Path) -> None:
    """Make ``<name>/latest`` a symlink to ``run_dir`` (replaced atomically) when it sits in such a folder."""
    link = run_dir.parent / "latest"
    temporary = run_dir.parent / f".latest.{os.getpid()}"
    try:
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(run_dir.name, target_is_directory=True)
        os.replace(temporary, link)
    except OSError:
        temporary.unlink(missing_ok=True)  # symlinks may be unavailable (some Windows setups)


def versions(packages: Iterable[str] = ("pipeline-core", "torch", "onnx", "onnxruntime-gpu", "onnxruntime", "numpy", "scikit-learn")) -> dict[str, str]:
    """The Python, platform and installed package versions a manifest records."""
    found = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in packages:
        version = installed_version(package)
        if version is not None:
            found[package] = version
    return found


def write_manifest(run_dir: Path, extra: dict[str, Any]) -> Path:
    """``manifest.json``: versions, ``extra`` (seed, config hash, ...), and sha256 of every file."""
    files = {}
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file() and not p.name.startswith(".")):
        relative = path.relative_to(run_dir).as_posix()
        if relative != RunFiles.MANIFEST:
            files[relative] = {"sha256": sha256(path), "bytes": path.stat().st_size}
    manifest = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": versions(),
        **extra,
        "files": files,
    }
    return write_json(run_dir / RunFiles.MANIFEST, manifest)


def replace_folder(source: Path, target: Path) -> Path:
    """Put the complete folder ``source`` in the place of ``target`` (replacing it if present).

    ``target`` is the old folder, whole, until the first rename and the new one, whole, after the
    second; a crash between them leaves the old one as ``.<name>.old``, which the next call puts back
    before it starts."""
    old = target.with_name(f".{target.name}.old")
    if old.exists() and not target.exists():
        os.replace(old, target)  # an earlier swap stopped half-way: the old folder is the valid one
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(source, target)
    shutil.rmtree(old, ignore_errors=True)
    return target
