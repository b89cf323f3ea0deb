"""Training progress on the console, as a plugin on the lifecycle hooks.

``progress = "auto"`` (the default): on a terminal, a live bar with the epoch's losses and metrics,
speed and ETA; when output is not a terminal (logs, CI, pipes) it stays quiet and the run's summary
says the rest. ``"lines"`` prints about ten plain lines per run instead, for logs that want them;
``"bar"`` forces the bar; ``"none"`` (``--quiet``) prints nothing.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from pipeline_core import RunContext, hookimpl

KEY = "plugins.progress"
HIDDEN = ("epoch", "seconds", "lr")


def _describe(metrics: dict[str, float]) -> str:
    shown = [f"{name} {value:.4f}" for name, value in metrics.items() if name not in HIDDEN]
    speed = f"{1 / metrics['seconds']:.1f} epochs/s" if metrics.get("seconds") else ""
    return "  ".join(shown + [speed])


def _state(run: RunContext) -> dict[str, Any]:
    """This plugin's per-run state: the console and the mode it settled on."""
    state = run.state.setdefault(KEY, {})
    if "mode" not in state:
        console = Console()
        mode = run.progress
        if mode == "auto":
            mode = "bar" if console.is_terminal else "none"
        state.update(console=console, mode=mode)
    return state


@hookimpl
def before_stage(run: RunContext, stage: str) -> None:
    state = _state(run)
    if state["mode"] == "none":
        return
    train = run.config.train
    if stage == "train" and train is not None and state["mode"] == "bar":
        progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=state["console"],
        )
        progress.start()
        state["bar"] = (progress, progress.add_task("", total=train.epochs))
    else:
        state["console"].print(f"[dim]stage[/dim] {stage}", highlight=False)


@hookimpl
def on_epoch_end(run: RunContext, epoch: int, metrics: dict[str, float]) -> None:
    state = _state(run)
    train = run.config.train
    if state["mode"] == "none" or train is None:
        return
    if "bar" in state:
        progress, task = state["bar"]
        progress.update(task, completed=epoch, description=_describe(metrics))
        return
    every = max(1, train.epochs // 10)
    if epoch == 1 or epoch % every == 0 or epoch == train.epochs:
        state["console"].print(f"  epoch {epoch:>{len(str(train.epochs))}}/{train.epochs}  {_describe(metrics)}", highlight=False)


def _stop_bar(run: RunContext) -> None:
    bar = _state(run).pop("bar", None)
    if bar is not None:
        bar[0].stop()


@hookimpl
def after_stage(run: RunContext, stage: str) -> None:
    _stop_bar(run)


@hookimpl
def on_stage_error(run: RunContext, stage: str, error: BaseException) -> None:
    _stop_bar(run)
