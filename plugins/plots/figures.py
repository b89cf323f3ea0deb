"""Shared by the plot plugins: a headless matplotlib, a figure's PNG into ``run.plots``, and the
model's classes for some inputs."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: plots are files

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from pipeline_core import RunContext, class_indices, predict  # noqa: E402


def figure(columns: int = 1, rows: int = 1, width: float = 5.0, height: float = 4.0) -> tuple[Any, Any]:
    return plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False)


def save(run: RunContext, name: str, fig: Any, title: str, data: dict[str, Any]) -> None:
    """Write ``plots/<name>.png`` atomically and record it, with ``data``, in ``plots/index.json``."""
    try:
        run.plots.add(name, lambda temp: fig.savefig(temp, format="png", dpi=100, bbox_inches="tight"), title, data)
    finally:
        plt.close(fig)


def predicted_classes(run: RunContext, inputs: torch.Tensor) -> torch.Tensor:
    """Class index per row from the run's model (argmax, or logit > 0 for one logit)."""
    outputs = predict(run.require_model("plots"), inputs.to(run.device)).cpu()
    return class_indices(outputs, run.require_data("plots").spec.task)


def evaluated_split(run: RunContext) -> str:
    split = run.config.evaluate.split
    return split if run.data is not None and split in run.data.splits else "test"
