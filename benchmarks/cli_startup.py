"""Issue 19, goal 2: ``pipeline --help``, ``pipeline plugins`` and ``pipeline validate pipelines/iris.toml``
answer within 0.5 s, whole process, cold.

Each command is run ``--runs`` times as a fresh process of the installed console script (interpreter
start, imports, the command, exit), and the median wall time is printed against the goal with the
machine's load. ``validate`` is measured twice: with an empty model-check cache folder each time (it
runs the model check, importing torch) and with a warm one (the check answered from the cache,
pipeline_core.model.check_cache). Every run must exit 0; its output is not shown.

Python's bytecode cache is used as on any installation: ``PYTHONDONTWRITEBYTECODE`` (which some sandboxes
and CI machines set) is removed for these processes, and every command runs once untimed first, which
writes the ``__pycache__`` files of an editable install (with the variable set, each process recompiles
the project's modules from source: about 0.1 s more per command, measured on this machine).

    python benchmarks/cli_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = Path(sys.executable).with_name("pipeline")
GOAL_S = 0.5


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} / {five:.2f} (1 / 5 min) on {os.cpu_count()} cores"


def timed(args: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one whole process; a failing command stops the benchmark with its output."""
    start = time.perf_counter()
    result = subprocess.run([str(PIPELINE), *args], cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"pipeline {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return elapsed


def measure(label: str, args: list[str], runs: int, cache: str | None) -> None:
    """The median of ``runs`` processes after one untimed run; ``cache``: ``"warm"`` (one model-check
    cache folder, filled by the untimed run) or else a new empty folder each run."""
    with tempfile.TemporaryDirectory(prefix="pipeline-cache-") as scratch:
        env = {**os.environ}
        env.pop("PIPELINE_CORE_NO_CACHE", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PIPELINE_CORE_CACHE_DIR"] = os.path.join(scratch, "first")
        timed(args, env)  # writes the bytecode cache (and, for "warm", fills the model-check cache); not timed
        times = []
        for run in range(runs):
            if cache != "warm":
                env["PIPELINE_CORE_CACHE_DIR"] = os.path.join(scratch, str(run))
            times.append(timed(args, env))
    median = statistics.median(times)
    verdict = "meets" if median <= GOAL_S else "misses"
    spread = ", ".join(f"{t:.2f}" for t in times)
    print(f"   {label:<52} median {median:5.2f} s  ({verdict} the {GOAL_S} s goal; runs {spread})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="whole-process runs per command (median)")
    runs = parser.parse_args().runs
    print(f"   pipeline commands, whole processes, median of {runs} ({load()} before)", flush=True)
    measure("pipeline --help", ["--help"], runs, None)
    measure("pipeline plugins", ["plugins"], runs, None)
    measure("pipeline validate pipelines/iris.toml (cache empty)", ["validate", "pipelines/iris.toml"], runs, "cold")
    measure("pipeline validate pipelines/iris.toml (cache warm)", ["validate", "pipelines/iris.toml"], runs, "warm")
    print(f"   ({load()} after)")


if __name__ == "__main__":
    main()
