"""Checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint holds the model, optimizer, scheduler and grad-scaler states, every random number
generator (Python, NumPy, torch, CUDA, and the shuffling generator), the epoch and step, the
history, early-stopping state and, when a run was stopped mid-epoch, that epoch's order and
position. It is written atomically (temporary file, fsync, rename) and only then named in
``checkpoints/latest.json``, so a half-written checkpoint is never picked up. Files load with
``torch.load(weights_only=True)``: nothing in them can execute code.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline_core.errors import PipelineError
from pipeline_core.run.artifacts import atomic_write, sha256, write_json

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
    """Write ``payload`` as ``checkpoints/step-N.pt``, then point ``latest.json`` at it, then prune
    all but the newest ``keep``. A failure at any point leaves the previous latest checkpoint intact."""
    folder = run_dir / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{payload['step']:09d}.pt"
    atomic_write(path, lambda temp: torch.save({"format": FORMAT, **payload}, temp))
    write_json(folder / LATEST, {"file": path.name, "epoch": payload["epoch"], "step": payload["step"], "sha256": sha256(path)})
    for old in sorted(folder.glob("step-*.pt"))[:-keep]:
        old.unlink(missing_ok=True)
    return path


def latest(run_dir: Path) -> Path | None:
    """The last checkpoint recorded as complete, or ``None`` when the run has none."""
    pointer = run_dir / FOLDER / LATEST
    if not pointer.is_file():
        return None
    try:
        record = json.loads(pointer.read_text(encoding="utf-8"))
        path = run_dir / FOLDER / record["file"]
        if not path.is_file() or sha256(path) != record["sha256"]:
            raise PipelineError(f"{pointer} names {record['file']}, which is missing or does not match its sha256")
    except (ValueError, KeyError) as error:
        raise PipelineError(f"{pointer} cannot be read ({error}); the checkpoints of this run are damaged") from None
    return path


def load(path: Path) -> dict[str, Any]:
    """A checkpoint's payload, loaded safely onto the CPU."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != FORMAT:
        raise PipelineError(f"{path} is checkpoint format {payload.get('format')!r}; this version reads format {FORMAT}")
    return payload
