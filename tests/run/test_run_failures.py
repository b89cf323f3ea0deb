"""A plugin that fails anywhere in a run, in a stage or in any lifecycle hook, leaves the run marked
failed (status.json names the stage, the hook and the plugin; events.jsonl ends with the failure)
and no sealed bundle; a plugin file written as a user would, run through the command line."""

from __future__ import annotations

import json
import textwrap

import pytest

from helpers import IRIS_FAST, invoke

FAST = IRIS_FAST.replace("epochs = 3", "epochs = 2")



def _failing_run(write_pipeline, tmp_path, hook: str, signature: str, condition: str = "True", stages: str = ""):
    (tmp_path / "failing.py").write_text(textwrap.dedent(f'''
        from pipeline_core import hookimpl

        @hookimpl
        def {hook}({signature}):
            if {condition}:
                raise ValueError("the {hook} hook broke")
    '''))
    extra = f"\nstages = {stages}" if stages else ""
    path = write_pipeline(FAST.replace("seed = 3", f'seed = 3\nplugins = ["failing.py"]{extra}'))
    run_dir = tmp_path / "run"
    return invoke("run", path, "--out", run_dir), run_dir


def _events(run_dir):
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def test_a_hook_that_fails_after_export_fails_the_run_and_unseals_its_bundle(write_pipeline, tmp_path):
    result, run_dir = _failing_run(write_pipeline, tmp_path, "after_pipeline", "run")
    assert result.exit_code == 1
    assert "error: the after_pipeline hook of plugin 'failing.py' raised ValueError: the after_pipeline hook broke." in result.output
    assert "its bundle unsealed (after fixing the cause: `pipeline export" in result.output
    assert "Traceback" not in result.output
    status = json.loads((run_dir / "status.json").read_text())
    assert status == {"status": "failed", "hook": "after_pipeline", "plugin": "failing.py", "error": "ValueError: the after_pipeline hook broke"}
    assert _events(run_dir)[-1] | {"time": 0} == {"time": 0, "event": "pipeline_error", **status}
    assert (run_dir / "bundle" / "model.onnx").is_file()  # kept for inspection, but unsealed:
    assert not (run_dir / "bundle" / "manifest.json").exists() and not (run_dir / "manifest.json").exists()
    assert (run_dir / "weights.pt").is_file()

    predicted = invoke("predict", run_dir, "--input", tmp_path / "absent.csv")
    assert predicted.exit_code == 2 and "this run failed" in predicted.output and "so it has no bundle" in predicted.output

    (tmp_path / "failing.py").write_text("")  # the plugin fixed: export the trained weights again
    again = invoke("export", run_dir)
    assert again.exit_code == 0, again.output
    assert json.loads((run_dir / "status.json").read_text())["status"] == "succeeded"
    assert (run_dir / "bundle" / "manifest.json").is_file()


@pytest.mark.parametrize("hook, signature, condition, stage", [
    ("before_pipeline", "run", "True", None),
    ("before_stage", "run, stage", "stage == 'evaluate'", "evaluate"),
    ("after_stage", "run, stage", "stage == 'train'", "train"),
    ("on_epoch_end", "run, epoch, metrics", "epoch == 2", "train"),
])
def test_a_failing_lifecycle_hook_marks_where_it_failed(write_pipeline, tmp_path, hook, signature, condition, stage):
    result, run_dir = _failing_run(write_pipeline, tmp_path, hook, signature, condition, '["load_data", "build_model", "train", "evaluate"]')
    assert result.exit_code == 1
    where = f"the {hook} hook of plugin 'failing.py'" + (f" during stage '{stage}'" if stage else "")
    assert f"error: {where} raised ValueError: the {hook} hook broke" in result.output
    expected = {"status": "failed", **({"stage": stage} if stage else {}), "hook": hook, "plugin": "failing.py",
                "error": f"ValueError: the {hook} hook broke"}
    assert json.loads((run_dir / "status.json").read_text()) == expected
    assert _events(run_dir)[-1]["event"] == "pipeline_error"
    assert not (run_dir / "manifest.json").exists()


def test_a_failing_on_stage_error_is_added_to_the_stages_failure(write_pipeline, tmp_path):
    (tmp_path / "failing.py").write_text(textwrap.dedent('''
        from pipeline_core import hookimpl

        def explode(run):
            raise RuntimeError("the stage broke")

        @hookimpl
        def register_stages(register):
            register("explode", explode)

        @hookimpl
        def on_stage_error(run, stage, error):
            raise ValueError("so did the error hook")

        @hookimpl
        def on_pipeline_error(run, error):
            raise KeyError("and the pipeline error hook")
    '''))
    path = write_pipeline(FAST.replace("seed = 3", 'seed = 3\nplugins = ["failing.py"]\nstages = ["load_data", "explode"]'))
    result = invoke("run", path, "--out", tmp_path / "run")
    assert result.exit_code == 1
    assert "internal error: RuntimeError: the stage broke" in result.output  # the stage's own error, not the hooks'
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status == {
        "status": "failed", "stage": "explode", "error": "RuntimeError: the stage broke",
        "also": ["the on_stage_error hook of plugin 'failing.py' raised ValueError: so did the error hook",
                 "the on_pipeline_error hook of plugin 'failing.py' raised KeyError: 'and the pipeline error hook'"],
    }


def test_a_broken_built_in_hook_names_the_setting_that_leaves_it_out(write_pipeline, tmp_path, monkeypatch):
    from pipeline_core_plugins import report

    def broken_render(run):
        raise KeyError("list object has no element 3")

    monkeypatch.setattr(report, "render", broken_render)  # the report crash of issue 20, in the real built-in
    result = invoke("run", write_pipeline(FAST), "--out", tmp_path / "run")
    assert result.exit_code == 1
    assert "the after_pipeline hook of plugin 'plugins.report' raised KeyError" in result.output
    assert "to run without it, set PIPELINE_CORE_BLOCK_PLUGINS=plugins.report" in result.output
    assert json.loads((tmp_path / "run" / "status.json").read_text())["plugin"] == "plugins.report"
    assert not (tmp_path / "run" / "bundle" / "manifest.json").exists()
