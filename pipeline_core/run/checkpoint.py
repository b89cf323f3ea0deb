"""Checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint holds the model, optimizer, scheduler and grad-scaler states, every random number
generator (Python, NumPy, torch, CUDA, and the shuffling generator), the epoch and step, the
history, early-stopping state and, when a run was stopped mid-epoch, that epoch's order and
position. It is written atomically (temporary file, fsync, rename) and only then named in
``checkpoints/latest.json``, so a half-written checkpoint is never picked up. Files load with
``torch.load(weights_only=True)``: nothing in them can execute code.

Every kept checkpoint's sha256 is recorded twice: in a small ``step-N.json`` beside it and in
``latest.json``'s ``kept`` list (newest first). So when the newest checkpoint is missing or damaged
(a disk error, a copy cut short, bytes overwritten), resuming falls back to the newest one that
verifies and says which, and how many steps will run again; the damaged file is set aside
(``.damaged``), never deleted, never loaded. Only a checkpoint whose recorded hash matches is ever used.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline_core.errors import PipelineError
from pipeline_core.run.artifacts import atomic_write, read_json, sha256, write_json

FOLDER = "checkpoints"
LATEST = "latest.json"
FORMAT = 1


def capture_rng(shuffle: torch.Generator) -> dict[str, Any]:
    """Every generator's state, as tensors and plain values (loadable with ``weights_only=True``)."""
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "shuffle": shuffle.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], shuffle: torch.Generator) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["kind"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["position"],
                         numpy_state["has_gauss"], numpy_state["cached"]))
    torch.set_rng_state(state["torch"])
    shuffle.set_state(state["shuffle"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(run_dir: Path, payload: dict[str, Any], keep: int) -> Path:
    """Write ``payload`` as ``checkpoints/step-N.pt`` and its record ``step-N.json`` (its sha256), then
    point ``latest.json`` at it with the records of every kept checkpoint, then prune all but the
    newest ``keep``. A failure at any point leaves the previous latest checkpoint intact."""
    folder = run_dir / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{payload['step']:09d}.pt"
    buffer = io.BytesIO()  # saved in memory, written by Python: torch's file writer aborts the process on a full disk
    torch.save({"format": FORMAT, **payload}, buffer)
    atomic_write(path, lambda temp: temp.write_bytes(buffer.getvalue()))
    record = {"file": path.name, "epoch": payload["epoch"], "step": payload["step"], "sha256": sha256(path)}
    write_json(_record_path(path), record)
    newest = sorted(folder.glob("step-*.pt"))[-keep:]
    kept = [read_json(_record_path(kept)) for kept in reversed(newest)]
    write_json(folder / LATEST, {**record, "kept": [entry for entry in kept if entry]})
    for old in sorted(folder.glob("step-*.pt"))[:-keep]:
        old.unlink(missing_ok=True)
        _record_path(old).unlink(missing_ok=True)
    return path


def _record_path(checkpoint: Path) -> Path:
    return checkpoint.with_suffix(".json")


@dataclass
class Found:
    """The checkpoint a resumed run continues from, and the newer ones it passed over, with why."""

    path: Path
    step: int
    skipped: list[tuple[Path, int, str]] = field(default_factory=list)  # (checkpoint, step, what is wrong)

    def note(self) -> str:
        """What a person should be told when a newer checkpoint was passed over ("" when none was)."""
        if not self.skipped:
            return ""
        newest = max(step for _, step, _ in self.skipped)
        passed = "; ".join(f"{path.name} (step {step}) {reason}" for path, step, reason in self.skipped)
        return (f"{passed}; resuming from {self.path.name} (step {self.step}), the newest checkpoint that verifies: "
                f"{newest - self.step} step(s) will run again, with the same result as an uninterrupted run; "
                f"the damaged file(s) are kept beside it as .damaged")


def _candidates(folder: Path) -> list[dict[str, Any]]:
    """Checkpoint records, newest first: ``latest.json``'s (its ``kept`` list, or its one record in a
    run folder of an earlier version), then any ``step-N.json`` beside a checkpoint it does not name."""
    pointer = read_json(folder / LATEST)
    records = list(pointer.get("kept") or ([pointer] if pointer else []))
    named = {record.get("file") for record in records}
    beside = [read_json(path) for path in sorted(folder.glob("step-*.json"), reverse=True)]
    records += [record for record in beside if record and record.get("file") not in named]
    return [record for record in records if isinstance(record.get("file"), str) and isinstance(record.get("sha256"), str)]


def _problem(folder: Path, record: dict[str, Any]) -> str:
    path = folder / record["file"]
    if Path(record["file"]).name != record["file"]:
        return "is not a checkpoint of this folder"
    if not path.is_file():
        return "is missing"
    return "" if sha256(path) == record["sha256"] else "does not match its recorded sha256 (the file was damaged)"


def find(run_dir: Path) -> Found | None:
    """The newest checkpoint of ``run_dir`` whose recorded sha256 matches, and the newer ones passed
    over; ``None`` when the run never wrote one. Raises :class:`PipelineError` when checkpoints were
    written but none verifies, saying what each one is and what the run folder still holds."""
    folder = run_dir / FOLDER
    if not folder.is_dir() or not (any(folder.glob("step-*.pt")) or (folder / LATEST).is_file()):
        return None
    skipped: list[tuple[Path, int, str]] = []
    for record in _candidates(folder):
        problem = _problem(folder, record)
        if not problem:
            return Found(folder / record["file"], int(record.get("step", 0)), skipped)
        skipped.append((folder / record["file"], int(record.get("step", 0)), problem))
    unrecorded = sorted({path.name for path in folder.glob("step-*.pt")} - {path.name for path, _, _ in skipped})
    found = [f"{path.name} {problem}" for path, _, problem in skipped] + [f"{name} has no recorded sha256" for name in unrecorded]
    raise PipelineError(
        f"{run_dir} cannot be resumed: no checkpoint in {folder} verifies ({'; '.join(found) or 'latest.json cannot be read'}); "
        f"a checkpoint is used only when its recorded sha256 matches. The run folder still holds its configuration "
        f"({run_dir / 'config.toml'}) and what the stages before training wrote; start the run again from its configuration "
        f"(`pipeline run {run_dir / 'config.toml'}`) to train from the beginning"
    )


def latest(run_dir: Path) -> Path | None:
    """The newest checkpoint that verifies (see :func:`find`), or ``None`` when the run has none."""
    found = find(run_dir)
    return None if found is None else found.path


def set_aside(found: Found) -> None:
    """Rename the checkpoints ``found`` passed over to ``….damaged`` (kept for inspection, never loaded),
    so the run's next checkpoints take their place."""
    for path, _, _ in found.skipped:
        if path.exists():
            path.replace(path.with_name(path.name + ".damaged"))
        _record_path(path).unlink(missing_ok=True)


def load(path: Path) -> dict[str, Any]:
    """A checkpoint's payload, loaded safely onto the CPU."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != FORMAT:
        raise PipelineError(f"{path} is checkpoint format {payload.get('format')!r}; this version reads format {FORMAT}")
    return payload
