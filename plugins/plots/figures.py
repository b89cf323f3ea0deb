"""Shared by the plot plugins: a headless matplotlib, atomic PNG writes, and ``plots/index.json``."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: plots are files

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from pipeline_core import RunContext  # noqa: E402
from pipeline_core.artifacts import atomic_write, write_json  # noqa: E402
from pipeline_core.evaluation import predict  # noqa: E402

FOLDER = "plots"
INDEX = "index.json"
KEY = "plugins.plots"


def figure(columns: int = 1, rows: int = 1, width: float = 5.0, height: float = 4.0) -> tuple[Any, Any]:
    return plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False)


def save(run: RunContext, name: str, fig: Any, title: str, data: dict[str, Any]) -> None:
    """Write ``plots/<name>.png`` atomically and record it, with ``data``, in ``plots/index.json``."""
    path = run.path(f"{FOLDER}/{name}.png")
    try:
        atomic_write(path, lambda temp: fig.savefig(temp, format="png", dpi=100, bbox_inches="tight"))
    finally:
        plt.close(fig)
    index = run.state.setdefault(KEY, {})
    index[name] = {"file": f"{FOLDER}/{name}.png", "title": title, "data": data}
    write_json(run.path(f"{FOLDER}/{INDEX}"), index)


def predicted_classes(run: RunContext, inputs: torch.Tensor) -> torch.Tensor:
    """Class index per row from the run's model (argmax, or logit > 0 for one logit)."""
    outputs = predict(run.model, inputs.to(run.device)).cpu()  # type: ignore[arg-type]
    return (outputs > 0).long().view(-1) if run.data.spec.task == "binary" else outputs.argmax(dim=1)  # type: ignore[union-attr]


def evaluated_split(run: RunContext) -> str:
    split = run.config.evaluate.split
    return split if run.data is not None and split in run.data.splits else "test"
