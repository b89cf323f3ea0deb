"""``events.jsonl``: one JSON line per event (stage start and end, every epoch's row, the end of the
run, or where and why it failed), appended as it happens, so a run can be followed (``tail -f``) or
read while it is running. The final per-epoch table is ``history.csv``.

Epoch lines are the one frequent event (a full-batch model ends an epoch every millisecond or so, and
opening the file for each line cost a quarter of such an epoch), so they are written in bunches: the
first epoch's line at once (training has started), then each line at most :data:`EPOCH_FLUSH_SECONDS`
after its epoch ended, together with those that ended since (a timer thread writes them if no other
event does first). Every other event writes the lines held before it and itself at once, so a
failure, an interrupt (SIGINT/SIGTERM) or the run's end leaves every epoch's line in the file. Only a
process killed outright (SIGKILL, power loss) loses lines: those of the epochs that ended in its last
:data:`EPOCH_FLUSH_SECONDS`, always whole lines at the end of the file. Each line keeps the time its
epoch ended. A write the timer thread could not make (a full disk) is retried with the next line, and
its error raised from the next epoch's hook, where the run reports it.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline_core import hookimpl, scalars

if TYPE_CHECKING:
    from pipeline_core import RunContext

FILE = "events.jsonl"
#: The longest an epoch's line waits before it is written: the window a SIGKILL can lose.
EPOCH_FLUSH_SECONDS = 1.0


@dataclass
class EventLog:
    """This plugin's per-run state: the epoch lines not yet written and the timer that will write them."""

    held: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    timer: threading.Timer | None = None
    epochs_seen: bool = False
    error: OSError | None = None  # what the timer thread's last write raised, for the next hook to raise


def _line(event: str, fields: dict[str, Any]) -> str:
    return json.dumps({"time": round(time.time(), 3), "event": event, **fields}) + "\n"


def _write_held(path: Path, log: EventLog, more: str = "") -> None:
    """Append the held lines and ``more`` (the caller holds the lock); a failed write keeps them held."""
    lines, log.held = [*log.held, more] if more else log.held, []
    try:
        with open(path, "a", encoding="utf-8") as stream:
            stream.write("".join(lines))
    except OSError:
        log.held = [line for line in lines if line is not more]
        raise


def _flush_later(path: Path, log: EventLog) -> None:
    """The timer thread's write."""
    with log.lock:
        log.timer = None
        try:
            _write_held(path, log)
        except OSError as error:
            log.error = error


def _append(run: RunContext, event: str, **fields: Any) -> None:
    """Write the held epoch lines, then this event's line."""
    log = run.plugin_state(EventLog)
    with log.lock:
        if log.timer is not None:
            log.timer.cancel()
            log.timer = None
        _write_held(run.path(FILE), log, _line(event, fields))


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
    line = _line("epoch", metrics)
    with log.lock:
        if log.error is not None:
            error, log.error = log.error, None
            raise error
        log.held.append(line)
        if not log.epochs_seen:
            log.epochs_seen = True
            _write_held(run.path(FILE), log)
        elif log.timer is None:
            log.timer = threading.Timer(EPOCH_FLUSH_SECONDS, _flush_later, (run.path(FILE), log))
            log.timer.daemon = True  # never keeps a finished process alive; the run's last hooks write what it holds
            log.timer.start()


@hookimpl
def after_pipeline(run: RunContext) -> None:
    _append(run, "pipeline_end", metrics={split: scalars(values) for split, values in run.metrics.items()})
