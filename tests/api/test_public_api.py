"""The public API's helpers, each used the way a plugin uses it: tabular splits, typed run results and
plugin state, run-folder writes, the exporter helpers, the bundle, metrics, the trainer entry point,
the testing helpers, and the built-ins' names."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pipeline_core import (
    METADATA_FILE,
    ConfigError,
    DatasetContext,
    DataSpec,
    Exporter,
    ExportInfo,
    Interrupted,
    LoadedData,
    LoadedModel,
    LoadedTorchModule,
    MetricValue,
    ModelSummary,
    PipelineError,
    Plot,
    PlotIndex,
    PluginError,
    Register,
    RunContext,
    RunFailed,
    RunFiles,
    Split,
    SplitOptions,
    Standardize,
    Task,
    TrainingSummary,
    __version__,
    atomic_write,
    check_fractions,
    class_indices,
    hookimpl,
    model_outputs,
    named_outputs,
    output_names_from,
    scalars,
    split_options,
    split_tabular,
    summarize,
)
from pipeline_core.components.registry import Registry
from pipeline_core.engine import (
    BUNDLE_DIR,
    ComponentConfig,
    EarlyStoppingSection,
    EvaluateSection,
    Evaluator,
    ExportSection,
    PipelineConfig,
    PipelineSection,
    TrainSection,
    bundle_metadata,
    deployable,
    fit,
    is_sealed,
    measure_noise,
    seal_bundle,
    verify,
)
from pipeline_core.testing import (
    SMALL_PIPELINE,
    Host,
    build_host,
    load_with_plugins,
    run_with_plugins,
    small_pipeline,
    write_pipeline,
)


def test_version_is_the_distributions():
    assert __version__ == importlib.metadata.version("pipeline-core")


def test_importing_the_api_imports_no_torch():
    probe = "import sys, pipeline_core; pipeline_core.__all__; print(sorted(m for m in ('torch', 'pipeline_core_plugins') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "[]", result.stderr


def test_errors_carry_their_exit_codes():
    assert [ConfigError("x").exit_code, PluginError("x").exit_code, RunFailed("x").exit_code] == [2, 2, 1]
    assert Interrupted("stopped", 15).exit_code == 143
    assert all(issubclass(kind, PipelineError) for kind in (ConfigError, PluginError, RunFailed, Interrupted))


# -- datasets ------------------------------------------------------------------------------------


@split_options(test_size=0.3, standardize=False)
def flowers(context: DatasetContext, *, petals: int = 5, split: SplitOptions) -> LoadedData:
    """Flowers with ``petals`` petals, split as the options say."""
    x = np.arange(200, dtype=np.float32).reshape(100, 2) * petals
    return split_tabular(x, np.arange(100) % 2, split, task="multiclass", seed=context.seed)


def test_split_options_adds_the_four_options_after_a_loaders_own():
    registry = Registry()
    registry.add("dataset", "flowers", flowers, "tests")  # no check given: the loader's own, check_fractions
    component = registry.get("dataset", "flowers")
    assert component.check is check_fractions
    assert component.options.names == ["petals", "test_size", "val_size", "standardize", "stratify"]
    assert component.options.defaults == {"petals": 5, "test_size": 0.3, "val_size": 0.0, "standardize": False, "stratify": True}
    assert component.description == "Flowers with ``petals`` petals, split as the options say."
    values, problems = component.options.validate({"test_size": 1.5})
    assert [p.message for p in problems] == ["input should be less than 1, got 1.5 (float)"]
    assert component.problems({**component.options.defaults, "test_size": 0.6, "val_size": 0.5}) == [
        "test_size + val_size is 1.1; it must leave data to train on (< 1)"
    ]
    data = flowers(DatasetContext(0), val_size=0.2)
    assert {name: len(split) for name, split in data.splits.items()} == {"test": 30, "validation": 21, "train": 49}
    assert data.spec.classes == ("0", "1") and isinstance(data.preprocess, nn.Identity)  # classes named by index


def test_split_options_needs_a_split_parameter():
    with pytest.raises(TypeError, match="needs a keyword-only parameter 'split: SplitOptions'"):
        split_options()(lambda context, *, petals=5: None)


def test_split_tabular_stratifies_and_standardizes_with_train_statistics():
    x = np.random.default_rng(0).normal(5, 3, (120, 3))
    data = split_tabular(x, np.arange(120) % 3, SplitOptions(test_size=0.25), task="multiclass", seed=1, classes=("a", "b", "c"))
    train = data.splits["train"]
    assert torch.bincount(data.splits["test"].targets).tolist() == [10, 10, 10]
    assert isinstance(data.preprocess, Standardize)
    scaled = data.preprocess(train.inputs)
    assert torch.allclose(scaled.mean(dim=0), torch.zeros(3), atol=1e-5) and torch.allclose(scaled.std(dim=0), torch.ones(3), atol=1e-5)
    regression = split_tabular(x, x[:, 0], SplitOptions(stratify=False), task="regression", seed=1)
    assert regression.splits["train"].targets.shape == (96, 1) and regression.spec.num_outputs == 1


# -- metrics and exporters -------------------------------------------------------------------------


def test_class_indices_and_scalars():
    logits = torch.tensor([[0.1, 2.0], [3.0, -1.0]])
    assert class_indices(logits, "multiclass").tolist() == [1, 0]
    assert class_indices(torch.tensor([[0.5], [-0.5]]), "binary").tolist() == [1, 0]
    with pytest.raises(ValueError, match="regression model predicts values"):
        class_indices(logits, "regression")
    values: dict[str, MetricValue] = {"accuracy": 0.5, "confusion_matrix": [[1, 0], [0, 1]], "count": 3, "flag": True}
    assert scalars(values) == {"accuracy": 0.5, "count": 3}


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = atomic_write(tmp_path / "model.bin", lambda temp: temp.write_bytes(b"good"))

    def half(temp: Path) -> None:
        temp.write_bytes(b"ha")
        raise OSError(28, "No space left on device")

    with pytest.raises(PipelineError, match="No space left on device; the previous file is untouched"):
        atomic_write(target, half)
    assert target.read_bytes() == b"good" and [p.name for p in tmp_path.iterdir()] == ["model.bin"]


class Traced:
    """An exporter written with the public helpers, as a third party would."""

    filename = "traced.pt"

    def export(self, model: nn.Module, example: torch.Tensor, path: Path, info: ExportInfo) -> dict:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = torch.jit.trace(model, example)
            atomic_write(path, lambda temp: torch.jit.save(module, str(temp), _extra_files={METADATA_FILE: info.metadata_json()}))
        return {}

    def load(self, path: Path, device: torch.device) -> LoadedTorchModule:
        extra = {METADATA_FILE: ""}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
        return LoadedTorchModule(module, device, output_names_from(extra[METADATA_FILE]), ["torch.jit"])


def test_an_exporter_built_from_the_helpers_passes_the_export_check(tmp_path):
    torch.manual_seed(0)
    task: Task = "multiclass"
    spec = DataSpec(task, (4,), 3)
    reference = deployable(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), task, probabilities=True)
    inputs = torch.randn(64, 4)
    names = ("logits", "probabilities")
    info = ExportInfo(spec, "unit", "input", names, True, {"outputs": [{"name": name} for name in names]})
    exporter = Traced()
    assert isinstance(exporter, Exporter)
    exporter.export(reference, inputs[:2], tmp_path / exporter.filename, info)
    loaded = exporter.load(tmp_path / exporter.filename, torch.device("cpu"))
    assert isinstance(loaded, LoadedModel) and set(loaded(inputs[:3].numpy())) == set(names)
    with torch.no_grad():
        expected = named_outputs(reference(inputs[:3]), names)
    assert np.allclose(expected["probabilities"].sum(axis=1), 1.0)
    report = verify(loaded, reference, inputs, info, [1, 2, 7], noise=measure_noise(reference, inputs, names))
    assert report["passed"], report["problems"]
    assert output_names_from(info.metadata_json()) == names
    with pytest.raises(ValueError, match="does not name its outputs"):
        output_names_from("{}")


# -- a run, as plugins see it ----------------------------------------------------------------------


@dataclass
class Seen:
    """A plugin's own per-run state, kept with run.plugin_state."""

    stages: list[str] = field(default_factory=list)


class TypedResults:
    """A lifecycle plugin and a stage that read and write the run through the public API only."""

    @hookimpl
    def register_stages(self, register: Register) -> None:
        register("retrain", self.retrain)

    @staticmethod
    def retrain(run: RunContext) -> None:
        """Train once more and score the test split with the run's metrics."""
        run.training = fit(run)
        data = run.require_data("retrain")
        run.metrics["retrained"] = Evaluator.for_run(run, data.spec.task)(run.require_model("retrain"), data.splits["test"])

    @hookimpl
    def after_stage(self, run: RunContext, stage: str) -> None:
        run.plugin_state(Seen).stages.append(stage)
        if stage == "evaluate":
            outputs = model_outputs(run.require_model("plot"), run.require_data("plot").splits["test"].inputs)
            run.plots.add("histogram", lambda temp: temp.write_bytes(b"png"), "Output histogram", {"rows": len(outputs)})
            run.write_csv("seen.csv", [{"stage": name} for name in run.plugin_state(Seen).stages])


def test_a_plugin_reads_typed_results_and_writes_through_the_run(tmp_path):
    pipeline = small_pipeline(
        pipeline={"stages": ["load_data", "build_model", "train", "evaluate", "retrain", "export"]},
        data={"val_size": 0.2}, train={"epochs": 3, "early_stopping": {"monitor": "val_accuracy", "patience": 5}},
        export={"formats": ["torchscript"]},
    )
    run = run_with_plugins(pipeline, tmp_path, plugins=[TypedResults()])
    config = run.config
    assert isinstance(config, PipelineConfig) and isinstance(config.pipeline, PipelineSection)
    assert isinstance(config.train, TrainSection) and isinstance(config.train.early_stopping, EarlyStoppingSection)
    assert config.train.early_stopping.direction == "max" and config.train.optimizer == ComponentConfig("optimizer", "adam", config.train.optimizer.options)
    assert isinstance(config.evaluate, EvaluateSection) and isinstance(config.export, ExportSection)
    assert config.export.output_names("multiclass") == ("logits", "probabilities")
    assert isinstance(run.training, TrainingSummary) and run.training.steps == 3 * 6 and run.threads == 1  # 82 rows, batch 16
    assert run.training.as_dict() == json.loads((run.run_dir / RunFiles.TRAINING).read_text())
    assert [row["epoch"] for row in run.history] == [1, 2, 3]  # the history of the latest training, the stage's
    assert set(run.metrics["retrained"]) == {"loss", "accuracy", "f1", "confusion_matrix"}
    assert run.plugin_state(Seen).stages == ["load_data", "build_model", "train", "evaluate", "retrain", "export"]
    assert (run.run_dir / "seen.csv").read_text().split() == ["stage", "load_data", "build_model", "train", "evaluate"]
    assert isinstance(run.plots, PlotIndex)
    assert run.plots.recorded()["histogram"] == Plot("plots/histogram.png", "Output histogram", {"rows": 38})
    assert set(run.plots.recorded()) == {"curves", "confusion_matrix", "histogram"}
    for name in (RunFiles.CONFIG, RunFiles.WEIGHTS, RunFiles.HISTORY, RunFiles.METRICS, RunFiles.EXPORT_REPORT, RunFiles.MANIFEST):
        assert (run.run_dir / name).is_file(), name


def test_the_bundle_helpers_seal_what_passed(tmp_path):
    run = run_with_plugins(small_pipeline(train={"epochs": 1}, export={"formats": ["torchscript"]}), tmp_path)
    assert is_sealed(run.run_dir / BUNDLE_DIR)
    data, model = run.require_data("test"), run.require_model("test")
    reference = deployable(model.cpu(), "multiclass", probabilities=True)
    info = ExportInfo(data.spec, "small", "input", ("logits", "probabilities"))
    metadata = bundle_metadata(run, info, reference, data.splits["test"].inputs[:2])
    recorded = json.loads((run.run_dir / BUNDLE_DIR / "metadata.json").read_text())
    assert {key: recorded[key] for key in metadata if key != "versions"} == {k: v for k, v in metadata.items() if k != "versions"}
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "model.torchscript.pt").write_bytes((run.run_dir / BUNDLE_DIR / "model.torchscript.pt").read_bytes())
    assert not is_sealed(staging)
    sealed = seal_bundle(staging, tmp_path / "bundle", metadata, run.export_report)
    assert is_sealed(sealed) and not staging.exists()
    assert "## Export checks" in (sealed / "MODEL_CARD.md").read_text()


def test_summarize_describes_a_model():
    summary = summarize(nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2)), torch.randn(2, 4))
    assert isinstance(summary, ModelSummary) and summary.total_parameters == 4 * 8 + 8 + 2 * 8 + 8 * 2 + 2
    assert [row.output_shape for row in summary.layers[1:]] == [[2, 8], [2, 8], [2, 2]]


# -- the testing helpers ---------------------------------------------------------------------------


def test_small_pipeline_merges_sections_and_replaces_other_components():
    pipeline = small_pipeline(model={"name": "tiny"}, train={"epochs": 2}, data=None)
    assert pipeline["model"] == {"name": "tiny"}  # another component: the mlp's options are not inherited
    assert pipeline["train"]["epochs"] == 2 and pipeline["train"]["optimizer"] == {"name": "adam", "lr": 0.01}
    assert "data" not in pipeline and SMALL_PIPELINE["data"] == {"name": "iris"} and SMALL_PIPELINE["train"]["epochs"] == 5


def test_load_with_plugins_reports_bad_options_as_validate_does(tmp_path):
    with pytest.raises(ConfigError, match=r"pipeline.toml:\d+: model.hidden_size: unknown key; did you mean 'hidden_sizes'\?"):
        load_with_plugins(small_pipeline(model={"hidden_size": [3]}), tmp_path)
    path = write_pipeline('[pipeline]\nname = "text"\n[data]\nname = "iris"\n', tmp_path / "text")
    config, host = load_with_plugins(path, tmp_path, overrides=("pipeline.stages=['load_data']",))
    assert config.name == "text" and config.pipeline.stages == ["load_data"] and isinstance(host, Host)


def test_build_host_lists_the_builtins_by_their_names():
    host = build_host()
    assert host.plugins["plugins.datasets.iris"].source == "builtin"
    assert {c.name for c in host.registry.by_plugin("plugins.stages")} == {"load_data", "build_model", "train", "evaluate"}


@pytest.mark.parametrize("name", ["plugins.plots.confusion", "plots.confusion", "pipeline_core_plugins.plots.confusion"])
def test_a_builtin_goes_by_its_name_its_short_name_and_its_module(tmp_path, monkeypatch, name):
    config, host = load_with_plugins(small_pipeline(pipeline={"disable_plugins": [name]}), tmp_path)
    assert "plugins.plots.confusion" not in host.plugins and "plugins.plots.curves" in host.plugins
    monkeypatch.setenv("PIPELINE_CORE_BLOCK_PLUGINS", name)
    assert "plugins.plots.confusion" not in build_host().plugins
    monkeypatch.setenv("PIPELINE_CORE_BLOCK_PLUGINS", "")
    monkeypatch.setenv("PIPELINE_CORE_PLUGINS", f"{name},stages")
    assert set(build_host().plugins) == {"plugins.plots.confusion", "plugins.stages"}


def test_an_optional_builtin_named_by_a_pipeline_file(tmp_path):
    pytest.importorskip("tensorboard")
    _, host = load_with_plugins(small_pipeline(pipeline={"plugins": ["trackers.tensorboard"]}), tmp_path)
    assert host.plugins["plugins.trackers.tensorboard"].source == "pipeline file"


def test_splits_of_the_split_dataclass_are_public():
    split = Split(torch.zeros(3, 2), torch.zeros(3))
    assert len(split) == 3 and split.to("cpu").inputs.shape == (3, 2)
