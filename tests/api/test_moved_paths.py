"""The old import paths and names keep working for one release (issue 29): every module the core had
before it was grouped into packages, and every module path the grouping gave that a later step
renamed, imports under its old name, with every name it defined, and a ``DeprecationWarning`` that
names the new place; the names that moved from ``pipeline_core`` to ``pipeline_core.engine`` too, and
the names renamed so that each thing has one name (``DataBundle``, ``predict``, the testing helpers,
``RunContext.state``); nothing of it is a file at the top of the core; the new paths warn about
nothing; and the module names a pipeline file gives (built-in plugins) are untouched."""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
import subprocess
import sys
import warnings

import pytest
import torch

import pipeline_core
import pipeline_core.engine
from pipeline_core import RunContext, _moved
from pipeline_core.pipeline.load import load_pipeline

from helpers import IRIS_FAST, ROOT

#: every module of the core before issue 29 (and every path of its first step that a later step
#: renamed), with the public names it defined itself
OLD_NAMES = {
    "pipeline_core.artifacts": [
        "DEFAULT_ROOT", "RunFiles", "atomic_write", "csv_text", "json_text", "new_run_dir", "point_latest", "read_json",
        "replace_folder", "sha256", "versions", "write_bytes", "write_json", "write_manifest", "write_text",
    ],
    "pipeline_core.batch_independence": [
        "ROWS", "Run", "check_batch_independence", "extreme_rows",
    ],
    "pipeline_core.builtins": [
        "DEFAULT_PLUGINS", "ENTRY_POINT_GROUP", "OPTIONAL_PLUGINS", "PACKAGE", "PREFIX", "canonical", "installed_plugins",
        "is_builtin", "module_of",
    ],
    "pipeline_core.bundle": [
        "BUNDLE_DIR", "FORMAT", "bundle_metadata", "image_metadata", "input_range", "is_sealed", "model_card", "read_metadata",
        "seal_bundle", "unseal_bundle", "write_bundle",
    ],
    "pipeline_core.check_cache": [
        "FORMAT", "cache_dir", "model_check_key", "recall", "remember", "remember_model_check", "source_fingerprint",
        "spec_fields",
    ],
    "pipeline_core.checkpoint": [
        "FOLDER", "FORMAT", "LATEST", "capture_rng", "latest", "load", "restore_rng", "save",
    ],
    "pipeline_core.config": [
        "DATA", "MODEL", "PipelineConfig", "SECTIONS", "apply_overrides", "declared_root", "dotted", "parse_override",
        "plugin_references", "read_toml", "set_value", "validate",
    ],
    "pipeline_core.context": [
        "RunContext", "State",
    ],
    "pipeline_core.data": [
        "DataBundle", "Predictions", "class_indices",
    ],
    "pipeline_core.distributed": [
        "Distributed", "PEER_LOST_EXIT", "SINGLE", "check_sync_batchnorm", "is_peer_failure", "join", "launch", "launched",
        "leave", "synchronized_batchnorm",
    ],
    "pipeline_core.evaluation": [
        "DEFAULT_METRICS", "Evaluator", "Loss", "PREDICT_CHUNK", "predict",
    ],
    "pipeline_core.export": [
        "ExportInfo", "Exporter", "LoadedModel", "LoadedTorchModule", "METADATA_FILE", "WithProbabilities", "deployable",
        "named_outputs", "output_names_from",
    ],
    "pipeline_core.failure": [
        "RunFailure", "describe_error", "failure_of", "hook_culprit",
    ],
    "pipeline_core.hook_names": [
        "hook_names", "misnamed_hooks",
    ],
    "pipeline_core.host": [
        "Host", "PluginInfo",
    ],
    "pipeline_core.images": [
        "ScaleImages",
    ],
    "pipeline_core.loading": [
        "DataComponent", "DataLoading", "LOADING_KEYS", "MAX_AUTO_WORKERS", "available_memory", "cpu_cores",
        "dataset_component", "format_size", "parse_size", "place_splits",
    ],
    "pipeline_core.model_check": [
        "DRY_ROWS", "check_data_spec", "check_from_spec", "check_model_outputs", "needed_outputs",
    ],
    "pipeline_core.model_summary": [
        "LayerRow", "ModelSummary", "summarize",
    ],
    "pipeline_core.options": [
        "DEFERRED", "Problem", "STRICT", "Schema", "describe_type", "narrowest", "option_hints", "suggest", "to_plain",
    ],
    "pipeline_core.pipeline_file": [
        "load_pipeline",
    ],
    "pipeline_core.plots": [
        "FOLDER", "INDEX", "Plot", "PlotIndex",
    ],
    "pipeline_core.plugins": [
        "BLOCK_ENV", "ENTRY_POINT_GROUP", "ONLY_ENV", "TRACE_ENV", "broken_message", "build_host", "import_plugin",
    ],
    "pipeline_core.reexport": [
        "EXPORT_STAGE", "reexport",
    ],
    "pipeline_core.registry": [
        "Component", "KINDS", "RESERVED_OPTIONS", "Register", "Registry",
    ],
    "pipeline_core.results": [
        "MetricValue", "TrainingSummary", "scalars", "scalars_by_split",
    ],
    "pipeline_core.runner": [
        "fail_run", "find_unfinished", "load_run", "resolve_device", "run_pipeline", "run_stage", "seed_everything",
        "write_run_manifest",
    ],
    "pipeline_core.scaffold": [
        "NAME", "TEMPLATES", "create", "names",
    ],
    "pipeline_core.sections": [
        "ComponentConfig", "DEFAULT_FORMATS", "DEFAULT_STAGES", "EarlyStoppingSection", "EvaluateSection", "ExportSection",
        "Found", "Fp16Variant", "Int8DynamicVariant", "Int8StaticVariant", "MAXIMIZED", "Name", "OPTIMIZE", "OptimizeSection",
        "OptimizedVariant", "PROBABILITIES", "PROBLEM", "Path_", "PipelineSection", "TrainSection", "VARIANTS", "Variant",
        "VariantGate", "check_component", "component", "problem", "problems", "registry_of", "required_table",
        "stage_order_problems", "stages_in",
    ],
    "pipeline_core.signals": [
        "HANDLED", "StopRequest", "stop_on_signals",
    ],
    "pipeline_core.spec": [
        "DataSpec", "DatasetContext", "INTERPOLATIONS", "ImageSpec", "RESIZE_OPS", "TASKS", "Task",
    ],
    "pipeline_core.splits": [
        "Augment", "Split",
    ],
    "pipeline_core.streaming": [
        "HEAD_BYTES", "LoaderSettings", "Request", "SEQUENTIAL_BATCH_BYTES", "SEQUENTIAL_BATCH_ROWS", "StreamedSplit",
        "augment_rows", "bound_heap_growth", "item_seed",
    ],
    "pipeline_core.sweep_section": [
        "CategoricalParameter", "Check", "CmaEsSampler", "FIXED_KEYS", "FloatParameter", "GridSampler", "HyperbandPruner",
        "IntParameter", "MedianPruner", "NoPruner", "PARAMETERS", "PARAMETER_TYPES", "PRUNERS", "Parameter", "PrunerConfig",
        "RandomSampler", "SAMPLERS", "SamplerConfig", "Seed", "SuccessiveHalvingPruner", "SweepSection", "TpeSampler",
        "check_against_file", "inline_toml",
    ],
    "pipeline_core.tabular": [
        "Loader", "SplitOptions", "TestFraction", "ValFraction", "check_fractions", "split_options",
    ],
    "pipeline_core.tabular_split": [
        "Standardize", "split_tabular",
    ],
    "pipeline_core.toml_lines": [
        "Path", "key_lines", "line_of",
    ],
    "pipeline_core.verification": [
        "CALIBRATION_CHUNK", "CALIBRATION_ROWS", "CRITERION", "FALLBACK_RELATIVE_NOISE", "Noise", "Tolerance", "error_ratios",
        "measure_noise", "verify",
    ],
    "pipeline_core.worker_deaths": [
        "dead_worker", "shut_down", "watch", "worker_death",
    ],
    # the paths of issue 29's first step that its second renamed
    "pipeline_core.cli.plugin": [
        "COMMANDS", "new", "plugin",
    ],
    "pipeline_core.cli.plugins": [
        "COMMANDS", "describe", "plugins",
    ],
    "pipeline_core.host.build": [
        "BLOCK_ENV", "ENTRY_POINT_GROUP", "ONLY_ENV", "TRACE_ENV", "broken_message", "build_host", "import_plugin",
    ],
    "pipeline_core.host.builtins": [
        "DEFAULT_PLUGINS", "ENTRY_POINT_GROUP", "OPTIONAL_PLUGINS", "PACKAGE", "PREFIX", "canonical", "installed_plugins",
        "is_builtin", "module_of",
    ],
    "pipeline_core.host.hook_names": [
        "hook_names", "misnamed_hooks",
    ],
}
OLD_NAMES["pipeline_core.config.sections"] = OLD_NAMES["pipeline_core.sections"]

#: imports every old path in a fresh process (an old path warns once, when it is first imported), reads
#: every name it had, and prints what it found and which DeprecationWarnings it saw
PROBE = """
import importlib, json, sys, warnings
found = {}
for old, names in json.loads(sys.argv[1]).items():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        namespace = {}
        exec(compile(f"import {old} as module", "a_plugin.py", "exec"), namespace)  # an import statement in a plugin
        module = namespace["module"]
        missing = [name for name in names if not hasattr(module, name)]
        parent, _, child = old.rpartition(".")
        from_package = getattr(importlib.import_module(parent), child) is module
    found[old] = {"module": module.__name__, "missing": missing, "from_package": from_package,
                  "warnings": sorted({str(w.message) for w in caught if w.category is DeprecationWarning}),
                  "where": sorted({w.filename for w in caught if w.category is DeprecationWarning and " moved to " in str(w.message)})}
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def old_paths() -> dict[str, dict]:
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(OLD_NAMES)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_every_old_module_is_in_the_table_and_none_is_left_as_a_file():
    assert set(OLD_NAMES) == set(_moved.MOVED_MODULES) | set(_moved.NOW_PACKAGES)
    top = sorted(path.name for path in (ROOT / "pipeline_core").glob("*.py"))
    assert len(top) <= 10, top
    assert not {f"{old.rsplit('.', 1)[1]}.py" for old in _moved.MOVED_MODULES} & set(top)


def _renamed(modules: tuple[str, ...], names: list[str]) -> list[str]:
    """The warnings for the renamed names among ``names``, read from ``modules``."""
    return [f"{module}.{name} was renamed {module}.{new}; the old name works until the next release"
            for module in modules for name, new in _moved.RENAMED.get(module, {}).items() if name in names]


@pytest.mark.parametrize("old", sorted(_moved.MOVED_MODULES))
def test_an_old_module_path_imports_with_every_name_and_a_warning(old_paths, old):
    found, new = old_paths[old], _moved.MOVED_MODULES[old]
    assert found["missing"] == []
    assert found["warnings"] == sorted([f"{old} moved to {' and '.join(new)}; the old path works until the next release",
                                        *_renamed(new, OLD_NAMES[old])])
    assert found["where"] == ["a_plugin.py"]  # the warning points at the import statement, not at the import machinery
    assert found["from_package"]  # `from pipeline_core import sections` works as well
    if len(new) == 1:
        assert found["module"] == new[0]  # the very module, so a patch through the old path patches it


@pytest.mark.parametrize("old", sorted(_moved.NOW_PACKAGES))
def test_an_old_module_that_is_a_package_now_serves_its_names_with_a_warning(old_paths, old):
    found, holder = old_paths[old], _moved.NOW_PACKAGES[old]
    renamed = _moved.RENAMED.get(holder, {})
    assert found["missing"] == [] and found["module"] == old
    assert found["warnings"] == sorted(f"{old}.{name} moved to {holder}.{renamed.get(name, name)}; the old path works until the next release"
                                       for name in OLD_NAMES[old])


def test_an_old_name_is_the_new_object(recwarn):
    from pipeline_core.config import PipelineConfig
    from pipeline_core.config.file import PipelineConfig as new

    assert PipelineConfig is new
    assert "pipeline_core.config.PipelineConfig moved to pipeline_core.config.file.PipelineConfig" in str(recwarn.pop(DeprecationWarning).message)
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        pipeline_core.config.nothing  # noqa: B018


@pytest.mark.parametrize("name", sorted(pipeline_core._MOVED_TO_ENGINE))
def test_a_name_that_moved_to_the_engine_still_imports_from_pipeline_core_with_a_warning(name):
    with pytest.warns(DeprecationWarning, match=rf"^pipeline_core\.{name} moved to pipeline_core\.engine\.{name}; "):
        value = getattr(pipeline_core, name)
    assert value is getattr(pipeline_core.engine, name)
    assert name not in pipeline_core.__all__ and name not in dir(pipeline_core)


@pytest.mark.parametrize("module, old", [(module, old) for module, names in sorted(_moved.RENAMED.items()) for old in sorted(names)])
def test_a_renamed_name_still_imports_with_a_warning_that_names_the_new_one(module, old):
    new = _moved.RENAMED[module][old]
    namespace: dict[str, object] = {}
    with pytest.warns(DeprecationWarning, match=rf"^{re.escape(module)}\.{old} was renamed {re.escape(module)}\.{new}; "
                                                "the old name works until the next release$") as caught:
        exec(compile(f"from {module} import {old} as value", "a_plugin.py", "exec"), namespace)  # as a plugin writes it
    assert {w.filename for w in caught if w.category is DeprecationWarning} == {"a_plugin.py"}
    target = importlib.import_module(module)
    assert namespace["value"] is getattr(target, new)
    assert old not in getattr(target, "__all__", ()) and new in getattr(target, "__all__", (new,))
    assert old not in dir(target)


def test_the_data_and_the_model_outputs_go_by_one_name_each():
    """``DataBundle`` is ``LoadedData`` (a "bundle" is the deploy bundle alone) and ``predict`` is
    ``model_outputs`` (``predict`` is the deploy side's command): an old plugin's objects still work."""
    from pipeline_core import LoadedData, model_outputs
    from pipeline_core.testing import load_with_plugins, run_with_plugins

    with pytest.warns(DeprecationWarning):
        from pipeline_core import DataBundle, predict
    with pytest.warns(DeprecationWarning):
        from pipeline_core.testing import load_pipeline, run_pipeline
    assert DataBundle is LoadedData and predict is model_outputs
    assert run_pipeline is run_with_plugins and load_pipeline is load_with_plugins
    assert "DataBundle" not in pipeline_core.__all__ and "predict" not in pipeline_core.__all__
    with pytest.warns(DeprecationWarning, match="pipeline_core.data.DataBundle moved to pipeline_core.data.loaded.LoadedData"):
        assert pipeline_core.data.DataBundle is LoadedData


def test_run_state_warns_and_names_what_to_use_instead(write_pipeline, tmp_path):
    config, host = load_pipeline(write_pipeline())
    run = RunContext(config, host, tmp_path / "run", torch.device("cpu"))
    with pytest.warns(DeprecationWarning, match=r"^RunContext.state is deprecated .*run.plugin_state\(YourClass\)") as caught:
        run.state["seen"] = 1
    assert caught[0].filename == __file__  # the warning names the plugin's line
    with pytest.warns(DeprecationWarning, match="RunContext.state is deprecated"):
        run.state = {"seen": 2}
    with pytest.warns(DeprecationWarning):
        assert run.state == {"seen": 2}
    assert "state" not in {field.name for field in dataclasses.fields(RunContext)}


def test_no_file_is_left_at_an_old_path():
    for old in [*_moved.MOVED_MODULES, *_moved.GONE_PACKAGES]:
        path = ROOT.joinpath(*old.split("."))
        assert not path.with_suffix(".py").exists() and (old in _moved.NOW_PACKAGES or not path.is_dir()), old
    assert not (ROOT / "pipeline_core" / "host").exists()


def test_the_new_paths_and_the_public_names_warn_about_nothing():
    probe = ("import pipeline_core, pipeline_core.engine, pipeline_core.config.train_section, pipeline_core.pipeline.runner\n"
             "import pipeline_core.discovery.build, pipeline_core.cli.plugin_listing, pipeline_core.testing\n"
             "from pipeline_core.data import spec\n"
             "from pipeline_core import *\n"
             "from pipeline_core.engine import *\n"
             "assert spec.__name__ == 'pipeline_core.data.spec'\n")
    result = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        for name in pipeline_core.__all__:
            getattr(pipeline_core, name)


def test_module_names_in_a_pipeline_file_still_name_the_builtins(write_pipeline):
    path = write_pipeline(IRIS_FAST.replace("seed = 3", 'seed = 3\nplugins = ["plugins.trackers.tensorboard"]\ndisable_plugins = ["plots.boundary"]'))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        _, host = load_pipeline(path)
    assert "plugins.trackers.tensorboard" in host.plugins and "plugins.plots.boundary" not in host.plugins
