"""Custom stages from a plugin, and the lifecycle hooks around every stage and epoch."""

from __future__ import annotations

import json
import textwrap

import pytest

from pipeline_core import RunContext, hookimpl
from pipeline_core.pipeline.runner import load_pipeline, run_pipeline

from helpers import IRIS_FAST

STAGE_PLUGIN = '''
from pipeline_core import RunContext, hookimpl
from pipeline_core.run.artifacts import write_text


def class_counts(run: RunContext, *, title: str, uppercase: bool = False) -> None:
    """Write the number of training rows per class."""
    targets = run.require_data("class_counts").splits["train"].targets
    lines = [title.upper() if uppercase else title]
    for index, name in enumerate(run.data.spec.classes):
        lines.append(f"{name}: {int((targets == index).sum())}")
    write_text(run.path("class_counts.txt"), "\\n".join(lines) + "\\n")


def explode(run: RunContext) -> None:
    raise RuntimeError("stage exploded on purpose")


@hookimpl
def register_stages(register):
    register("class_counts", class_counts)
    register("explode", explode)
'''


class Recorder:
    """A plugin that records every lifecycle hook call."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    @hookimpl
    def before_pipeline(self, run: RunContext) -> None:
        self.calls.append(("before_pipeline",))

    @hookimpl
    def after_pipeline(self, run: RunContext) -> None:
        self.calls.append(("after_pipeline",))

    @hookimpl
    def before_stage(self, run: RunContext, stage: str) -> None:
        self.calls.append(("before_stage", stage))

    @hookimpl
    def after_stage(self, run: RunContext, stage: str) -> None:
        self.calls.append(("after_stage", stage))

    @hookimpl
    def on_stage_error(self, run: RunContext, stage: str, error: BaseException) -> None:
        self.calls.append(("on_stage_error", stage, str(error)))

    @hookimpl
    def on_epoch_end(self, run: RunContext, epoch: int, metrics: dict) -> None:
        self.calls.append(("on_epoch_end", epoch, round(metrics["train_loss"], 6)))


@pytest.fixture
def stage_pipeline(write_pipeline, tmp_path):
    (tmp_path / "stage_plugin.py").write_text(textwrap.dedent(STAGE_PLUGIN))

    def make(stages: str, extra: str = "") -> object:
        text = IRIS_FAST.replace("seed = 3", f'seed = 3\nplugins = ["stage_plugin.py"]\nstages = {stages}') + extra
        return write_pipeline(text)

    return make


def test_a_plugin_stage_runs_where_the_file_puts_it(stage_pipeline, tmp_path):
    path = stage_pipeline('["load_data", "class_counts", "build_model", "train", "evaluate"]',
                          '\n[stages.class_counts]\ntitle = "rows per class"\nuppercase = true\n')
    config, host = load_pipeline(path)
    run = run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    text = (run.run_dir / "class_counts.txt").read_text().splitlines()
    assert text[0] == "ROWS PER CLASS"
    assert sum(int(line.split(": ")[1]) for line in text[1:]) == len(run.data.splits["train"])
    manifest = json.loads((run.run_dir / "manifest.json").read_text())
    assert "class_counts.txt" in manifest["files"]
    assert not (run.run_dir / "model.onnx").exists()  # export was left out of the stage list


def test_stage_options_are_validated(stage_pipeline):
    from pipeline_core.errors import ConfigError

    path = stage_pipeline('["load_data", "class_counts"]', "\n[stages.class_counts]\nuppercase = true\n")
    with pytest.raises(ConfigError, match=r"stages.class_counts.title: missing required value \(expected str\) \[stage 'class_counts'\]"):
        load_pipeline(path)


def test_lifecycle_hooks_fire_in_order(write_pipeline, tmp_path):
    config, host = load_pipeline(write_pipeline())
    recorder = Recorder()
    host.manager.register(recorder, name="recorder")
    try:
        run = run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    finally:
        host.manager.unregister(name="recorder")
    stages = ["load_data", "build_model", "train", "evaluate", "export"]
    epochs = [("on_epoch_end", row["epoch"], round(row["train_loss"], 6)) for row in run.history]
    expected = [("before_pipeline",)]
    for stage in stages:
        expected.append(("before_stage", stage))
        if stage == "train":
            expected.extend(epochs)
        expected.append(("after_stage", stage))
    expected.append(("after_pipeline",))
    assert recorder.calls == expected
    assert len(epochs) == 3


def test_stage_error_hook_is_called_then_the_error_propagates(stage_pipeline, tmp_path):
    config, host = load_pipeline(stage_pipeline('["load_data", "explode", "build_model"]'))
    recorder = Recorder()
    host.manager.register(recorder, name="recorder")
    with pytest.raises(RuntimeError, match="stage exploded on purpose"):
        run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    assert recorder.calls[-1] == ("on_stage_error", "explode", "stage exploded on purpose")
    assert ("after_pipeline",) not in recorder.calls
    assert not (tmp_path / "run" / "manifest.json").exists()  # a failed run is not sealed


def test_stage_that_needs_data_says_so(stage_pipeline, tmp_path):
    from pipeline_core.errors import PipelineError

    config, host = load_pipeline(stage_pipeline('["class_counts"]', '\n[stages.class_counts]\ntitle = "x"\n'))
    with pytest.raises(PipelineError, match="stage 'class_counts' needs data: put 'load_data' before it"):
        run_pipeline(config, host, out=tmp_path / "run", quiet=True)
