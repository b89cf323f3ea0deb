"""Shared by the plot plugins: a headless matplotlib, a figure's PNG into ``run.plots``, and the
model's classes for some inputs."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: plots are files

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from pipeline_core import RunContext, Split, StreamedSplit, class_indices, model_outputs  # noqa: E402


def figure(columns: int = 1, rows: int = 1, width: float = 5.0, height: float = 4.0) -> tuple[Any, Any]:
    return plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False)


def save(run: RunContext, name: str, fig: Any, title: str, data: dict[str, Any]) -> None:
    """Write ``plots/<name>.png`` atomically and record it, with ``data``, in ``plots/index.json``."""
    try:
        run.plots.add(name, lambda temp: fig.savefig(temp, format="png", dpi=100, bbox_inches="tight"), title, data)
    finally:
        plt.close(fig)


def is_image_data(run: RunContext) -> bool:
    """Whether the run classifies images (C, H, W) or (H, W): the image grids apply."""
    data = run.data
    return data is not None and run.model is not None and data.spec.task != "regression" and len(data.spec.input_shape) in (2, 3)


def show_image(axis: Any, image: torch.Tensor) -> None:
    """Draw one (C, H, W) or (H, W) image: grayscale for one channel, else RGB(A); 0–255 integers
    as they are, floats scaled to their own range (imshow clips RGB floats to [0, 1])."""
    if image.dim() == 3:
        image = image[0] if image.shape[0] == 1 else image[:4].permute(1, 2, 0)
    if image.dim() == 3 and image.is_floating_point():
        low, high = image.min(), image.max()
        image = (image - low) / (high - low) if high > low else torch.zeros_like(image)
    axis.imshow(image.cpu().numpy(), cmap="gray" if image.dim() == 2 else None)


def class_names(run: RunContext) -> list[str]:
    spec = run.require_data("plots").spec
    return list(spec.classes) or [str(i) for i in range(max(2, spec.num_outputs))]


def predicted_classes(run: RunContext, inputs: torch.Tensor | Split | StreamedSplit) -> torch.Tensor:
    """Class index per row of ``inputs`` (a tensor, or a split's inputs) from the run's model (argmax, or logit > 0 for one logit)."""
    outputs = model_outputs(run.require_model("plots"), inputs.to(run.device)).cpu()
    return class_indices(outputs, run.require_data("plots").spec.task)


def evaluated_split(run: RunContext) -> str:
    split = run.config.evaluate.split
    return split if run.data is not None and split in run.data.splits else "test"
