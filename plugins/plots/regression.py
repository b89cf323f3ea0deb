"""Predicted against true values on the evaluated split, for regression."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline_core import hookimpl

if TYPE_CHECKING:
    from pipeline_core import Register, RunContext


@hookimpl
def register_plots(register: Register) -> None:
    register("predicted_vs_true", predicted_vs_true)


def predicted_vs_true(run: RunContext) -> None:
    """Predicted against true values on the evaluated split (regression)."""
    from pipeline_core import model_outputs
    from pipeline_core_plugins.plots import figures

    data = run.data
    if data is None or run.model is None or data.spec.task != "regression":
        return
    split_name = figures.evaluated_split(run)
    split = data.splits[split_name]
    predicted = model_outputs(run.model, split.to(run.device)).cpu().reshape(-1)
    truth = split.targets.cpu().reshape(-1)
    fig, axes = figures.figure()
    axis = axes[0][0]
    axis.scatter(truth.numpy(), predicted.numpy(), s=10, alpha=0.6)
    low, high = float(min(truth.min(), predicted.min())), float(max(truth.max(), predicted.max()))
    axis.plot([low, high], [low, high], color="black", linewidth=1, label="predicted = true")
    axis.set_xlabel("true")
    axis.set_ylabel("predicted")
    axis.set_title(f"predicted vs true ({split_name})")
    axis.legend()
    figures.save(run, "predicted_vs_true", fig, f"Predicted against true values on the {split_name} split",
                 {"points": len(truth)})
