"""A lifecycle plugin: how long each stage took, in ``stage_seconds.json`` of the run folder."""

from __future__ import annotations

import time

from pipeline_core import RunContext, hookimpl

KEY = "pipeline_handmade.timing"  # this plugin's per-run state lives in run.state[KEY]


@hookimpl
def before_stage(run: RunContext, stage: str) -> None:
    run.state.setdefault(KEY, {"started": {}, "seconds": {}})["started"][stage] = time.perf_counter()


@hookimpl
def after_stage(run: RunContext, stage: str) -> None:
    state = run.state[KEY]
    state["seconds"][stage] = round(time.perf_counter() - state["started"][stage], 4)
    run.write_json("stage_seconds.json", state["seconds"])
