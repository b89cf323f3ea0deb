"""What a dataset plugin hands the host, and what flows from it to models and metrics.

Shapes flow forward: a model gets :class:`DataSpec` (input shape, number of outputs, task), so a TOML
file never repeats ``in_features = 4``. Preprocessing (feature standardization, image scaling) is a
module that travels with the data and becomes the first layer of the model, so the exported file
takes raw inputs and the statistics are saved with the weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from pipeline_core._moved import renamed_names
from pipeline_core.data.columns import RawColumns
from pipeline_core.data.spec import INTERPOLATIONS, RESIZE_OPS, TASKS, DatasetContext, DataSpec, ImageSpec, Task
from pipeline_core.data.splits import Augment, Split
from pipeline_core.data.streaming import StreamedSplit

__all__ = ["INTERPOLATIONS", "RESIZE_OPS", "TASKS", "Augment", "DataSpec", "DatasetContext", "ImageSpec", "LoadedData", "Predictions", "Split", "StreamedSplit", "Task", "class_indices"]


@dataclass
class LoadedData:
    """What a dataset loader returns, and a run holds as ``run.data``: the spec, the splits by name
    (``train``, ``test``, optional ``validation``), each a :class:`Split` of tensors or a
    :class:`~pipeline_core.StreamedSplit` decoded item by item, and the preprocessing module that
    maps raw inputs to what the network trains on. (Called ``DataBundle`` before: "bundle" is the
    deploy bundle alone.)"""

    spec: DataSpec
    splits: dict[str, Split | StreamedSplit]
    preprocess: nn.Module = field(default_factory=nn.Identity)
    description: str = ""
    #: what the host decided for streamed splits (memory or stream, sizes, workers); empty without any
    loading: dict[str, Any] = field(default_factory=dict)
    #: for a table of typed columns (:func:`~pipeline_core.split_columns`): the fitted encoder and the
    #: raw splits; the splits above then hold the encoded matrix, and the exported model takes raw columns
    columns: RawColumns | None = None

    def __post_init__(self) -> None:
        if self.spec.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, not {self.spec.task!r}")
        for required in ("train", "test"):
            if required not in self.splits:
                raise ValueError(f"loaded data needs a {required!r} split; it has {sorted(self.splits)}")


def class_indices(outputs: torch.Tensor, task: Task) -> torch.Tensor:
    """The class index of each row of a classifier's outputs: the argmax for multiclass, logit > 0
    for binary (int64, shape (N,)). A regression model predicts values, not classes."""
    if task == "multiclass":
        return outputs.argmax(dim=1)
    if task == "binary":
        return (outputs > 0).long().view(-1)
    raise ValueError("a regression model predicts values, not classes")


@dataclass(frozen=True)
class Predictions:
    """A model's outputs on one split, with the targets: what every metric is computed from."""

    outputs: torch.Tensor
    targets: torch.Tensor
    task: Task
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    def predicted_classes(self) -> torch.Tensor:
        """Class index per row (argmax for multiclass, logit > 0 for binary): :func:`class_indices`."""
        return class_indices(self.outputs, self.task)

    def true_classes(self) -> torch.Tensor:
        return self.targets.long().view(-1)


#: until the next release, ``DataBundle`` (now :class:`LoadedData`), with a DeprecationWarning
__getattr__ = renamed_names(__name__)
