"""A complete third-party plugin (dataset, model, exporter) written against the public API alone, in a
package outside the repository, installed for real (pip --target) and run end to end with the
command line: every export check passes, the bundle is sealed, and `pipeline predict` serves it."""

from __future__ import annotations

import ast
import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import install

PIPELINE = str(Path(sys.executable).parent / "pipeline")

SOURCES = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "pipeline-rings"
        version = "1.0.0"
        dependencies = ["pipeline-core"]

        [project.entry-points.pipeline_core]
        rings = "pipeline_rings"

        [tool.setuptools.packages.find]
        where = ["src"]
    """,
    "src/pipeline_rings/__init__.py": '''
        """Rings: a dataset of concentric rings, a model for it and a traced TorchScript exporter."""

        from pipeline_core import Register, hookimpl
        from pipeline_rings.data import rings
        from pipeline_rings.exporter import traced
        from pipeline_rings.model import ring_net


        @hookimpl
        def register_datasets(register: Register) -> None:
            register("rings", rings)  # split_options brings its check of the fractions


        @hookimpl
        def register_models(register: Register) -> None:
            register("ring_net", ring_net)


        @hookimpl
        def register_exporters(register: Register) -> None:
            register("rings_traced", traced)
    ''',
    "src/pipeline_rings/data.py": '''
        """Points on three concentric rings; the ring is the class."""

        from typing import Annotated

        import numpy as np
        from pydantic import Field

        from pipeline_core import DatasetContext, LoadedData, SplitOptions, split_options, split_tabular

        RINGS = ("inner", "middle", "outer")


        @split_options(test_size=0.25, standardize=False)
        def rings(context: DatasetContext, *, per_ring: Annotated[int, Field(ge=10)] = 200,
                  noise: Annotated[float, Field(ge=0)] = 0.1, split: SplitOptions) -> LoadedData:
            """Three rings of radius 1, 2 and 3 around the origin."""
            generator = np.random.default_rng(0)
            labels = np.repeat(np.arange(len(RINGS)), per_ring)
            angles = generator.uniform(0, 2 * np.pi, len(labels))
            radii = labels + 1 + generator.normal(0, noise, len(labels))
            points = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
            return split_tabular(points, labels, split, task="multiclass", seed=context.seed, classes=RINGS,
                                 feature_names=("x", "y"), description=f"{len(RINGS)} rings of {per_ring} points")
    ''',
    "src/pipeline_rings/model.py": '''
        """A small network whose sizes come from the data."""

        from typing import Annotated

        from pydantic import Field
        from torch import nn

        from pipeline_core import DataSpec


        def ring_net(spec: DataSpec, *, width: Annotated[int, Field(ge=1)] = 32) -> nn.Module:
            """Two tanh layers."""
            return nn.Sequential(nn.Linear(spec.input_shape[0], width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(),
                                 nn.Linear(width, spec.num_outputs))
    ''',
    "src/pipeline_rings/exporter.py": '''
        """Traced TorchScript with the run's metadata inside, loaded back with the public helpers."""

        import warnings
        from pathlib import Path
        from typing import Any

        import torch

        from pipeline_core import METADATA_FILE, ExportInfo, LoadedTorchModule, atomic_write, output_names_from


        class Traced:
            filename = "model.rings.pt"

            def export(self, model: torch.nn.Module, example: torch.Tensor, path: Path, info: ExportInfo) -> dict[str, Any]:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    module = torch.jit.trace(model, example)
                extra = {METADATA_FILE: info.metadata_json()}
                atomic_write(path, lambda temp: torch.jit.save(module, str(temp), _extra_files=extra))
                return {"method": "trace"}

            def load(self, path: Path, device: torch.device) -> LoadedTorchModule:
                extra = {METADATA_FILE: ""}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    module = torch.jit.load(str(path), map_location=device, _extra_files=extra).eval()
                return LoadedTorchModule(module, device, output_names_from(extra[METADATA_FILE]), [f"torch.jit ({device.type})"])


        def traced() -> Traced:
            """Traced TorchScript."""
            return Traced()
    ''',
    "pipeline.toml": """
        [pipeline]
        name = "rings"
        seed = 1

        [data]
        name = "rings"
        val_size = 0.15

        [model]
        name = "ring_net"

        [train]
        epochs = 60
        batch_size = 32

        [train.optimizer]
        name = "adam"
        lr = 0.01

        [train.loss]
        name = "cross_entropy"

        [export]
        formats = ["rings_traced", "onnx"]
    """,
    "tests/test_rings.py": '''
        import pytest

        import pipeline_rings
        from pipeline_core import ConfigError
        from pipeline_core.testing import load_with_plugins, run_with_plugins, small_pipeline


        def test_the_rings_pipeline_trains_and_exports(tmp_path):
            pipeline = small_pipeline(data={"name": "rings"}, model={"name": "ring_net"}, train={"epochs": 40, "batch_size": 32},
                                      export={"formats": ["rings_traced"]})
            run = run_with_plugins(pipeline, tmp_path, plugins=[pipeline_rings])
            assert run.metrics["test"]["accuracy"] > 0.9
            assert run.export_report["rings_traced"]["passed"]


        def test_options_are_validated(tmp_path):
            with pytest.raises(ConfigError, match="data.per_ring: input should be greater than or equal to 10"):
                load_with_plugins(small_pipeline(data={"name": "rings", "per_ring": 3}), tmp_path)
            with pytest.raises(ConfigError, match="data: test_size [+] val_size is 1.05; it must leave data to train on"):
                load_with_plugins(small_pipeline(data={"name": "rings", "test_size": 0.75, "val_size": 0.3}), tmp_path)
    ''',
}


@pytest.fixture(scope="module")
def rings(tmp_path_factory):
    """The plugin's source tree, and an environment in which it is installed (and nothing of the repository's tests)."""
    source = tmp_path_factory.mktemp("pipeline-rings")
    for name, text in SOURCES.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return source, install(source, tmp_path_factory.mktemp("site"))


def test_the_plugin_imports_only_the_public_api(rings):
    source, _ = rings
    for path in source.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for module in modules:
                if module.startswith("pipeline_core"):
                    assert module in ("pipeline_core", "pipeline_core.testing"), f"{path.name} imports {module}"


def test_pipeline_run_exports_seals_and_predict_serves_the_bundle(rings, tmp_path):
    source, env = rings
    run_dir = tmp_path / "run"
    result = subprocess.run([PIPELINE, "run", str(source / "pipeline.toml"), "--out", str(run_dir), "-q"],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads((run_dir / "export_report.json").read_text())
    assert {name: entry["passed"] for name, entry in report.items()} == {"rings_traced": True, "onnx": True}
    assert report["rings_traced"]["method"] == "trace" and report["rings_traced"]["file"] == "bundle/model.rings.pt"
    assert json.loads((run_dir / "metrics.json").read_text())["test"]["accuracy"] > 0.9
    bundle = json.loads((run_dir / "bundle" / "manifest.json").read_text())  # sealed: every check passed
    assert {"model.rings.pt", "model.onnx", "metadata.json", "MODEL_CARD.md", "predict.py"} <= set(bundle["files"])
    metadata = json.loads((run_dir / "bundle" / "metadata.json").read_text())
    assert metadata["classes"] == ["inner", "middle", "outer"] and metadata["feature_names"] == ["x", "y"]

    rows = tmp_path / "rows.csv"
    rows.write_text("y,x\n0.0,1.0\n3.0,0.0\n-2.0,0.0\n", encoding="utf-8")  # columns by name, in any order
    predictions = tmp_path / "predictions.csv"
    served = subprocess.run([PIPELINE, "predict", str(run_dir), "--input", str(rows), "--output", str(predictions)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert served.returncode == 0, served.stderr
    with open(predictions, newline="", encoding="utf-8") as stream:
        labels = [row["label"] for row in csv.DictReader(stream)]
    assert labels == ["inner", "outer", "middle"]


def test_the_plugin_is_listed_with_its_components(rings):
    _, env = rings
    listing = subprocess.run([PIPELINE, "plugins", "--json"], capture_output=True, text=True, env=env, timeout=120)
    entry = {e["name"]: e for e in json.loads(listing.stdout)}["rings"]
    assert (entry["source"], entry["distribution"], entry["version"]) == ("entry point", "pipeline-rings", "1.0.0")
    assert entry["components"] == {"dataset": ["rings"], "model": ["ring_net"], "exporter": ["rings_traced"]}


def test_the_plugin_passes_its_own_tests_written_with_pipeline_core_testing(rings):
    source, env = rings
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                            capture_output=True, text=True, env=env, cwd=source, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
