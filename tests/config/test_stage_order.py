"""Pipeline-file mistakes a user makes in the stage list and in union-typed values: refused by
`pipeline validate` (and `pipeline run`, before any data is loaded) with exit code 2 and file:line."""

from __future__ import annotations

import textwrap

import pytest

from helpers import IRIS_FAST, invoke

STAGES_PLUGIN = '''
from pipeline_core import RunContext, hookimpl


def embed(run: RunContext) -> None:
    run.write_text("embedded.txt", "rows embedded\\n")


def cluster(run: RunContext) -> None:
    run.write_text("clusters.txt", "clustered\\n")


def note(run: RunContext) -> None:
    run.write_text("note.txt", "declares nothing\\n")


@hookimpl
def register_stages(register):
    register("embed", embed, needs=("data",), provides=("embeddings",))
    register("cluster", cluster, needs=("embeddings",))
    register("note", note)
'''



def _with_stages(write_pipeline, stages: str, plugin: bool = False):
    extra = '\nplugins = ["stages_plugin.py"]' if plugin else ""
    return write_pipeline(IRIS_FAST.replace("seed = 3", f"seed = 3{extra}\nstages = {stages}"))


@pytest.fixture
def stages_plugin(tmp_path):
    (tmp_path / "stages_plugin.py").write_text(textwrap.dedent(STAGES_PLUGIN))


def test_an_empty_stage_list_is_refused_with_its_line(write_pipeline, tmp_path):
    path = _with_stages(write_pipeline, "[]")
    result = invoke("validate", path)
    assert result.exit_code == 2
    assert f"{path}:4: pipeline.stages: no stages: a pipeline runs at least one (the default: load_data, build_model, train, evaluate, export)" in result.output
    run = invoke("run", path, "--out", tmp_path / "run")
    assert run.exit_code == 2 and "no stages" in run.output
    assert not (tmp_path / "run").exists()  # refused before a run folder was made, let alone data loaded


def test_train_before_build_model_is_refused_before_any_data_is_loaded(write_pipeline, tmp_path):
    path = _with_stages(write_pipeline, '["load_data", "train", "build_model", "evaluate"]')
    result = invoke("validate", path)
    assert result.exit_code == 2
    assert (f"{path}:4: pipeline.stages[1]: stage 'train' needs 'model', which no stage before it provides: "
            "put 'build_model' before it") in result.output
    run = invoke("run", path, "--out", tmp_path / "run")
    assert run.exit_code == 2 and "stage 'train' needs 'model'" in run.output
    assert not (tmp_path / "run").exists()


def test_each_misplaced_stage_names_everything_it_lacks(write_pipeline):
    path = _with_stages(write_pipeline, '["evaluate", "load_data", "build_model", "export"]')
    result = invoke("validate", path)
    assert result.exit_code == 2
    assert ("pipeline.stages[0]: stage 'evaluate' needs 'data' and 'model', which no stage before it provides: "
            "put 'load_data' and 'build_model' before it") in result.output
    assert "stages[3]" not in result.output  # export comes after both


def test_third_party_stages_declare_what_they_need_and_provide(write_pipeline, stages_plugin, tmp_path):
    wrong = _with_stages(write_pipeline, '["load_data", "cluster", "embed"]', plugin=True)
    result = invoke("validate", wrong)
    assert result.exit_code == 2
    assert "pipeline.stages[1]: stage 'cluster' needs 'embeddings', which no stage before it provides: put 'embed' before it" in result.output

    right = _with_stages(write_pipeline, '["load_data", "embed", "cluster"]', plugin=True)
    assert invoke("validate", right).exit_code == 0
    run = invoke("run", right, "--out", tmp_path / "run", "-q")
    assert run.exit_code == 0, run.output
    assert (tmp_path / "run" / "clusters.txt").is_file()


def test_a_need_no_registered_stage_provides_is_named(write_pipeline, stages_plugin):
    path = _with_stages(write_pipeline, '["cluster"]', plugin=True)
    result = invoke("validate", path)
    assert result.exit_code == 2
    assert "stage 'cluster' needs 'embeddings', which no stage before it provides: put 'embed' before it" in result.output


def test_a_stage_that_declares_nothing_is_not_held_to_an_order(write_pipeline, stages_plugin):
    path = _with_stages(write_pipeline, '["note", "load_data", "build_model"]', plugin=True)
    assert invoke("validate", path).exit_code == 0


@pytest.mark.parametrize("arguments, message", [
    ('needs=("data",)', "plugin 'bad_needs.py' gave model 'm' needs=('data',): only a stage takes needs"),
    ('provides="model"', "expected a tuple of lower-case names, such as ('data', 'model')"),
])
def test_needs_and_provides_are_checked_when_registered(write_pipeline, tmp_path, arguments, message):
    kind = "models" if "needs" in arguments else "stages"
    component = "lambda spec: None" if kind == "models" else "lambda run: None"
    name = "m" if kind == "models" else "s"
    (tmp_path / "bad_needs.py").write_text(
        f"from pipeline_core import hookimpl\n\n@hookimpl\ndef register_{kind}(register):\n    register({name!r}, {component}, {arguments})\n"
    )
    path = write_pipeline(IRIS_FAST.replace("seed = 3", 'seed = 3\nplugins = ["bad_needs.py"]'))
    result = invoke("validate", path)
    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.parametrize("change, expected", [
    (("batch_size = 16", "batch_size = 0"), ":15: train.batch_size: must be at least 1 (or 'full'), got 0 (int)"),
    (("batch_size = 16", 'batch_size = "all"'), ":15: train.batch_size: expected int | 'full', got 'all' (str)"),
    (("seed = 3", "seed = 3\nthreads = 0"), ":4: pipeline.threads: must be at least 1 (or 'auto'), got 0 (int)"),
    (('name = "iris"', 'name = "iris"\nworkers = -1'), ":7: data.workers: must be at least 0 (or 'auto'), got -1 (int)"),
])
def test_a_union_typed_value_reports_the_rule_it_broke(write_pipeline, change, expected):
    path = write_pipeline(IRIS_FAST.replace(*change))
    result = invoke("validate", path)
    assert result.exit_code == 2
    assert f"{path}{expected}" in result.output
    assert result.output.count("\n") == 1  # one problem, said once


def test_a_plugin_option_of_a_union_type_reports_its_bound(write_pipeline, tmp_path):
    (tmp_path / "union_model.py").write_text(textwrap.dedent('''
        from typing import Annotated, Literal
        from pydantic import Field
        from torch import nn
        from pipeline_core import DataSpec, hookimpl

        def sized(spec: DataSpec, *, width: Annotated[int, Field(ge=2, le=64)] | Literal["auto"] = "auto") -> nn.Module:
            return nn.Linear(spec.input_shape[0], spec.num_outputs)

        @hookimpl
        def register_models(register):
            register("sized", sized)
    '''))
    text = IRIS_FAST.replace("seed = 3", 'seed = 3\nplugins = ["union_model.py"]')
    text = text.replace('name = "mlp"\nhidden_sizes = [16, 8]\nbatch_norm = [true, false]', 'name = "sized"\nwidth = 100')
    result = invoke("validate", write_pipeline(text))
    assert result.exit_code == 2
    assert "model.width: must be at most 64 (or 'auto'), got 100 (int) [model 'sized']" in result.output
