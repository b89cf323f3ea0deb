"""What every part of the deploy side shares: the names of a bundle's files, the one error type
(:class:`DeployError`, exit code 2 with a message that says what was expected), and the helpers
that keep messages short.

It exists so the modules that check, open and run a bundle depend on one small foundation rather
than on each other; nothing here reads a bundle.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
METADATA = "metadata.json"
MODEL = "model.onnx"
#: the name ``--variant`` gives model.onnx itself, beside the optimized variants metadata.json lists
BASELINE_VARIANT = "float32"
SIGNATURE = "manifest.json.sig"
BUNDLE_DIR = "bundle"
SIGNATURE_FORMAT = {"name": "pipeline-core-signature", "version": 1}
TASKS = ("multiclass", "binary", "regression")
#: a run folder's own files, read only to explain why a run folder has no bundle
RUN_STATUS, RUN_WEIGHTS, FAILED_BUNDLE = "status.json", "weights.pt", "bundle.failed"


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
