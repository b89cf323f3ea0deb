"""Issue 35's goals for the full-batch small models, each measured side by side in one run:

1. the train stage's marginal cost per epoch against the hand-written loop's
   (``benchmarks/tutorial_small.py``: same data, model, optimizer, loss and thread count), from runs
   of ``--short`` and ``--long`` epochs so that start-up cancels out (goal ≤ 1.15×);
2. the train stage's fixed cost, its time before the first step (stage start to the first epoch's
   start, read from the run's events) against the loop's from its imports done to its first step
   (goal: within 0.3 s), and both intercepts of the time-per-epochs line;
3. the whole ``pipeline run pipelines/moons.toml`` (exports, checks, report, bundle) against the
   whole hand-written script's process, reported (no goal).

Every measurement is a fresh process; the rounds alternate loop and pipeline so the machine's load
falls on both alike. The sweep's goal (epochs per second against plain Optuna) is part of
``benchmarks/sweep.py``.

    python benchmarks/small_models.py [--rounds 4] [--short 200] [--long 4000] [--only moons,spirals,regression] [--skip-whole]
                                      [--threads N]

``--threads N`` gives both sides N threads (the regression net otherwise gets torch's default, two on
this machine, where a second process's load moved its figures by 3x from round to round).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOOP = Path(__file__).resolve().parent / "tutorial_small.py"
#: threads as the train stage chooses them for these models (one for a step below its small-step
#: work, torch's default otherwise); the loop is given the same count
THREADS = {"moons": 1, "spirals": 1, "regression": 0}
TRAIN_ONLY = 'pipeline.stages=["load_data", "build_model", "train"]'


def load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def _run(command: list[str]) -> str:
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return result.stdout


@dataclass
class Timing:
    total: float  # seconds from imports done (loop) or stage start (pipeline) to the last epoch's end
    before_first_step: float


def loop(workload: str, epochs: int) -> Timing:
    threads = THREADS[workload]
    record = json.loads(_run([sys.executable, str(LOOP), workload, str(epochs), "--threads", str(threads)]).strip().splitlines()[-1])
    return Timing(record["setup"] + record["train"], record["setup"])


def pipeline(workload: str, epochs: int, scratch: Path) -> Timing:
    """The train stage's seconds from its start to the last epoch's end and to the first epoch's start."""
    run_dir = scratch / f"{workload}-{epochs}-{time.monotonic_ns()}"
    overrides = [f"train.epochs={epochs}", TRAIN_ONLY]
    if THREADS[workload]:
        overrides.append(f"pipeline.threads={THREADS[workload]}")
    _run([sys.executable, "-m", "pipeline_core", "run", f"pipelines/{workload}.toml", "--out", str(run_dir), "--quiet",
          *(f"--set={item}" for item in overrides)])
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    start = next(e["time"] for e in events if e["event"] == "stage_start" and e["stage"] == "train")
    epochs_seen = [e for e in events if e["event"] == "epoch"]
    if len(epochs_seen) != epochs:
        sys.exit(f"{run_dir}: {len(epochs_seen)} epoch events for {epochs} epochs")
    first, last = epochs_seen[0], epochs_seen[-1]
    return Timing(last["time"] - start, first["time"] - first["seconds"] - start)


def per_epoch(workload: str, rounds: int, short: int, long: int, scratch: Path) -> None:
    print(f"\n{workload}: {short} and {long} epochs, {rounds} rounds, loop and pipeline alternating ({load()})", flush=True)
    print(f"   {'round':>5}  {'loop ms/epoch':>13}  {'pipeline ms/epoch':>17}  {'ratio':>6}  {'loop fixed s':>12}  {'pipeline fixed s':>16}"
          f"  {'loop to 1st step s':>18}  {'pipeline to 1st step s':>22}")
    ratios, fixed_gaps, first_gaps = [], [], []
    for number in range(rounds):
        a_short, p_short = loop(workload, short), pipeline(workload, short, scratch)
        a_long, p_long = loop(workload, long), pipeline(workload, long, scratch)
        a_marginal = (a_long.total - a_short.total) / (long - short)
        p_marginal = (p_long.total - p_short.total) / (long - short)
        a_fixed, p_fixed = a_short.total - a_marginal * short, p_short.total - p_marginal * short
        a_first = statistics.mean((a_short.before_first_step, a_long.before_first_step))
        p_first = statistics.mean((p_short.before_first_step, p_long.before_first_step))
        ratios.append(p_marginal / a_marginal)
        fixed_gaps.append(p_fixed - a_fixed)
        first_gaps.append(p_first - a_first)
        print(f"   {number + 1:>5}  {a_marginal * 1e3:>13.3f}  {p_marginal * 1e3:>17.3f}  {ratios[-1]:>6.2f}  {a_fixed:>12.3f}  {p_fixed:>16.3f}"
              f"  {a_first:>18.3f}  {p_first:>22.3f}", flush=True)
    print(f"   {workload}: per-epoch ratio median {statistics.median(ratios):.2f} (range {min(ratios):.2f}–{max(ratios):.2f}; goal ≤ 1.15); "
          f"time to the first step, pipeline minus loop: median {statistics.median(first_gaps):+.3f} s (goal ≤ +0.3 s); "
          f"intercepts, pipeline minus loop: median {statistics.median(fixed_gaps):+.3f} s  ({load()})")


def whole_moons(rounds: int, scratch: Path) -> None:
    print(f"\n3. whole process: pipeline run pipelines/moons.toml (1000 epochs, exports, report) against "
          f"tutorial_small.py moons 1000 ({load()})", flush=True)
    loop_seconds, pipeline_seconds = [], []
    for number in range(rounds):
        started = time.perf_counter()
        _run([sys.executable, str(LOOP), "moons", "1000", "--threads", "1"])
        loop_seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        _run([sys.executable, "-m", "pipeline_core", "run", "pipelines/moons.toml", "--out", str(scratch / f"whole{number}"), "--quiet"])
        pipeline_seconds.append(time.perf_counter() - started)
        print(f"   round {number + 1}: loop script {loop_seconds[-1]:.2f} s, pipeline {pipeline_seconds[-1]:.2f} s", flush=True)
    loop_median, pipeline_median = statistics.median(loop_seconds), statistics.median(pipeline_seconds)
    print(f"   median: loop script {loop_median:.2f} s, pipeline {pipeline_median:.2f} s, ratio {pipeline_median / loop_median:.2f} ({load()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--short", type=int, default=200)
    parser.add_argument("--long", type=int, default=4000)
    parser.add_argument("--only", default="moons,spirals,regression")
    parser.add_argument("--skip-whole", action="store_true", help="leave out part 3")
    parser.add_argument("--threads", type=int, default=0, help="threads for both sides (0: as the train stage chooses)")
    args = parser.parse_args()
    if args.threads:
        THREADS.update(dict.fromkeys(THREADS, args.threads))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {load()}")
    with tempfile.TemporaryDirectory() as folder:
        for workload in [name.strip() for name in args.only.split(",") if name.strip()]:
            per_epoch(workload, args.rounds, args.short, args.long, Path(folder))
        if not args.skip_whole:
            whole_moons(max(1, args.rounds // 2), Path(folder))


if __name__ == "__main__":
    main()
