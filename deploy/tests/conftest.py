"""Fixtures of the deploy suite, which runs where only the deploy distribution is installed
(``make test-deploy``: .venv-deploy). Bundles are built once a session, without torch, by
:mod:`bundles`; a test that changes one works on its own copy (``bundles.copy_bundle``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bundles import build_bundle


@pytest.fixture(scope="session")
def bundles_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bundles")


@pytest.fixture(scope="session")
def iris_bundle(bundles_root: Path) -> Path:
    """The iris-like classifier, with its int8_dynamic variant."""
    return build_bundle(bundles_root / "iris", "multiclass", int8=True)


@pytest.fixture(scope="session")
def binary_bundle(bundles_root: Path) -> Path:
    return build_bundle(bundles_root / "moons", "binary")


@pytest.fixture(scope="session")
def regression_bundle(bundles_root: Path) -> Path:
    return build_bundle(bundles_root / "linear", "regression")


@pytest.fixture(scope="session")
def image_bundle(bundles_root: Path) -> Path:
    """A classifier of 8×8 grey images: uint8 pixels [batch, 1, 8, 8] and an ``image`` entry."""
    return build_bundle(bundles_root / "digits", "multiclass", image=True)


@pytest.fixture(scope="session")
def bundle_of(iris_bundle: Path, binary_bundle: Path, regression_bundle: Path, image_bundle: Path) -> dict[str, Path]:
    """Every session bundle by a short name, for tests parametrized over them."""
    return {"iris": iris_bundle, "binary": binary_bundle, "regression": regression_bundle, "image": image_bundle}
