"""A lifecycle plugin: how long each stage took, in ``stage_seconds.json`` of the run folder."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pipeline_core import RunContext, hookimpl


@dataclass
class StageTimes:
    """This plugin's per-run state: one instance per run, from ``run.plugin_state(StageTimes)``."""

    started: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


@hookimpl
def before_stage(run: RunContext, stage: str) -> None:
    run.plugin_state(StageTimes).started[stage] = time.perf_counter()


@hookimpl
def after_stage(run: RunContext, stage: str) -> None:
    times = run.plugin_state(StageTimes)
    times.seconds[stage] = round(time.perf_counter() - times.started[stage], 4)
    run.write_json("stage_seconds.json", times.seconds)
