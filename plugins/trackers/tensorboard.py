"""TensorBoard scalars for every epoch and the final metrics, in ``tensorboard/`` of the run folder.

Opt-in: list ``"plugins.trackers.tensorboard"`` under ``[pipeline] plugins`` and install the extra
(``pip install -e '.[tensorboard]'``); then ``tensorboard --logdir artifacts``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline_core import PluginError, RunContext, hookimpl, scalars

try:
    from torch.utils.tensorboard import SummaryWriter
except ImportError as error:  # the extra is not installed
    raise PluginError(
        "the tensorboard tracker needs the tensorboard package: pip install -e '.[tensorboard]'"
    ) from error


@dataclass
class Writer:
    """This run's event-file writer, open from the first epoch to the end of the run."""

    writer: Any = None

    def open(self, run: RunContext) -> Any:
        if self.writer is None:
            self.writer = SummaryWriter(log_dir=str(run.path("tensorboard/.keep").parent))
        return self.writer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


@hookimpl
def on_epoch_end(run: RunContext, epoch: int, metrics: dict[str, float]) -> None:
    writer = run.plugin_state(Writer).open(run)
    for name, value in metrics.items():
        if name != "epoch":
            writer.add_scalar(name.replace("_", "/", 1) if name.startswith(("train_", "val_")) else name, value, epoch)


@hookimpl
def after_pipeline(run: RunContext) -> None:
    state = run.plugin_state(Writer)
    writer = state.open(run)
    for split, values in run.metrics.items():
        for name, value in scalars(values).items():
            writer.add_scalar(f"final/{split}/{name}", value, 0)
    state.close()


@hookimpl
def on_pipeline_error(run: RunContext, error: BaseException) -> None:
    run.plugin_state(Writer).close()  # wherever the run failed: a stage, or another plugin's hook
