"""Shared fixtures: small pipeline files written to a temporary folder, the command line, one iris
run trained for the whole session (the deploy tests' bundle), isolation from the environment's
plugins, threads and model-check cache. Shared functions are in helpers.py."""

from __future__ import annotations

import copy
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from pipeline_core import RunContext

from helpers import IRIS_FAST, run_file


def _build_the_onnx_registry_once() -> None:
    """Every ONNX export builds torch's exporter registry afresh (``ONNXRegistry.from_torchlib``): it
    re-reads the source of onnxscript's ~500 torchlib functions and infers ~2,700 signatures, about
    0.9 s on this machine, the same each time, and this process exports a few hundred times. Here it is
    built once per opset, and each export gets its own copy (its own dict and lists, so a custom op an
    export registers stays in that export); the export itself, its checks and the files are as before.
    A ``pipeline`` subprocess exports once and builds its own. With another torch that has no such
    method, nothing is changed and exports are only slower."""
    try:
        from torch.onnx._internal.exporter._registration import ONNXRegistry
    except ImportError:
        return
    build = getattr(ONNXRegistry.__dict__.get("from_torchlib"), "__func__", None)
    if build is None:
        return
    built: dict[tuple, object] = {}

    def from_torchlib(cls, *args, **kwargs):
        key = (cls, args, tuple(sorted(kwargs.items())))
        if key not in built:
            built[key] = build(cls, *args, **kwargs)
        registry = copy.copy(built[key])
        registry.functions = {target: list(decompositions) for target, decompositions in built[key].functions.items()}
        return registry

    ONNXRegistry.from_torchlib = classmethod(from_torchlib)


_build_the_onnx_registry_once()


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    """Runs set torch's thread count on purpose; keep one test's choice from leaking into the next."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _private_check_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test its own model-check cache (pipeline_core.model.check_cache), never ~/.cache: a check one
    test passed must not let another test's validate skip it."""
    monkeypatch.setenv("PIPELINE_CORE_CACHE_DIR", str(tmp_path_factory.mktemp("check-cache")))
    monkeypatch.delenv("PIPELINE_CORE_NO_CACHE", raising=False)


@pytest.fixture
def write_pipeline(tmp_path: Path) -> Callable[..., Path]:
    """Write a pipeline file (dedented) and return its path."""

    def write(text: str = IRIS_FAST, name: str = "pipeline.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    return write


@pytest.fixture
def isolated_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """No third-party entry points from the environment leak into a test."""
    monkeypatch.delenv("PIPELINE_CORE_PLUGINS", raising=False)
    monkeypatch.delenv("PIPELINE_CORE_BLOCK_PLUGINS", raising=False)


@pytest.fixture(scope="session")
def trained_iris(tmp_path_factory: pytest.TempPathFactory) -> RunContext:
    """The small iris pipeline trained for 30 epochs, once for the session, with its sealed bundle.
    Read it only: a test that edits the bundle edits a copy."""
    folder = tmp_path_factory.mktemp("trained")
    path = folder / "pipeline.toml"
    path.write_text(textwrap.dedent(IRIS_FAST).lstrip().replace("epochs = 3", "epochs = 30"))
    threads = torch.get_num_threads()
    run = run_file(path, folder / "run")
    torch.set_num_threads(threads)
    return run


@pytest.fixture(scope="session")
def iris_bundle(trained_iris: RunContext) -> Path:
    """:func:`trained_iris`'s sealed bundle. Read it only."""
    return trained_iris.run_dir / "bundle"
