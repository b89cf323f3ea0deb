"""The confusion matrix of the evaluated split, for classifiers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline_core import hookimpl

if TYPE_CHECKING:
    from pipeline_core import Register, RunContext


@hookimpl
def register_plots(register: Register) -> None:
    register("confusion_matrix", confusion_matrix)


def confusion_matrix(run: RunContext) -> None:
    """The confusion matrix of the evaluated split (classifiers)."""
    import torch

    from pipeline_core_plugins.plots import figures

    if run.data is None or run.model is None or run.data.spec.task == "regression":
        return
    split_name = figures.evaluated_split(run)
    split = run.data.splits[split_name]
    classes = list(run.data.spec.classes) or [str(i) for i in range(max(2, run.data.spec.num_outputs))]
    count = len(classes)
    truth = split.targets.view(-1).long().cpu()
    predicted = figures.predicted_classes(run, split)
    matrix = torch.bincount(truth * count + predicted, minlength=count * count).view(count, count)
    fig, axes = figures.figure(width=max(4.0, 0.6 * count + 2), height=max(3.5, 0.6 * count + 1.5))
    axis = axes[0][0]
    image = axis.imshow(matrix.numpy(), cmap="Blues")
    axis.set_xticks(range(count), classes, rotation=45, ha="right")
    axis.set_yticks(range(count), classes)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    for i in range(count):
        for j in range(count):
            value = int(matrix[i, j])
            axis.text(j, i, str(value), ha="center", va="center", color="white" if value > matrix.max() / 2 else "black")
    fig.colorbar(image, ax=axis)
    axis.set_title(f"confusion matrix ({split_name})")
    figures.save(run, "confusion_matrix", fig, f"Confusion matrix on the {split_name} split", {"matrix": matrix.tolist(), "classes": classes})
