"""TensorBoard scalars for every epoch and the final metrics, in ``tensorboard/`` of the run folder.

Opt-in: list ``"plugins.trackers.tensorboard"`` under ``[pipeline] plugins`` and install the extra
(``pip install -e '.[tensorboard]'``); then ``tensorboard --logdir artifacts``."""

from __future__ import annotations

from typing import Any

from pipeline_core import PluginError, RunContext, hookimpl

try:
    from torch.utils.tensorboard import SummaryWriter
except ImportError as error:  # the extra is not installed
    raise PluginError(
        "the tensorboard tracker needs the tensorboard package: pip install -e '.[tensorboard]'"
    ) from error

KEY = "plugins.trackers.tensorboard"


def _writer(run: RunContext) -> Any:
    if KEY not in run.state:
        run.state[KEY] = SummaryWriter(log_dir=str(run.path("tensorboard/.keep").parent))
    return run.state[KEY]


@hookimpl
def on_epoch_end(run: RunContext, epoch: int, metrics: dict[str, float]) -> None:
    writer = _writer(run)
    for name, value in metrics.items():
        if name != "epoch":
            writer.add_scalar(name.replace("_", "/", 1) if name.startswith(("train_", "val_")) else name, value, epoch)


@hookimpl
def after_pipeline(run: RunContext) -> None:
    writer = _writer(run)
    for split, values in run.metrics.items():
        for name, value in values.items():
            if isinstance(value, float):
                writer.add_scalar(f"final/{split}/{name}", value, 0)
    writer.close()
    run.state.pop(KEY, None)


@hookimpl
def on_stage_error(run: RunContext, stage: str, error: BaseException) -> None:
    writer = run.state.pop(KEY, None)
    if writer is not None:
        writer.close()
