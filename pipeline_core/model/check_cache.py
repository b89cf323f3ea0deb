"""Passed model checks, remembered by content, so ``pipeline validate`` answers without importing torch.

The model check (:mod:`pipeline_core.model.check`) builds the model and runs it once, which needs
torch, and importing torch alone takes seconds. Its outcome depends only on what goes into it, so,
like ruff's and pytest's caches, a passed check is kept under a key made of that content: the model
component (name, plugin, the plugin's version and the size and modification time of every ``.py``
file of its top-level package, or of its one module file), its resolved options (a file named by an
option by its size and modification time too), the dataset's :class:`DataSpec` (its dtype by name,
read without torch), the versions of torch and torchvision (package metadata, not an import) and
the check's own source. Anything else misses and the check runs again. Only passed checks are kept:
a failing one runs every time and shows its full error. ``pipeline run`` and ``pipeline inspect``
record the check their ``build_model`` stage passed, so validating a pipeline that has run is fast.

The folder is ``$PIPELINE_CORE_CACHE_DIR``, else ``$XDG_CACHE_HOME/pipeline-core``, else
``~/.cache/pipeline-core``; ``PIPELINE_CORE_NO_CACHE=1`` turns the cache off. Entries are written
atomically, and an entry that cannot be read or parsed is ignored (the check runs).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline_core.version import installed_version

if TYPE_CHECKING:
    from pipeline_core.components.host import Host
    from pipeline_core.config.file import PipelineConfig
    from pipeline_core.data.spec import DataSpec
    from pipeline_core.run.context import RunContext

#: bumped when an entry's meaning changes, so older entries miss
FORMAT = 1
#: the modules whose code decides the check's outcome
_CHECK_MODULES = ("check.py", "check_cache.py")


def cache_dir() -> Path | None:
    """Where the entries live, or ``None`` when ``PIPELINE_CORE_NO_CACHE`` turns the cache off."""
    if os.environ.get("PIPELINE_CORE_NO_CACHE", "") not in ("", "0"):
        return None
    if os.environ.get("PIPELINE_CORE_CACHE_DIR"):
        return Path(os.environ["PIPELINE_CORE_CACHE_DIR"])
    base = Path(os.environ["XDG_CACHE_HOME"]) if os.environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "pipeline-core"


def _stat(path: Path) -> list[Any]:
    try:
        status = path.stat()
    except OSError:
        return [str(path), None]
    return [str(path), status.st_mtime_ns, status.st_size]


def source_fingerprint(factory: Any) -> list[list[Any]] | None:
    """The size and modification time of every ``.py`` file of the package ``factory`` comes from
    (its top-level package, so a helper module it imports counts), or of its one module file;
    ``None`` when its source cannot be found (nothing is then cached)."""
    top = sys.modules.get(getattr(factory, "__module__", "").partition(".")[0])
    folders = list(getattr(top, "__path__", []) or [])
    if folders:
        return [_stat(path) for folder in folders for path in sorted(Path(folder).rglob("*.py"))]
    try:
        return [_stat(Path(inspect.getfile(top if top is not None and getattr(top, "__file__", None) else factory)))]
    except (TypeError, OSError):
        return None


def _plain(value: Any) -> Any:
    """Options as JSON: a pydantic model by its fields, a file by its name, size and modification time."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, Path):
        return _stat(value)
    return repr(value)


def spec_fields(spec: DataSpec) -> dict[str, Any]:
    """The spec's fields, its dtype by name (reading ``input_dtype`` would import torch)."""
    fields = {field.name: getattr(spec, field.name) for field in dataclasses.fields(spec) if field.name != "input_dtype"}
    return {**fields, "image": dataclasses.asdict(spec.image) if spec.image is not None else None, "input_dtype": spec.dtype_name}


def model_check_key(config: PipelineConfig, host: Host, spec: DataSpec) -> str | None:
    """The key of the configured model's check against ``spec``, or ``None`` when it cannot be made
    (no cache, no model, the model's source not found, options that are not plain data)."""
    if cache_dir() is None or config.model is None:
        return None
    component = host.registry.get("model", config.model.name)
    sources = source_fingerprint(component.factory)
    info = host.plugins.get(component.plugin)
    if sources is None:
        return None
    here = Path(__file__).parent
    content = {
        "format": FORMAT,
        "model": [component.name, component.plugin, info.version if info else None, sources],
        "options": config.model.resolved_options(config.root),
        "spec": spec_fields(spec),
        "versions": {name: installed_version(name) for name in ("torch", "torchvision", "pipeline-core")},
        "check": [_stat(here / name) for name in _CHECK_MODULES],
    }
    try:
        text = json.dumps(content, sort_keys=True, default=_plain)
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(text.encode()).hexdigest()


def _entry(key: str) -> Path:
    folder = cache_dir()
    assert folder is not None
    return folder / "model-checks" / f"{key}.json"


def recall(key: str | None) -> dict[str, Any] | None:
    """The outcome of the passed check under ``key``, or ``None`` (no entry, or one that cannot be read)."""
    if key is None or cache_dir() is None:
        return None
    try:
        entry = json.loads(_entry(key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) and entry.get("format") == FORMAT and isinstance(entry.get("outputs"), int) else None


def remember(key: str | None, outputs: int) -> None:
    """Keep a passed check's outcome (``outputs`` per row) under ``key``; a cache that cannot be
    written is skipped, never an error: the check simply runs again next time."""
    if key is None or cache_dir() is None:
        return
    from pipeline_core.errors import PipelineError
    from pipeline_core.run.artifacts import atomic_write

    text = json.dumps({"format": FORMAT, "outputs": outputs})
    try:
        atomic_write(_entry(key), lambda temp: temp.write_text(text, encoding="utf-8"))
    except (OSError, PipelineError):
        pass


def remember_model_check(run: RunContext, spec: DataSpec, outputs: int) -> None:
    """Record that the run's configured model passed the model check on data of ``spec`` with
    ``outputs`` per row, so ``pipeline validate`` of the same pipeline answers from the cache. The
    ``build_model`` stage calls it after :func:`pipeline_core.engine.check_model_outputs` passed."""
    remember(model_check_key(run.config, run.host, spec), outputs)
