"""Plots are a component kind (``register_plots``) that the evaluate stage draws: the built-in plots
are components of it; a third-party plot registered the new way lands in plots/ and the report,
after the built-ins; one written the old way, on ``after_stage``, still does; a plot that raises fails
the run naming the plot and its plugin; a stage of one's own draws the plots with ``draw_plots``."""

from __future__ import annotations

import json
import textwrap

import pytest

from pipeline_core import Register, RunContext, hookimpl, model_outputs
from pipeline_core.engine import draw_plots
from pipeline_core.testing import build_host, run_with_plugins, small_pipeline

from helpers import IRIS_FAST, check_png, invoke

#: no export: the plots and the report are what these runs are for
STAGES = ["load_data", "build_model", "train", "evaluate"]


def _histogram(run: RunContext, name: str, title: str) -> None:
    """A real plot from the run's model, drawn with matplotlib and recorded as every plot is."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data, model = run.require_data(name), run.require_model(name)
    outputs = model_outputs(model, data.splits[run.config.evaluate.split].to(run.device)).cpu()
    fig, axis = plt.subplots(figsize=(5, 4))
    axis.hist(outputs.flatten().numpy(), bins=30)
    try:
        run.plots.add(name, lambda temp: fig.savefig(temp, format="png", dpi=100), title, {"rows": len(outputs)})
    finally:
        plt.close(fig)


class NewStylePlot:
    @hookimpl
    def register_plots(self, register: Register) -> None:
        register("output_histogram", self.output_histogram)

    @staticmethod
    def output_histogram(run: RunContext) -> None:
        """The model's outputs on the evaluated split."""
        _histogram(run, "output_histogram", "Model outputs (registered)")


class OldStylePlot:
    """A plot as plugins wrote them before plots were a kind: on after_stage, after the evaluate stage."""

    @hookimpl
    def after_stage(self, run: RunContext, stage: str) -> None:
        if stage == "evaluate":
            _histogram(run, "old_histogram", "Model outputs (after_stage)")


def test_the_builtin_plots_are_components_of_the_plot_kind():
    host = build_host()
    assert host.registry.names("plot") == ["confusion_matrix", "curves", "decision_boundary", "mistakes", "predicted_vs_true", "samples"]
    assert host.registry.get("plot", "confusion_matrix").plugin == "plugins.plots.confusion"
    order = [plot.name for plot in host.registry.of_kind("plot")]  # the order the report shows them in
    assert order == ["curves", "predicted_vs_true", "mistakes", "samples", "decision_boundary", "confusion_matrix"]
    hooks = {name: sorted(c.name for c in host.manager.get_hookcallers(host.manager.get_plugin(name)) or [])
             for name in host.plugins if name.startswith("plugins.plots.")}
    assert set(map(tuple, hooks.values())) == {("register_plots",)}  # no plot tests which stage ended any more


def test_a_plot_registered_the_new_way_and_one_written_the_old_way_both_reach_plots_and_the_report(tmp_path):
    run = run_with_plugins(small_pipeline(pipeline={"stages": STAGES}), tmp_path, plugins=[NewStylePlot(), OldStylePlot()])
    index = json.loads((run.run_dir / "plots" / "index.json").read_text())
    assert list(index) == ["curves", "confusion_matrix", "output_histogram", "old_histogram"]  # built-ins, new, then after_stage
    for name in ("output_histogram", "old_histogram"):
        check_png(run.run_dir / index[name]["file"])
        assert index[name]["data"] == {"rows": 38}
    report = (run.run_dir / "report.html").read_text()
    assert "Model outputs (registered)" in report and "Model outputs (after_stage)" in report
    assert {c.kind for c in run.host.registry.by_plugin("NewStylePlot")} == {"plot"}


def test_pipeline_plugins_lists_a_plot_as_a_component(write_pipeline, tmp_path):
    (tmp_path / "widgets.py").write_text(textwrap.dedent('''
        from pipeline_core import hookimpl

        def widgets(run):
            """Widgets."""

        @hookimpl
        def register_plots(register):
            register("widgets", widgets)
    '''))
    result = invoke("plugins", "--json", "--pipeline", write_pipeline(IRIS_FAST.replace("seed = 3", 'seed = 3\nplugins = ["widgets.py"]')))
    entries = {entry["name"]: entry for entry in json.loads(result.output)}
    assert entries["widgets.py"]["components"] == {"plot": ["widgets"]} and entries["widgets.py"]["hooks"] == ["register_plots"]
    assert entries["plugins.plots.curves"]["components"] == {"plot": ["curves"]}


def test_a_plot_that_raises_fails_the_run_naming_the_plot_and_its_plugin(write_pipeline, tmp_path):
    (tmp_path / "failing.py").write_text(textwrap.dedent('''
        from pipeline_core import hookimpl

        def broken(run):
            raise ValueError("the plot broke")

        @hookimpl
        def register_plots(register):
            register("broken", broken)
    '''))
    path = write_pipeline(IRIS_FAST.replace("seed = 3", f'seed = 3\nplugins = ["failing.py"]\nstages = {STAGES}'))
    result = invoke("run", path, "--out", tmp_path / "run")
    assert result.exit_code == 1
    assert ("error: the plot 'broken' of plugin 'failing.py' during stage 'evaluate' raised ValueError: the plot broke. "
            "The run is marked failed") in result.output
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status == {"status": "failed", "stage": "evaluate", "plot": "broken", "plugin": "failing.py", "error": "ValueError: the plot broke"}


def test_a_broken_builtin_plot_names_the_setting_that_leaves_it_out(write_pipeline, tmp_path, monkeypatch):
    from pipeline_core_plugins.plots import figures

    def broken_save(*args: object) -> None:
        raise KeyError("no such axis")

    monkeypatch.setattr(figures, "save", broken_save)
    result = invoke("run", write_pipeline(IRIS_FAST.replace("seed = 3", f"seed = 3\nstages = {STAGES}")), "--out", tmp_path / "run")
    assert result.exit_code == 1
    assert "the plot 'curves' of plugin 'plugins.plots.curves' during stage 'evaluate' raised KeyError" in result.output
    assert "to run without it, set PIPELINE_CORE_BLOCK_PLUGINS=plugins.plots.curves" in result.output


class OwnEvaluation:
    """A stage of one's own in place of ``evaluate``: it scores the model and draws the plots."""

    @hookimpl
    def register_stages(self, register: Register) -> None:
        register("score", self.score, needs=("data", "model"), provides=("metrics",))

    @staticmethod
    def score(run: RunContext) -> None:
        from pipeline_core.engine import Evaluator

        data = run.require_data("score")
        run.metrics["test"] = Evaluator.for_run(run, data.spec.task)(run.require_model("score"), data.splits["test"].to(run.device))
        draw_plots(run)


@pytest.mark.parametrize("stages, drawn", [
    (["load_data", "build_model", "train", "score"], {"curves", "confusion_matrix"}),
    (["load_data", "build_model", "train"], set()),  # nothing evaluates, so nothing draws
])
def test_the_plots_are_drawn_by_whatever_stage_evaluates(tmp_path, stages, drawn):
    run = run_with_plugins(small_pipeline(pipeline={"stages": stages}, train={"epochs": 2}), tmp_path, plugins=[OwnEvaluation()])
    assert set(run.plots.recorded()) == drawn
