"""Shared fixtures: small pipeline files written to a temporary folder, and a way to register a test
plugin for the duration of one test (llm's ``tests/conftest.py`` pattern)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

IRIS_FAST = """
[pipeline]
name = "iris_fast"
seed = 3

[data]
name = "iris"

[model]
name = "mlp"
hidden_sizes = [16, 8]
batch_norm = [true, false]

[train]
epochs = 3
batch_size = 16

[train.optimizer]
name = "adam"
lr = 0.01

[train.loss]
name = "cross_entropy"
"""


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    """Runs set torch's thread count on purpose; keep one test's choice from leaking into the next."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _private_check_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test its own model-check cache (pipeline_core.check_cache), never ~/.cache: a check one
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
