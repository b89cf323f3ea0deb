"""Reading a pipeline file: its TOML, the ``--set`` overrides, the plugins it names, validated.

Apart from :mod:`pipeline_core.pipeline.runner` and free of torch, so that ``pipeline validate`` (which
reads, loads plugins and validates, then answers its model check from the cache) starts without
importing torch; the runner imports :func:`load_pipeline` from here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pipeline_core.components.host import Host
from pipeline_core.config.file import PipelineConfig, apply_overrides, declared_root, plugin_references, read_toml, validate
from pipeline_core.discovery.build import build_host


def load_pipeline(
    path: Path, overrides: tuple[str, ...] = (), base_dir: Path | None = None, plugins: Iterable[object] = ()
) -> tuple[PipelineConfig, Host]:
    """Read ``path``, apply ``--set`` overrides, load the plugins it names, and validate it.

    Relative paths in the file (plugins, data) start at ``base_dir``, by default the file's folder.
    ``plugins`` are plugin objects registered besides those (:mod:`pipeline_core.testing`)."""
    raw, text = read_toml(path)
    apply_overrides(raw, overrides)
    declared = raw.get("pipeline", {}).get("base_dir") if isinstance(raw.get("pipeline"), dict) else None
    root = base_dir if base_dir is not None else declared_root(path, declared)
    host = build_host(
        plugin_references(raw, path), base_dir=root, source=str(path),
        disabled=plugin_references(raw, path, "disable_plugins"), given=plugins,
    )
    return validate(raw, host.registry, path, text, overrides, base_dir), host
