"""``events.jsonl``: one JSON line per event (stage start and end, every epoch's row, the end of the
run, or where and why it failed), appended as it happens, so a run can be followed (``tail -f``) or read while it is running.
The final per-epoch table is ``history.csv``."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from pipeline_core import hookimpl, scalars

if TYPE_CHECKING:
    from pipeline_core import RunContext

FILE = "events.jsonl"


def _append(run: RunContext, event: str, **fields: Any) -> None:
    record = {"time": round(time.time(), 3), "event": event, **fields}
    with open(run.path(FILE), "a", encoding="utf-8") as stream:
        stream.write(json.dumps(record) + "\n")


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
    _append(run, "epoch", **metrics)


@hookimpl
def after_pipeline(run: RunContext) -> None:
    _append(run, "pipeline_end", metrics={split: scalars(values) for split, values in run.metrics.items()})
