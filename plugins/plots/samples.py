"""A grid of images from the evaluated split with their true and predicted labels (image data only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline_core import hookimpl

if TYPE_CHECKING:
    from pipeline_core import Register, RunContext

COUNT = 16


@hookimpl
def register_plots(register: Register) -> None:
    register("samples", samples)


def samples(run: RunContext) -> None:
    """Images of the evaluated split with their true and predicted labels (image classifiers)."""
    from pipeline_core_plugins.plots import figures

    data = run.data
    if data is None or not figures.is_image_data(run):
        return
    split_name = figures.evaluated_split(run)
    split = data.splits[split_name]
    sample = split.head(min(COUNT, len(split)))
    count = len(sample)
    images = sample.inputs.cpu()
    truth = sample.targets.view(-1).long().cpu().tolist()
    predicted = figures.predicted_classes(run, sample.inputs).tolist()
    classes = figures.class_names(run)
    columns = 4
    rows = (count + columns - 1) // columns
    fig, axes = figures.figure(columns=columns, rows=rows, width=2.4, height=2.6)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index >= count:
            continue
        figures.show_image(axis, images[index])
        right = truth[index] == predicted[index]
        axis.set_title(f"true {classes[truth[index]]}\npred {classes[predicted[index]]}", fontsize=9, color="green" if right else "red")
    figures.save(run, "samples", fig, f"Sample images from the {split_name} split: true and predicted labels",
                 {"count": count, "true": [classes[t] for t in truth], "predicted": [classes[p] for p in predicted]})
