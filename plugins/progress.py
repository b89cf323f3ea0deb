"""Training progress on the console, as a plugin on the lifecycle hooks.

``progress = "auto"`` (the default): on a terminal, a live bar with the epoch's losses and metrics,
speed and ETA; when output is not a terminal (logs, CI, pipes) it stays quiet and the run's summary
says the rest. ``"lines"`` prints about ten plain lines per run instead, for logs that want them;
``"bar"`` forces the bar; ``"none"`` (``--quiet``) prints nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline_core import hookimpl

if TYPE_CHECKING:  # rich loads with the first run, not when the plugin registers
    from rich.console import Console
    from rich.progress import Progress

    from pipeline_core import RunContext

HIDDEN = ("epoch", "seconds", "lr")
VALIDATED = "val_"


def _console() -> Console:
    from rich.console import Console

    return Console()


@dataclass
class Display:
    """This plugin's per-run state: the console, the mode it settled on, and the live bar while training."""

    console: Console = field(default_factory=_console)
    mode: str = ""  # "bar", "lines" or "none" once settled
    bar: tuple[Progress, Any] | None = None
    validated: dict[str, float] = field(default_factory=dict)  # the val_ values of the last validated epoch
    validated_epoch: int = 0

    def describe(self, metrics: dict[str, float]) -> str:
        """An epoch's row; an epoch that was not validated (``validate_every``) shows the last one that was."""
        measured = {name: value for name, value in metrics.items() if name.startswith(VALIDATED)}
        if measured:
            self.validated, self.validated_epoch = measured, int(metrics.get("epoch", 0))
        shown = [f"{name} {value:.4f}" for name, value in metrics.items() if name not in HIDDEN]
        if self.validated and not measured:
            shown.append(" ".join(f"{name} {value:.4f}" for name, value in self.validated.items()) + f" (epoch {self.validated_epoch})")
        speed = f"{1 / metrics['seconds']:.1f} epochs/s" if metrics.get("seconds") else ""
        return "  ".join(shown + [speed])


def _display(run: RunContext) -> Display:
    display = run.plugin_state(Display)
    if not display.mode:
        terminal = "bar" if display.console.is_terminal else "none"
        display.mode = terminal if run.progress == "auto" else run.progress
    return display


@hookimpl
def before_stage(run: RunContext, stage: str) -> None:
    display = _display(run)
    if display.mode == "none":
        return
    train = run.config.train
    if stage == "train" and train is not None and display.mode == "bar":
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=display.console,
        )
        progress.start()
        display.bar = (progress, progress.add_task("", total=train.epochs))
    else:
        display.console.print(f"[dim]stage[/dim] {stage}", highlight=False)


@hookimpl
def on_epoch_end(run: RunContext, epoch: int, metrics: dict[str, float]) -> None:
    display = _display(run)
    train = run.config.train
    if display.mode == "none" or train is None:
        return
    description = display.describe(metrics)  # every epoch: it keeps the last validated one
    if display.bar is not None:
        progress, task = display.bar
        progress.update(task, completed=epoch, description=description)
        return
    every = max(1, train.epochs // 10)
    if epoch == 1 or epoch % every == 0 or epoch == train.epochs:
        display.console.print(f"  epoch {epoch:>{len(str(train.epochs))}}/{train.epochs}  {description}", highlight=False)


def _stop_bar(run: RunContext) -> None:
    display = _display(run)
    if display.bar is not None:
        display.bar[0].stop()
        display.bar = None


@hookimpl
def after_stage(run: RunContext, stage: str) -> None:
    _stop_bar(run)


@hookimpl
def on_stage_error(run: RunContext, stage: str, error: BaseException) -> None:
    _stop_bar(run)
