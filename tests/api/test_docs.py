"""Meta-tests: every hook is documented with its exact signature, the README starts with the two
commands, and both tiers of the public API (pipeline_core for components, pipeline_core.engine for
stages) and the testing helpers are pinned, documented, typed and used by a test."""

from __future__ import annotations

import inspect
import re

import pluggy
import pytest

import pipeline_core
import pipeline_core.engine
import pipeline_core.testing
from pipeline_core import hookspecs
from pipeline_core.components import kinds, registry

from helpers import ROOT, hookspec_names

PLUGIN_GUIDE = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")

#: pipeline_core: what a component author (dataset, model, optimizer, scheduler, loss, metric, exporter, plot, tracker) needs
PUBLIC_API = [
    "split_columns", "is_blank",
    "ConfigError", "LoadedData", "DataSpec", "DatasetContext", "ExportInfo", "Exporter", "ImageSpec", "Interrupted", "LRSchedule",
    "LoadedModel", "LoadedTorchModule", "METADATA_FILE", "MetricValue", "ModelSummary", "PipelineError", "Plot", "PlotIndex",
    "PluginError", "Predictions", "Register", "RunContext", "RunFailed", "RunFailure", "RunFiles", "ScaleImages", "Split",
    "SplitOptions", "Standardize", "StreamedSplit", "Task", "TrainingPlan", "TrainingSummary", "__version__", "atomic_write",
    "check_fractions", "class_indices", "hookimpl", "model_outputs", "named_outputs", "output_names_from", "scalars",
    "split_options", "split_tabular", "summarize",
]
#: pipeline_core.engine: what a stage author needs besides
ENGINE_API = [
    "BUNDLE_DIR", "ComponentConfig", "EarlyStoppingSection", "EvaluateSection", "Evaluator", "ExportSection", "Noise",
    "PipelineConfig", "PipelineSection", "Tolerance", "TrainSection", "bundle_metadata", "check_batch_independence",
    "check_data_spec", "check_model_outputs", "deployable", "draw_plots", "extreme_rows", "fit", "is_sealed", "measure_noise",
    "place_splits", "remember_model_check", "seal_bundle", "verify", "attach_columns", "check_raw_columns", "input_range",
]
TESTING_API = ["Host", "SMALL_PIPELINE", "build_host", "load_with_plugins", "run_with_plugins", "small_pipeline", "write_pipeline"]


def signature(name: str) -> str:
    """``before_stage(run: RunContext, stage: str) -> None`` as written in hookspecs.py."""
    fn = getattr(hookspecs, name)
    parameters = ", ".join(f"{p.name}: {p.annotation}" for p in inspect.signature(fn).parameters.values())
    return f"{name}({parameters}) -> {inspect.signature(fn).return_annotation}"


def test_there_are_hookspecs():
    assert len(hookspec_names()) == 20


@pytest.mark.parametrize("kind", kinds.ALL, ids=lambda kind: kind.name)
def test_each_kind_is_declared_once_and_its_hook_and_docs_follow(kind):
    """The kind's declaration makes its registration hook (typed with the kind's own ``register``) and
    is what docs/plugins.md says of it: the call every component of the kind gets, the keywords its
    ``register`` takes."""
    hook = getattr(hookspecs, kind.hook)
    assert hook.__doc__ == kind.summary and inspect.signature(hook).parameters["register"].annotation == kind.register.__name__
    assert getattr(hookspecs, kind.register.__name__) is kind.register and issubclass(kind.register, hookspecs.Register)
    section = PLUGIN_GUIDE.split(f"### {kind.hook}", 1)[1].split("\n### ", 1)[0]
    assert f"`{kind.call}`" in section, f"the {kind.hook} section does not say how a {kind.name} is called: {kind.call}"
    for keyword in kind.keywords:
        assert f"`{keyword}=`" in section or f"{keyword}=" in section, f"the {kind.hook} section does not show {keyword}="
    assert sorted(kind.name for kind in kinds.ALL) == sorted(registry.KINDS)  # the old table is derived, not declared


@pytest.mark.parametrize("name", hookspec_names())
def test_hook_is_documented_with_its_exact_signature(name):
    assert f"### {name}" in PLUGIN_GUIDE, f"docs/plugins.md has no section for {name}"
    assert f"`{signature(name)}`" in PLUGIN_GUIDE, f"docs/plugins.md does not show {signature(name)}"
    section = PLUGIN_GUIDE.split(f"### {name}", 1)[1].split("\n### ", 1)[0]
    assert "```python" in section and "@hookimpl" in section, f"the {name} section has no example"


def _section(title: str) -> str:
    return PLUGIN_GUIDE.split(f"\n## {title}", 1)[1].split("\n## ", 1)[0]


def _subsection(title: str, subtitle: str) -> str:
    return _section(title).split(f"\n### {subtitle}", 1)[1].split("\n### ", 1)[0]


def test_public_api_is_pinned():
    assert sorted(pipeline_core.__all__) == sorted(PUBLIC_API)
    assert len(PUBLIC_API) <= 46  # the component author's tier stays small
    for name in PUBLIC_API:
        assert getattr(pipeline_core, name) is not None
    assert isinstance(pipeline_core.hookimpl, pluggy.HookimplMarker)
    documented = set(re.findall(r"`(\w+)[`(]", _subsection("The public API", "`pipeline_core`")))
    assert set(PUBLIC_API) <= documented, f"not in docs/plugins.md's public API: {sorted(set(PUBLIC_API) - documented)}"


def test_engine_api_is_pinned():
    assert sorted(pipeline_core.engine.__all__) == sorted(ENGINE_API)
    assert not set(ENGINE_API) & set(PUBLIC_API)  # two tiers, each name in one
    for name in ENGINE_API:
        assert getattr(pipeline_core.engine, name) is not None
    documented = set(re.findall(r"`(\w+)[`(]", _subsection("The public API", "`pipeline_core.engine`")))
    assert set(ENGINE_API) <= documented, f"not in docs/plugins.md's engine API: {sorted(set(ENGINE_API) - documented)}"


def test_testing_helpers_are_pinned_and_documented():
    assert sorted(pipeline_core.testing.__all__) == sorted(TESTING_API)
    documented = set(re.findall(r"`(\w+)", _section("Testing a plugin")))
    assert set(TESTING_API) <= documented, f"not in docs/plugins.md's testing section: {sorted(set(TESTING_API) - documented)}"


def _imported_in_tests(module: str) -> set[str]:
    """Names imported from ``module`` anywhere in the tests, plugin sources written by tests included."""
    names: set[str] = set()
    for path in (ROOT / "tests").rglob("*.py"):
        for single, grouped in re.findall(rf"from {re.escape(module)} import (?:\(([^)]*)\)|([^\n]+))", path.read_text(encoding="utf-8")):
            names |= set(re.findall(r"\w+", (single or grouped).split("#")[0]))
    return names


@pytest.mark.parametrize("module, names", [
    ("pipeline_core", PUBLIC_API), ("pipeline_core.engine", ENGINE_API), ("pipeline_core.testing", TESTING_API),
])
def test_every_public_name_is_used_by_a_test(module, names):
    missing = sorted(set(names) - _imported_in_tests(module))
    assert not missing, f"public names of {module} that no test imports: {missing}"


def test_public_callables_are_typed():
    for module in (pipeline_core, pipeline_core.engine, pipeline_core.testing):
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
