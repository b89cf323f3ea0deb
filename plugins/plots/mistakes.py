"""A grid of the worst mistakes: the evaluated split's wrong predictions the model was most sure of
(image classifiers only), each with its true and predicted label and the predicted class's
probability. These are where a classifier is confidently wrong: mislabelled images, confusable
classes, or a preprocessing problem show up here first."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline_core import hookimpl

if TYPE_CHECKING:
    import torch

    from pipeline_core import Register, RunContext

COUNT = 16
COLUMNS = 4


def confidences(outputs: torch.Tensor, binary: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted class and its probability per row: softmax over the logits, or sigmoid for one logit."""
    import torch

    if binary:
        positive = torch.sigmoid(outputs.view(-1).double())
        predicted = (outputs.view(-1) > 0).long()
        return predicted, torch.where(predicted == 1, positive, 1 - positive)
    probabilities = torch.softmax(outputs.double(), dim=1)
    confidence, predicted = probabilities.max(dim=1)
    return predicted, confidence


@hookimpl
def register_plots(register: Register) -> None:
    register("mistakes", mistakes)


def mistakes(run: RunContext) -> None:
    """The most confident wrong predictions on the evaluated split (image classifiers)."""
    import torch

    from pipeline_core import model_outputs
    from pipeline_core_plugins.plots import figures

    data = run.data
    if data is None or not figures.is_image_data(run):
        return
    split_name = figures.evaluated_split(run)
    split = data.splits[split_name]
    with torch.no_grad():
        outputs = model_outputs(run.require_model("plots"), split.to(run.device)).cpu()  # a streamed split: batch by batch
    predicted, confidence = confidences(outputs, data.spec.task == "binary")
    truth = split.targets.view(-1).long().cpu()
    wrong = (predicted != truth).nonzero().view(-1)
    # most confident first; ties keep the split's order (a stable sort), so the grid is reproducible
    order = wrong[torch.sort(confidence[wrong], descending=True, stable=True).indices][:COUNT]
    rows, classes = order.tolist(), figures.class_names(run)
    columns = COLUMNS if rows else 1
    fig, axes = figures.figure(columns=columns, rows=max(1, -(-len(rows) // columns)), width=2.4 if rows else 5.0, height=2.6 if rows else 3.0)
    for axis in axes.flat:
        axis.axis("off")
    if not rows:
        axes.flat[0].text(0.5, 0.5, f"no wrong predictions\non the {len(split)} rows of the {split_name} split",
                          ha="center", va="center", fontsize=12)
    chosen = split.select(rows)  # only these rows are decoded from a streamed split
    for position, (axis, row) in enumerate(zip(axes.flat, rows, strict=False)):
        figures.show_image(axis, chosen.inputs[position].cpu())
        axis.set_title(f"true {classes[truth[row]]}\npred {classes[predicted[row]]} (p {confidence[row]:.3f})", fontsize=9, color="red")
    figures.save(run, "mistakes", fig, f"The most confident wrong predictions on the {split_name} split ({len(wrong)} wrong of {len(split)})", {
        "split": split_name,
        "wrong": len(wrong),
        "rows": rows,
        "true": [classes[truth[row]] for row in rows],
        "predicted": [classes[predicted[row]] for row in rows],
        "confidence": [float(confidence[row]) for row in rows],
    })
