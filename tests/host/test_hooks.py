"""One test per hook (datasette's test_plugin_hooks_have_tests pattern): each registers a small
plugin that uses the hook and checks the host calls it as documented."""

from __future__ import annotations

import json
import sys
import textwrap

import click
import pytest
import torch
from click.testing import CliRunner

from pipeline_core import RunContext, RunFailed, RunFailure, hookimpl
from pipeline_core.cli import cli as cli_main
from pipeline_core.host.build import build_host
from pipeline_core.pipeline.runner import load_pipeline, run_pipeline

from helpers import IRIS_FAST, hookspec_names

PLUGIN_HEADER = """
import torch
from torch import nn
from pipeline_core import DataBundle, DatasetContext, DataSpec, LRSchedule, Predictions, Split, TrainingPlan, hookimpl
"""


def test_every_hook_has_a_test():
    missing = [name for name in hookspec_names() if f"test_hook_{name}" not in globals()]
    assert not missing, f"hooks without a test_hook_<name> test: {missing}"


@pytest.fixture
def with_plugin(write_pipeline, tmp_path):
    """Write ``body`` as a plugin file, reference it from the pipeline, return (config, host)."""

    def make(body: str, *overrides: str, text: str = IRIS_FAST):
        (tmp_path / "hook_plugin.py").write_text(PLUGIN_HEADER + textwrap.dedent(body))
        path = write_pipeline(text.replace("seed = 3", 'seed = 3\nplugins = ["hook_plugin.py"]'))
        return load_pipeline(path, overrides)

    return make


class Recorder:
    """A plugin that records the lifecycle hook calls (arguments except ``run``)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    @hookimpl
    def before_pipeline(self, run: RunContext) -> None:
        self.calls.append(("before_pipeline", {}))

    @hookimpl
    def after_pipeline(self, run: RunContext) -> None:
        self.calls.append(("after_pipeline", {}))

    @hookimpl
    def before_stage(self, run: RunContext, stage: str) -> None:
        self.calls.append(("before_stage", {"stage": stage}))

    @hookimpl
    def after_stage(self, run: RunContext, stage: str) -> None:
        self.calls.append(("after_stage", {"stage": stage}))

    @hookimpl
    def on_stage_error(self, run: RunContext, stage: str, error: BaseException) -> None:
        self.calls.append(("on_stage_error", {"stage": stage, "error": error}))

    @hookimpl
    def on_epoch_end(self, run: RunContext, epoch: int, metrics: dict) -> None:
        self.calls.append(("on_epoch_end", {"epoch": epoch, "metrics": metrics}))

    def of(self, *names: str) -> list[tuple[str, dict]]:
        return [call for call in self.calls if call[0] in names]


def test_hook_register_datasets(with_plugin, tmp_path):
    config, host = with_plugin("""
        def two_points(context: DatasetContext, *, shift: float = 0.0) -> DataBundle:
            x = torch.tensor([[0.0 + shift], [1.0 + shift]] * 8)
            y = torch.tensor([0, 1] * 8)
            split = Split(x, y)
            return DataBundle(DataSpec("multiclass", (1,), 2, classes=("a", "b")), {"train": split, "test": split})

        @hookimpl
        def register_datasets(register):
            register("two_points", two_points)
    """, 'data.name="two_points"', "data.shift=2.0", "model.batch_norm=false")
    run = run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    assert run.data.splits["train"].inputs[0, 0] == 2.0
    assert host.registry.get("dataset", "two_points").plugin == "hook_plugin.py"


def test_hook_register_models(with_plugin, tmp_path):
    config, host = with_plugin("""
        def linear(spec: DataSpec, *, bias: bool = True) -> nn.Module:
            return nn.Linear(spec.input_shape[0], spec.num_outputs, bias=bias)

        @hookimpl
        def register_models(register):
            register("linear", linear)
    """, 'model={name="linear", bias=false}')
    run = run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    assert isinstance(run.model.network, torch.nn.Linear) and run.model.network.bias is None


def test_hook_register_optimizers(with_plugin, tmp_path):
    config, host = with_plugin("""
        def frozen(params, *, lr: float = 0.0) -> torch.optim.Optimizer:
            return torch.optim.SGD(params, lr=lr)

        @hookimpl
        def register_optimizers(register):
            register("frozen", frozen)
    """, 'train.optimizer={name="frozen"}', "model.batch_norm=false")
    before = None

    @hookimpl
    def after_stage(run: RunContext, stage: str) -> None:
        nonlocal before
        if stage == "build_model":
            before = {k: v.clone() for k, v in run.model.state_dict().items()}

    plugin = type("Snapshot", (), {"after_stage": staticmethod(after_stage)})
    host.manager.register(plugin, name="snapshot")
    run = run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    assert all(torch.equal(before[k], v) for k, v in run.model.state_dict().items())  # lr 0: nothing moved


def test_hook_register_schedulers(with_plugin, tmp_path):
    config, host = with_plugin("""
        def tenth(optimizer, plan: TrainingPlan, *, after: int = 1) -> LRSchedule:
            return LRSchedule(torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[after], gamma=0.1))

        @hookimpl
        def register_schedulers(register):
            register("tenth", tenth)
    """, 'train.scheduler={name="tenth", after=2}')
    run = run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    assert [row["lr"] for row in run.history] == pytest.approx([0.01, 0.01, 0.001])


def test_hook_register_losses(with_plugin, tmp_path):
    config, host = with_plugin("""
        def doubled(*, factor: float = 2.0) -> nn.Module:
            class Doubled(nn.Module):
                def forward(self, outputs, targets):
                    return factor * nn.functional.cross_entropy(outputs, targets)
            return Doubled()

        @hookimpl
        def register_losses(register):
            register("doubled", doubled)
    """, 'train.loss={name="doubled", factor=3.0}')
    run = run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    test = run.data.splits["test"]
    with torch.no_grad():
        cross_entropy = torch.nn.functional.cross_entropy(run.model.eval()(test.inputs), test.targets)
    assert run.metrics["test"]["loss"] == pytest.approx(3.0 * float(cross_entropy), rel=1e-5)


def test_hook_register_metrics(with_plugin, tmp_path):
    config, host = with_plugin("""
        def error_rate(predictions: Predictions, *, percent: bool = False) -> float:
            rate = float((predictions.predicted_classes() != predictions.true_classes()).float().mean())
            return rate * 100 if percent else rate

        @hookimpl
        def register_metrics(register):
            register("error_rate", error_rate)
    """, 'evaluate.metrics=["accuracy", {name="error_rate", percent=true}]')
    run = run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    assert run.metrics["test"]["error_rate"] == pytest.approx(100 * (1 - run.metrics["test"]["accuracy"]))


def test_hook_register_exporters(with_plugin, tmp_path):
    config, host = with_plugin("""
        import numpy as np

        class Weights:
            filename = "weights_only.pt"

            def export(self, model, example, path, info):
                torch.save(model, path)  # the whole module: fine for a test, not for deployment
                self.names = info.output_names
                return {"kind": "pickled module"}

            def load(self, path, device):
                module = torch.load(path, weights_only=False)
                names = self.names

                class Loaded:
                    providers, signature = ["torch"], {}
                    def __call__(self, inputs):
                        with torch.no_grad():
                            out = module(torch.from_numpy(inputs))
                        return dict(zip(names, [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]))
                return Loaded()

        @hookimpl
        def register_exporters(register):
            register("weights", lambda: Weights())
    """, 'export.formats=["weights"]')
    run = run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    assert run.export_report["weights"]["passed"] and run.export_report["weights"]["kind"] == "pickled module"
    assert (run.run_dir / "bundle" / "weights_only.pt").exists()


def test_hook_register_stages(with_plugin, tmp_path):
    config, host = with_plugin("""
        def count(run, *, label: str) -> None:
            run.write_json("count.json", {label: len(run.data.splits["train"])})

        @hookimpl
        def register_stages(register):
            register("count", count)
    """, 'pipeline.stages=["load_data", "count"]', 'stages.count={label="rows"}')
    run = run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    assert json.loads((run.run_dir / "count.json").read_text()) == {"rows": 112}


def test_hook_register_plots(with_plugin, tmp_path):
    config, host = with_plugin("""
        def rows(run) -> None:
            split = run.data.splits[run.config.evaluate.split]
            run.plots.add("rows", lambda temp: temp.write_bytes(b"png"), "Rows evaluated", {"rows": len(split)})

        @hookimpl
        def register_plots(register):
            register("rows", rows)
    """, 'pipeline.stages=["load_data", "build_model", "evaluate"]')
    run = run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    assert json.loads((run.run_dir / "plots" / "index.json").read_text())["rows"]["data"] == {"rows": 38}
    assert host.registry.get("plot", "rows").plugin == "hook_plugin.py"


def test_hook_register_trackers(with_plugin, tmp_path):
    config, host = with_plugin("""
        from dataclasses import dataclass

        @dataclass(frozen=True)
        class Note:
            path: str

        def note(*, path: str = "note.json") -> Note:
            return Note(path)

        @hookimpl
        def register_trackers(register):
            register("note", note)

        @hookimpl
        def after_pipeline(run):
            chosen = run.config.trackers.get("note")
            if chosen is not None:
                run.write_json(note(**chosen.options).path, {"epochs": len(run.history)})
    """, 'trackers.note={path="final.json"}')
    assert config.trackers["note"].options == {"path": "final.json"} and config.resolved()["trackers"] == {"note": {"path": "final.json"}}
    run = run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    assert json.loads((run.run_dir / "final.json").read_text()) == {"epochs": 3}
    assert host.registry.get("tracker", "note").plugin == "hook_plugin.py"


SWEEP_WATCHER = """
import json
from pipeline_core import hookimpl

@hookimpl
def before_sweep(config, folder, study):
    with open(folder / "calls.jsonl", "a") as stream:
        stream.write(json.dumps(["before_sweep", config.name, study, sorted(p.name for p in folder.iterdir())]) + "\\n")

@hookimpl
def after_sweep(config, folder, study, record):
    with open(folder / "calls.jsonl", "a") as stream:
        stream.write(json.dumps(["after_sweep", config.name, study, record["state"], record["trials"]["complete"],
                                 sorted(p.name for p in (folder / "trials").iterdir())]) + "\\n")
"""

SWEPT = IRIS_FAST.replace('name = "iris"', 'name = "iris"\nval_size = 0.25').replace("seed = 3", 'seed = 3\nplugins = ["watcher.py"]') + """
[sweep]
objective = "val_loss"
trials = 1

[sweep.parameters]
"train.optimizer.lr" = { type = "float", low = 0.001, high = 0.1, log = true }
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One sweep of one trial with a plugin that writes each sweep hook's call into the sweep's folder."""
    folder = tmp_path_factory.mktemp("swept")
    (folder / "watcher.py").write_text(SWEEP_WATCHER)
    (folder / "pipeline.toml").write_text(textwrap.dedent(SWEPT).lstrip())
    result = CliRunner().invoke(cli_main, ["sweep", str(folder / "pipeline.toml"), "--artifacts", str(folder / "artifacts")])
    assert result.exit_code == 0, result.output
    sweep = folder / "artifacts" / "iris_fast" / "sweeps" / "iris_fast"
    return [json.loads(line) for line in (sweep / "calls.jsonl").read_text().splitlines()]


def test_hook_before_sweep(swept):
    name, pipeline, study, files = swept[0]
    assert (name, pipeline, study) == ("before_sweep", "iris_fast", "iris_fast")
    assert "sweep.json" in files and "trials" not in files  # the study is opened, and no trial has run yet


def test_hook_after_sweep(swept):
    assert swept[1:] == [["after_sweep", "iris_fast", "iris_fast", "finished", 1, ["0000"]]]  # once, with the results written


def test_hook_register_commands(tmp_path, monkeypatch):
    (tmp_path / "command_plugin.py").write_text(textwrap.dedent("""
        import click
        from pipeline_core import hookimpl

        @hookimpl
        def register_commands(cli):
            @cli.command()
            @click.argument("who")
            def greet(who):
                click.echo(f"hello {who}")
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    import command_plugin

    group = click.Group("pipeline")
    host = build_host()
    host.manager.register(command_plugin, name="command_plugin")
    host.hook.register_commands(cli=group)
    result = CliRunner().invoke(group, ["greet", "world"])
    assert result.output == "hello world\n"
    sys.modules.pop("command_plugin", None)


@pytest.fixture
def recorded(write_pipeline):
    def make(text: str = IRIS_FAST):
        config, host = load_pipeline(write_pipeline(text))
        recorder = Recorder()
        host.manager.register(recorder, name="recorder")
        return config, host, recorder

    return make


def test_hook_before_pipeline(recorded, tmp_path):
    config, host, recorder = recorded()
    run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    assert recorder.calls[:2] == [("before_pipeline", {}), ("before_stage", {"stage": "load_data"})]


def test_hook_after_pipeline(recorded, tmp_path):
    config, host, recorder = recorded()
    run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    assert recorder.calls[-2:] == [("after_stage", {"stage": "export"}), ("after_pipeline", {})]


def test_hook_before_stage(recorded, tmp_path):
    config, host, recorder = recorded()
    run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    assert [kwargs["stage"] for _, kwargs in recorder.of("before_stage")] == ["load_data", "build_model", "train", "evaluate", "export"]


def test_hook_after_stage(recorded, tmp_path):
    config, host, recorder = recorded()
    run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    assert [kwargs["stage"] for _, kwargs in recorder.of("after_stage")] == ["load_data", "build_model", "train", "evaluate", "export"]


def test_hook_on_stage_error(recorded, tmp_path):
    text = IRIS_FAST.replace('name = "adam"\nlr = 0.01', 'name = "sgd"\nlr = 1e30').replace("batch_norm = [true, false]", "batch_norm = false")
    config, host, recorder = recorded(text)
    with pytest.raises(RunFailed, match="training diverged"):
        run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    name, kwargs = recorder.calls[-1]
    assert name == "on_stage_error" and kwargs["stage"] == "train" and isinstance(kwargs["error"], RunFailed)
    assert ("after_stage", {"stage": "train"}) not in recorder.calls


def test_hook_on_epoch_end(recorded, tmp_path):
    config, host, recorder = recorded()
    run = run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    calls = recorder.of("on_epoch_end")
    assert [kwargs["epoch"] for _, kwargs in calls] == [1, 2, 3]
    assert [kwargs["metrics"] for _, kwargs in calls] == run.history


class FailureWatcher:
    """Records each on_pipeline_error call with what the run says about its failure."""

    def __init__(self) -> None:
        self.seen: list[tuple[RunFailure | None, BaseException]] = []

    @hookimpl
    def on_pipeline_error(self, run: RunContext, error: BaseException) -> None:
        self.seen.append((run.failure, error))


def test_hook_on_pipeline_error(recorded, tmp_path):
    text = IRIS_FAST.replace('name = "adam"\nlr = 0.01', 'name = "sgd"\nlr = 1e30').replace("batch_norm = [true, false]", "batch_norm = false")
    config, host, recorder = recorded(text)
    watcher = FailureWatcher()
    host.manager.register(watcher, name="watcher")
    with pytest.raises(RunFailed, match="training diverged") as caught:
        run_pipeline(config, host, out=tmp_path / "run", quiet=True)
    [(failure, error)] = watcher.seen  # once, after on_stage_error
    assert error is caught.value
    assert (failure.status, failure.stage, failure.hook, failure.plugin) == ("failed", "train", None, None)
    assert failure.error.startswith("RunFailed: training diverged")
    assert json.loads((tmp_path / "run" / "status.json").read_text()) == failure.as_status()
    assert recorder.calls[-1][0] == "on_stage_error"
