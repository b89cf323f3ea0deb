"""Meta-tests: every hook is documented with its exact signature, the README starts with the two
commands, and the public API for plugin authors (and its testing helpers) is pinned, documented,
typed and used by a test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pluggy
import pytest

import pipeline_core
import pipeline_core.testing
from pipeline_core import hookspecs

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_GUIDE = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")

PUBLIC_API = [
    "BUNDLE_DIR", "ComponentConfig", "ConfigError", "DataBundle", "DataSpec", "DatasetContext", "EarlyStoppingSection",
    "EvaluateSection", "Evaluator", "ExportInfo", "ExportSection", "Exporter", "ImageSpec", "Interrupted", "LRSchedule", "LoadedModel",
    "LoadedTorchModule", "METADATA_FILE", "MetricValue", "ModelSummary", "Noise", "PipelineConfig", "PipelineError", "PipelineSection",
    "Plot", "PlotIndex", "PluginError", "Predictions", "Register", "RunContext", "RunFailed", "RunFailure", "RunFiles", "ScaleImages", "Split",
    "StreamedSplit", "place_splits",
    "SplitOptions", "Standardize", "Task", "Tolerance", "TrainSection", "TrainingPlan", "TrainingSummary", "__version__",
    "atomic_write", "bundle_metadata", "check_batch_independence", "check_data_spec", "check_fractions", "check_model_outputs", "class_indices", "deployable",
    "extreme_rows", "fit", "hookimpl", "is_sealed",
    "measure_noise", "named_outputs", "output_names_from", "predict", "remember_model_check", "scalars", "seal_bundle", "split_options",
    "split_tabular", "summarize", "verify",
]
TESTING_API = ["Host", "SMALL_PIPELINE", "build_host", "load_pipeline", "run_pipeline", "small_pipeline", "write_pipeline"]


def hookspec_names() -> list[str]:
    return [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "pipeline_core_spec")]


def signature(name: str) -> str:
    """``before_stage(run: RunContext, stage: str) -> None`` as written in hookspecs.py."""
    fn = getattr(hookspecs, name)
    parameters = ", ".join(f"{p.name}: {p.annotation}" for p in inspect.signature(fn).parameters.values())
    return f"{name}({parameters}) -> {inspect.signature(fn).return_annotation}"


def test_there_are_hookspecs():
    assert len(hookspec_names()) == 16


@pytest.mark.parametrize("name", hookspec_names())
def test_hook_is_documented_with_its_exact_signature(name):
    assert f"### {name}" in PLUGIN_GUIDE, f"docs/plugins.md has no section for {name}"
    assert f"`{signature(name)}`" in PLUGIN_GUIDE, f"docs/plugins.md does not show {signature(name)}"
    section = PLUGIN_GUIDE.split(f"### {name}", 1)[1].split("\n### ", 1)[0]
    assert "```python" in section and "@hookimpl" in section, f"the {name} section has no example"


def _section(title: str) -> str:
    return PLUGIN_GUIDE.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def test_public_api_is_pinned():
    assert sorted(pipeline_core.__all__) == sorted(PUBLIC_API)
    for name in PUBLIC_API:
        assert getattr(pipeline_core, name) is not None
    assert isinstance(pipeline_core.hookimpl, pluggy.HookimplMarker)
    documented = set(re.findall(r"`(\w+)[`(]", _section("The public API")))
    assert set(PUBLIC_API) <= documented, f"not in docs/plugins.md's public API: {sorted(set(PUBLIC_API) - documented)}"


def test_testing_helpers_are_pinned_and_documented():
    assert sorted(pipeline_core.testing.__all__) == sorted(TESTING_API)
    documented = set(re.findall(r"`(\w+)", _section("Testing a plugin")))
    assert set(TESTING_API) <= documented, f"not in docs/plugins.md's testing section: {sorted(set(TESTING_API) - documented)}"


def _imported_in_tests(module: str) -> set[str]:
    """Names imported from ``module`` anywhere in the tests, plugin sources written by tests included."""
    names: set[str] = set()
    for path in (ROOT / "tests").glob("*.py"):
        for single, grouped in re.findall(rf"from {re.escape(module)} import (?:\(([^)]*)\)|([^\n]+))", path.read_text(encoding="utf-8")):
            names |= set(re.findall(r"\w+", (single or grouped).split("#")[0]))
    return names


@pytest.mark.parametrize("module, names", [("pipeline_core", PUBLIC_API), ("pipeline_core.testing", TESTING_API)])
def test_every_public_name_is_used_by_a_test(module, names):
    missing = sorted(set(names) - _imported_in_tests(module))
    assert not missing, f"public names of {module} that no test imports: {missing}"


def test_public_callables_are_typed():
    for module in (pipeline_core, pipeline_core.testing):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                members = {"": obj}
            elif inspect.isclass(obj) and obj.__module__.startswith("pipeline_core"):
                members = {f".{member_name}": getattr(member, "__func__", member) for member_name, member in vars(obj).items()}
            else:
                continue
            for member_name, member in members.items():
                if not inspect.isfunction(member) or (member_name.startswith("._") and member_name not in (".__call__", ".__init__")):
                    continue
                for parameter in inspect.signature(member).parameters.values():
                    if parameter.name in ("self", "cls") or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                        continue
                    assert parameter.annotation is not inspect.Parameter.empty, f"{name}{member_name}({parameter.name}) is untyped"


def test_readme_starts_with_the_two_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```sh", 1)[1].split("```", 1)[0]
    assert "make run" in first_block and "make test" in first_block
    assert "pipeline run pipelines/iris.toml" in readme.split("```sh", 1)[1].split("##", 1)[0]
