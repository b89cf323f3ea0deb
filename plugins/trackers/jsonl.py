"""``events.jsonl``: one JSON line per event (stage start and end, every epoch's row, the end of the
run, or where and why it failed), appended as it happens, so a run can be followed (``tail -f``) or
read while it is running. The final per-epoch table is ``history.csv``.

Epoch lines are the one frequent event (a full-batch model ends an epoch every millisecond or so), so
they are written in bunches: the first epoch's line at once, then whatever epochs ended, at most
every :data:`EPOCH_FLUSH_SECONDS`. Every other event writes the lines held before it and itself at
once, so a failure, an interrupt (SIGINT/SIGTERM) or the run's end leaves every epoch's line in the
file. Only a process killed outright (SIGKILL, power loss) loses lines: at most the epochs of the
last :data:`EPOCH_FLUSH_SECONDS`, always whole lines at the end of the file. Each line keeps the time
its epoch ended.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline_core import hookimpl, scalars

if TYPE_CHECKING:
    from pipeline_core import RunContext

FILE = "events.jsonl"
#: The longest time an epoch's line waits before it is written (the window a SIGKILL can lose).
EPOCH_FLUSH_SECONDS = 1.0


@dataclass
class EventLog:
    """This plugin's per-run state: epoch lines not yet written, and when lines were last written."""

    held: list[str] = field(default_factory=list)
    written_at: float = 0.0
    epochs_seen: bool = False  # the first epoch's line is written at once: training has started


def _line(event: str, fields: dict[str, Any]) -> str:
    return json.dumps({"time": round(time.time(), 3), "event": event, **fields}) + "\n"


def _write(run: RunContext, log: EventLog, lines: list[str]) -> None:
    with open(run.path(FILE), "a", encoding="utf-8") as stream:
        stream.write("".join(lines))
    log.held = []
    log.written_at = time.monotonic()


def _append(run: RunContext, event: str, **fields: Any) -> None:
    """Write the held epoch lines, then this event's line."""
    log = run.plugin_state(EventLog)
    _write(run, log, [*log.held, _line(event, fields)])


@hookimpl
def before_pipeline(run: RunContext) -> None:
    _append(run, "pipeline_start", pipeline=run.config.name, resumed=run.resuming)


@hookimpl
def before_stage(run: RunContext, stage: str) -> None:
    _append(run, "stage_start", stage=stage)


@hookimpl
def after_stage(run: RunContext, stage: str) -> None:
    _append(run, "stage_end", stage=stage)


@hookimpl
def on_stage_error(run: RunContext, stage: str, error: BaseException) -> None:
    _append(run, "stage_error", stage=stage, error=f"{type(error).__name__}: {error}")


@hookimpl
def on_pipeline_error(run: RunContext, error: BaseException) -> None:
    where = run.failure.as_status() if run.failure else {"error": f"{type(error).__name__}: {error}"}
    _append(run, "pipeline_error", **where)


@hookimpl
def on_epoch_end(run: RunContext, epoch: int, metrics: dict[str, float]) -> None:
    log = run.plugin_state(EventLog)
    log.held.append(_line("epoch", metrics))
    if not log.epochs_seen or time.monotonic() - log.written_at >= EPOCH_FLUSH_SECONDS:
        log.epochs_seen = True
        _write(run, log, log.held)


@hookimpl
def after_pipeline(run: RunContext) -> None:
    _append(run, "pipeline_end", metrics={split: scalars(values) for split, values in run.metrics.items()})
