"""Training progress on the console, as a plugin on the lifecycle hooks.

On a terminal: a live bar with the latest losses and an ETA. Otherwise (logs, CI, pipes): about ten
plain lines per run, so a log stays readable. Silent when the run is quiet.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from pipeline_core import RunContext, hookimpl

KEY = "plugins.progress"


def _describe(metrics: dict[str, float]) -> str:
    shown = [f"{name} {value:.4f}" for name, value in metrics.items() if name not in ("epoch", "seconds", "lr")]
    return "  ".join(shown)


def _state(run: RunContext) -> dict[str, Any]:
    return run.state.setdefault(KEY, {})


@hookimpl
def before_stage(run: RunContext, stage: str) -> None:
    if run.quiet:
        return
    console = Console()
    _state(run)["console"] = console
    if stage == "train" and run.config.train is not None and console.is_terminal:
        progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
        )
        progress.start()
        _state(run)["bar"] = (progress, progress.add_task("", total=run.config.train.epochs))
    else:
        console.print(f"[dim]stage[/dim] {stage}", highlight=False)


@hookimpl
def on_epoch_end(run: RunContext, epoch: int, metrics: dict[str, float]) -> None:
    if run.quiet or run.config.train is None:
        return
    state = _state(run)
    if "bar" in state:
        progress, task = state["bar"]
        progress.update(task, advance=1, description=_describe(metrics))
        return
    epochs = run.config.train.epochs
    every = max(1, epochs // 10)
    if epoch == 1 or epoch % every == 0 or epoch == epochs:
        rate = f"{1 / metrics['seconds']:.1f} epochs/s" if metrics.get("seconds") else ""
        state["console"].print(f"  epoch {epoch:>{len(str(epochs))}}/{epochs}  {_describe(metrics)}  {rate}", highlight=False)


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
