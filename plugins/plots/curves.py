"""Loss and metric curves per epoch, training and validation side by side."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline_core import hookimpl

if TYPE_CHECKING:
    from pipeline_core import Register, RunContext

SKIP = ("epoch", "seconds", "lr")


def quantities(columns: list[str]) -> list[str]:
    """``train_loss``/``val_loss`` → ``loss``: one panel per quantity, in first-seen order."""
    seen: list[str] = []
    for column in columns:
        if column in SKIP:
            continue
        name = column.split("_", 1)[1] if column.startswith(("train_", "val_")) else column
        if name not in seen:
            seen.append(name)
    return seen


@hookimpl
def register_plots(register: Register) -> None:
    register("curves", curves)


def curves(run: RunContext) -> None:
    """Loss and metrics per epoch, training and validation side by side (with a training history)."""
    from pipeline_core_plugins.plots import figures

    if not run.history:
        return
    columns = list(dict.fromkeys(column for row in run.history for column in row))  # val_ columns may start later (validate_every)
    panels = quantities(columns)
    epochs = [int(row["epoch"]) for row in run.history]
    fig, axes = figures.figure(columns=len(panels))
    series = {}
    for axis, quantity in zip(axes[0], panels, strict=True):
        for prefix, label in (("train_", "train"), ("val_", "validation")):
            column = prefix + quantity
            if column in columns:
                series[column] = [row.get(column) for row in run.history]  # None where the epoch was not validated
                measured = [(int(row["epoch"]), row[column]) for row in run.history if column in row]
                axis.plot(*zip(*measured, strict=True), label=label, marker="." if len(measured) < len(epochs) else None)
        axis.set_title(quantity)
        axis.set_xlabel("epoch")
        axis.grid(True, alpha=0.3)
        axis.legend()
    figures.save(run, "curves", fig, "Loss and metrics per epoch", {"epochs": epochs, "series": series})
