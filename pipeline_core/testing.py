"""Test a plugin by running a small pipeline with it in a temporary folder, as ``pipeline run`` does.

::

    import my_plugin
    from pipeline_core.testing import run_with_plugins, small_pipeline

    def test_tiny_model(tmp_path):
        run = run_with_plugins(small_pipeline(model={"name": "tiny", "hidden": 8}), tmp_path, plugins=[my_plugin])
        assert run.metrics["test"]["accuracy"] > 0.8
        assert all(entry["passed"] for entry in run.export_report.values())

A pipeline is a table (``small_pipeline()`` gives a fast one to start from), the text of a pipeline
file, or the path of one. ``plugins`` registers plugin objects (a module, or an object with
``@hookimpl`` methods) for this run alone; an installed plugin is found through its entry point
anyway. Bad options raise :class:`~pipeline_core.ConfigError` with the messages ``pipeline validate``
prints (see :func:`load_with_plugins`).

(``run_with_plugins`` and ``load_with_plugins`` were called ``run_pipeline`` and ``load_pipeline``,
the names of the runner's own functions, which take a validated config instead; the old names work,
with a warning, until the next release.)
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import tomli_w

from pipeline_core._moved import renamed_names
from pipeline_core.components.host import Host
from pipeline_core.config.file import PipelineConfig
from pipeline_core.discovery.build import build_host
from pipeline_core.pipeline import runner
from pipeline_core.run.context import RunContext

__all__ = ["SMALL_PIPELINE", "Host", "build_host", "load_with_plugins", "run_with_plugins", "small_pipeline", "write_pipeline"]

#: Iris, a 16-unit MLP and five epochs of Adam: a complete pipeline that trains, evaluates and exports in seconds.
SMALL_PIPELINE: dict[str, Any] = {
    "pipeline": {"name": "small", "seed": 0},
    "data": {"name": "iris"},
    "model": {"name": "mlp", "hidden_sizes": [16]},
    "train": {"epochs": 5, "batch_size": 16, "optimizer": {"name": "adam", "lr": 0.01}, "loss": {"name": "cross_entropy"}},
}

Pipeline = Mapping[str, Any] | str | Path


def _merged(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied table by table; ``None`` removes a key, and a component table
    naming another component replaces the old one instead of inheriting its options."""
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        old = merged.get(key)
        if value is None:
            merged.pop(key, None)
        elif isinstance(old, dict) and isinstance(value, Mapping) and value.get("name", old.get("name")) == old.get("name"):
            merged[key] = _merged(old, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def small_pipeline(**sections: Mapping[str, Any] | None) -> dict[str, Any]:
    """:data:`SMALL_PIPELINE` with ``sections`` applied: ``small_pipeline(data={"name": "blobs"})``
    swaps the dataset; ``train={"epochs": 2}`` keeps the optimizer and loss; ``export=None`` is the
    default export. A section may be anything a pipeline file holds (``export``, ``evaluate``, ...)."""
    return _merged(SMALL_PIPELINE, sections)


def write_pipeline(pipeline: Pipeline, folder: Path) -> Path:
    """The pipeline as a file: a path is used as it is; a table or a text is written to
    ``folder/pipeline.toml`` (relative paths in it then start at ``folder``)."""
    if isinstance(pipeline, Path):
        return pipeline
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pipeline.toml"
    path.write_text(pipeline if isinstance(pipeline, str) else tomli_w.dumps(dict(pipeline)), encoding="utf-8")
    return path


def load_with_plugins(
    pipeline: Pipeline, folder: Path, *, plugins: Iterable[object] = (), overrides: Iterable[str] = ()
) -> tuple[PipelineConfig, Host]:
    """The validated config and a host with ``plugins`` registered besides those found as usual, as
    ``pipeline validate`` loads them; raises :class:`~pipeline_core.ConfigError` for a bad pipeline."""
    return runner.load_pipeline(write_pipeline(pipeline, Path(folder)), tuple(overrides), plugins=plugins)


def run_with_plugins(
    pipeline: Pipeline, folder: Path, *, plugins: Iterable[object] = (), overrides: Iterable[str] = ()
) -> RunContext:
    """Run the pipeline with ``plugins`` into ``folder/run``, as ``pipeline run --out folder/run -q``
    does; returns the finished run (``run.metrics``, ``run.export_report``, ``run.run_dir``, ...)."""
    config, host = load_with_plugins(pipeline, folder, plugins=plugins, overrides=overrides)
    return runner.run_pipeline(config, host, out=Path(folder) / "run", quiet=True)


#: until the next release, ``run_pipeline`` and ``load_pipeline`` (now :func:`run_with_plugins` and
#: :func:`load_with_plugins`), with a DeprecationWarning
__getattr__ = renamed_names(__name__)
