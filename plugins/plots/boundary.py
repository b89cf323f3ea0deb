"""The decision boundary of a classifier with two input features, over the training and the test
points side by side (the moons and spirals tutorials' plot)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline_core import hookimpl

if TYPE_CHECKING:
    from pipeline_core import Register, RunContext

RESOLUTION = 200


@hookimpl
def register_plots(register: Register) -> None:
    register("decision_boundary", decision_boundary)


def decision_boundary(run: RunContext) -> None:
    """The decision boundary over the training and held-out points (classifiers of two features)."""
    import torch

    from pipeline_core_plugins.plots import figures

    data = run.data
    if data is None or run.model is None:
        return
    if data.spec.task == "regression" or data.spec.input_shape != (2,):
        return
    held_out = "test" if "test" in data.splits else figures.evaluated_split(run)  # a sweep's trial holds the test split out
    splits = [(name, data.splits[name].head()) for name in ("train", held_out)]  # a streamed split: its first rows
    points = torch.cat([split.inputs for _, split in splits]).float().cpu()
    low, high = points.min(dim=0).values, points.max(dim=0).values
    margin = (high - low) * 0.1
    xs = torch.linspace(float(low[0] - margin[0]), float(high[0] + margin[0]), RESOLUTION)
    ys = torch.linspace(float(low[1] - margin[1]), float(high[1] + margin[1]), RESOLUTION)
    grid_x, grid_y = torch.meshgrid(xs, ys, indexing="xy")
    grid = torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1)
    regions = figures.predicted_classes(run, grid).view(RESOLUTION, RESOLUTION)
    fig, axes = figures.figure(columns=2)
    counts = {}
    for axis, (name, split) in zip(axes[0], splits, strict=True):
        axis.contourf(grid_x.numpy(), grid_y.numpy(), regions.numpy(), alpha=0.35, cmap="RdYlBu")
        inputs = split.inputs.float().cpu()
        axis.scatter(inputs[:, 0], inputs[:, 1], c=split.targets.view(-1).cpu().numpy(), s=12, cmap="RdYlBu", edgecolors="k", linewidths=0.3)
        names = data.spec.feature_names or ("x1", "x2")
        axis.set_xlabel(names[0])
        axis.set_ylabel(names[1])
        axis.set_title(f"{name} ({len(split)} points)")
        counts[name] = len(split)
    figures.save(run, "decision_boundary", fig, f"Decision boundary: training and {held_out} points",
                 {"points": counts, "grid": [RESOLUTION, RESOLUTION], "region_classes": sorted(set(regions.view(-1).tolist()))})
