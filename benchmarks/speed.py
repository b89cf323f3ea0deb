"""Issue 19's goals in one run, each measured side by side with its baseline on this machine:

1. the whole ``pipeline run pipelines/iris.toml`` process (three formats exported and checked, plots,
   report, bundle) against the tutorial's own script (``benchmarks/tutorial_iris.py``), alternating,
   median of ``--rounds`` (goal ≤ 0.9×), with where the pipeline's time went (startup, each stage, exit);
2. ``pipeline --help``, ``pipeline validate pipelines/iris.toml`` and ``pipeline plugins`` as whole
   cold processes (``benchmarks/cli_startup.py``; goal ≤ 0.5 s each);
3. one MNIST (784-512-256-10) epoch of the train stage against the tutorial's DataLoader loop
   (``benchmarks/mnist_train.py``'s rounds; goal ≤ 0.4×).

    python benchmarks/speed.py [--rounds 5] [--mnist-rounds 4] [--skip cli,mnist]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = Path(__file__).resolve().parent
PIPELINE = Path(sys.executable).with_name("pipeline")


def load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def timed(command: list[str]) -> float:
    """Wall seconds of one whole process, start to exit; a failure stops the benchmark."""
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return seconds


def pipeline_phases(run_dir: Path, started: float, ended: float) -> dict[str, float]:
    """Seconds from the process's start to the first event, in each stage, between stages, and from the
    last event to the process's exit, read from the run's events.jsonl (wall-clock times)."""
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    events = [event for event in events if event["event"] in ("pipeline_start", "stage_start", "stage_end", "pipeline_end")]
    phases = {"startup": events[0]["time"] - started}
    opened: dict[str, float] = {}
    between = 0.0
    previous = events[0]["time"]
    for event in events[1:]:
        if event["event"] == "stage_start":
            between += event["time"] - previous
            opened[event["stage"]] = event["time"]
        elif event["event"] == "stage_end":
            phases[event["stage"]] = event["time"] - opened[event["stage"]]
        previous = event["time"]
    phases["hooks between stages"] = between + events[-1]["time"] - previous
    phases["exit"] = ended - events[-1]["time"]
    return phases


def whole_iris(rounds: int) -> None:
    print(f"\n1. whole process: pipeline run pipelines/iris.toml against benchmarks/tutorial_iris.py ({load()})")
    tutorial, pipeline, phases = [], [], []
    with tempfile.TemporaryDirectory() as scratch:
        for number in range(rounds):
            tutorial.append(timed([sys.executable, str(BENCHMARKS / "tutorial_iris.py"), "0"]))
            run_dir = Path(scratch) / f"run{number}"
            started = time.time()
            pipeline.append(timed([str(PIPELINE), "run", "pipelines/iris.toml", "--out", str(run_dir), "--quiet"]))
            phases.append(pipeline_phases(run_dir, started, time.time()))
            print(f"   round {number + 1}: tutorial {tutorial[-1]:.2f} s, pipeline {pipeline[-1]:.2f} s", flush=True)
    tutorial_median, pipeline_median = statistics.median(tutorial), statistics.median(pipeline)
    print("   pipeline's time, median per phase: " + ", ".join(
        f"{name} {statistics.median(p[name] for p in phases):.2f} s" for name in phases[0]))
    print(f"   median: tutorial {tutorial_median:.2f} s, pipeline {pipeline_median:.2f} s")
    print(f"   ratio pipeline/tutorial, whole process: {pipeline_median / tutorial_median:.3f}  (goal <= 0.9)  {load()}")


def cli_commands(rounds: int) -> None:
    print(f"\n2. CLI commands, whole cold processes ({load()})", flush=True)
    script = BENCHMARKS / "cli_startup.py"
    if not script.exists():
        print(f"   {script.name} is missing: not measured")
        return
    subprocess.run([sys.executable, str(script), "--runs", str(rounds)], cwd=ROOT, check=True)


def mnist_epoch(rounds: int) -> None:
    print(f"\n3. MNIST epoch: the train stage against the tutorial's DataLoader loop ({load()})", flush=True)
    subprocess.run([sys.executable, str(BENCHMARKS / "mnist_train.py"), "--rounds", str(rounds)], cwd=ROOT, check=True)
    print("   (goal: ratio <= 0.4)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="whole-process rounds of the iris comparison and runs per CLI command")
    parser.add_argument("--mnist-rounds", type=int, default=4, help="MNIST rounds (the first is a warm-up)")
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out: iris, cli, mnist")
    args = parser.parse_args()
    skip = {part.strip() for part in args.skip.split(",") if part.strip()}
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {load()}")
    if "iris" not in skip:
        whole_iris(args.rounds)
    if "cli" not in skip:
        cli_commands(args.rounds)
    if "mnist" not in skip:
        mnist_epoch(args.mnist_rounds)


if __name__ == "__main__":
    main()
