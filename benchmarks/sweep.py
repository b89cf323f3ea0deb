"""The moons sweep (pipelines/moons_sweep.toml) against its goals, side by side in one run.

    python benchmarks/sweep.py [--seeds 0,1,2] [--trials 30] [--jobs-trials 16] [--skip-jobs | --only-jobs | --only-optuna]

1. Quality: the best trial's test accuracy (scored once, after selection on the validation split)
   within ``--trials`` trials; goal ≥ 0.97.
2. Pruning: the same sweep (same sampler seed) with the median pruner and with ``pruner = "none"``:
   epochs trained in all, and the best trial's objective (validation) and test accuracy; goal: at
   least 40% fewer epochs at an equal best (the same objective and test accuracy).
3. Parallel workers: ``--jobs 2`` against ``--jobs 1`` on the same sweep without pruning and with a
   random sampler, so both draw from one distribution of trials: trials per minute of the whole
   command and of its trial phase (first trial started to last trial finished), and epochs per
   second. ``--jobs 1`` runs with torch's default threads (its own choice) and again on one thread
   (``--jobs 2`` gives each worker one core), so the figure says what the second process gives and
   what the thread count gives. The machine's load average is printed: this project's machine has 2
   cores, shared with other work.

4. Against plain Optuna: the same sweep (median pruner, TPE seed) and ``benchmarks/optuna_moons.py``,
   the same search, data, model and loop as a plain Optuna script writing no file, alternating, in
   epochs trained per second of wall time (whole processes, and the trial phase alone); goal ≥ 0.8×.
   Both draw the same trials, get the same values and prune at the same epochs (checked and printed),
   so the ratio is what the pipeline's bookkeeping costs. The plain script also runs on Optuna's
   journal file, like the sweep's own study, and on a SQLite study (write-ahead log, as the sweep's
   with ``--storage sqlite:///``): what a durable, shared study costs by itself.

   A third measurement bounds what leaner trials could give: the same sweep with no report at its end
   and the built-in per-run plugins (events log, run report, progress display, MLflow tracker)
   blocked in every trial (``PIPELINE_CORE_BLOCK_PLUGINS``), its "floor". It is an experiment, not
   a way to run a sweep: the report is switched off by replacing its writer in that process.

Every sweep runs as ``pipeline sweep`` does (a subprocess, its own study in a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna

from pipeline_core.sweep.folder import SweepFolder
from pipeline_core.sweep.storage import folder_url, plain_storage

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "pipelines" / "moons_sweep.toml"
COMMAND = [sys.executable, "-m", "pipeline_core", "sweep", str(PIPELINE)]
#: The floor experiment: ``pipeline sweep`` in a process whose sweep report is not written.
WITHOUT_REPORT = [sys.executable, "-c", "import sys; import pipeline_core.sweep.report as report; report.write = lambda *a, **k: None; "
                  "from pipeline_core.cli import main; sys.argv[0] = 'pipeline'; main()", "sweep", str(PIPELINE)]
#: The built-in plugins a trial could do without: what the floor experiment blocks.
PER_RUN_PLUGINS = "plugins.trackers.jsonl,plugins.report,plugins.progress,plugins.trackers.mlflow"


def sweep(
    artifacts: Path, study: str, trials: int, jobs: int = 1, overrides: tuple[str, ...] = (), threads: int | None = None,
    floor: bool = False,
) -> dict[str, Any]:
    """Run one sweep; its sweep.json, wall seconds and trial phase (seconds from the first trial's start to the last one's end).
    ``floor``: without its report and with :data:`PER_RUN_PLUGINS` blocked (the floor experiment)."""
    started = time.perf_counter()
    command = [*(WITHOUT_REPORT if floor else COMMAND), "--artifacts", str(artifacts), "--study", study, "--trials", str(trials), "--jobs", str(jobs)]
    environment = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {}), **({"PIPELINE_CORE_BLOCK_PLUGINS": PER_RUN_PLUGINS} if floor else {})}
    result = subprocess.run([*command, *(f"--set={item}" for item in overrides)], capture_output=True, text=True, env=environment)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    folder = artifacts / "moons_sweep" / "sweeps" / study
    record = json.loads((folder / "sweep.json").read_text())
    frozen = optuna.load_study(study_name=study, storage=plain_storage(folder_url(SweepFolder(folder)))).trials  # study.log, or study.db
    phase = (max(t.datetime_complete for t in frozen) - min(t.datetime_start for t in frozen)).total_seconds()
    return {**record, "seconds": seconds, "phase": phase, "values": [trial.value for trial in frozen]}


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def quality_and_pruning(artifacts: Path, seeds: list[int], trials: int) -> None:
    print(f"\n1-2. moons sweep, {trials} trials, TPE seeded; median pruner against none ({load()})")
    print(f"{'seed':>4}  {'pruner':<6}  {'complete':>8}  {'pruned':>6}  {'epochs':>6}  {'best objective':>20}  {'best test acc':>13}  {'seconds':>7}")
    for seed in seeds:
        seeded = (f"sweep.sampler.seed={seed}",)
        pruned = sweep(artifacts, f"pruned_{seed}", trials, overrides=seeded)
        full = sweep(artifacts, f"full_{seed}", trials, overrides=(*seeded, 'sweep.pruner="none"'))
        for label, record in (("median", pruned), ("none", full)):
            counts, best = record["trials"], record["best"]
            print(
                f"{seed:>4}  {label:<6}  {counts['complete']:>8}  {counts['pruned']:>6}  {record['epochs']:>6}  "
                f"{record['objective'] + ' ' + format(best['value'], '.6f'):>20}  {best['test']['accuracy']:>13.4f}  {record['seconds']:>7.1f}"
            )
        saved = 1 - pruned["epochs"] / full["epochs"]
        equal = pruned["best"]["value"] == full["best"]["value"] and pruned["best"]["test"]["accuracy"] == full["best"]["test"]["accuracy"]
        reached = min(pruned["best"]["test"]["accuracy"], full["best"]["test"]["accuracy"]) >= 0.97
        print(
            f"      seed {seed}: pruning saved {saved:.1%} of the epochs (goal ≥ 40%: {'met' if saved >= 0.4 else 'MISSED'}); "
            f"best trial {'equal' if equal else 'DIFFERENT'} (objective and test accuracy); ≥ 0.97 within {trials} trials: {'met' if reached else 'MISSED'}"
        )


def workers(artifacts: Path, trials: int) -> None:
    print(f"\n3. --jobs 2 against --jobs 1, {trials} trials each, random sampler, no pruner")
    fixed = ('sweep.pruner="none"', 'sweep.sampler={name="random", seed=0}')
    print(f"   before: {load()}")
    print(f"{'jobs':>4}  {'threads':>14}  {'trials':>6}  {'epochs':>6}  {'command s':>9}  {'trials/min':>10}  {'phase s':>7}  "
          f"{'trials/min (phase)':>18}  {'epochs/s':>8}")
    rates = {}
    # one worker with torch's threads (what --jobs 1 does), one worker on one thread, two workers (one thread each)
    for label, jobs, threads in (("1 (default)", 1, None), ("1 (1 thread)", 1, 1), ("2", 2, None)):
        record = sweep(artifacts, f"jobs_{jobs}_{threads}", trials, jobs=jobs, overrides=fixed, threads=threads)
        finished = record["trials"]["complete"]
        rates[label] = (finished / record["seconds"] * 60, finished / record["phase"] * 60, record["epochs"] / record["phase"])
        shown = "torch's default" if jobs == 1 and threads is None else "1 per worker"
        print(
            f"{jobs:>4}  {shown:>14}  {finished:>6}  {record['epochs']:>6}  {record['seconds']:>9.1f}  {rates[label][0]:>10.2f}  "
            f"{record['phase']:>7.1f}  {rates[label][1]:>18.2f}  {rates[label][2]:>8.0f}"
        )
    print(f"   after: {load()}")
    for base in ("1 (default)", "1 (1 thread)"):
        print(
            f"   --jobs 2 / --jobs {base}: {rates['2'][0] / rates[base][0]:.2f}x trials per minute (whole command), "
            f"{rates['2'][1] / rates[base][1]:.2f}x (trial phase), {rates['2'][2] / rates[base][2]:.2f}x epochs per second"
        )


def against_optuna(artifacts: Path, seeds: list[int], trials: int) -> None:
    # One thread on both sides: these models' steps are near the size where torch's second thread starts
    # to pay, and on a loaded 2-core machine two threads per process ran either side up to 10x slower.
    print(f"\n4. epochs trained per second: pipeline sweep against a plain Optuna script, {trials} trials, median pruner, "
          f"OMP_NUM_THREADS=1 on both ({load()})")
    print(f"{'seed':>4}  {'script':<23}  {'complete':>8}  {'pruned':>6}  {'epochs':>6}  {'seconds':>7}  {'epochs/s':>8}  "
          f"{'trial phase s':>13}  {'epochs/s (phase)':>16}")
    ratios: dict[str, list[float]] = {f"{name}{phase}": [] for name in ("memory", "sqlite", "journal", "floor") for phase in ("", " phase")}
    for seed in seeds:
        runs = {
            "memory": plain(seed, trials), "sqlite": plain(seed, trials, f"sqlite:///{artifacts / f'plain_{seed}.db'}"),
            "journal": plain(seed, trials, f"journal:{artifacts / f'plain_{seed}.log'}"),
        }
        piped = sweep(artifacts, f"optuna_{seed}", trials, overrides=(f"sweep.sampler.seed={seed}",), threads=1)
        floor = sweep(artifacts, f"floor_{seed}", trials, overrides=(f"sweep.sampler.seed={seed}",), threads=1, floor=True)
        for label, counts, epochs, seconds, phase in (
            ("plain optuna, memory", runs["memory"], runs["memory"]["epochs"], runs["memory"]["wall"], runs["memory"]["seconds"]),
            ("plain optuna, sqlite", runs["sqlite"], runs["sqlite"]["epochs"], runs["sqlite"]["wall"], runs["sqlite"]["seconds"]),
            ("plain optuna, journal", runs["journal"], runs["journal"]["epochs"], runs["journal"]["wall"], runs["journal"]["seconds"]),
            (f"pipeline ({piped['storage'].split(':')[0]})", piped["trials"], piped["epochs"], piped["seconds"], piped["phase"]),
            ("floor: no report, lean", floor["trials"], floor["epochs"], floor["seconds"], floor["phase"]),
        ):
            print(f"{seed:>4}  {label:<23}  {counts['complete']:>8}  {counts['pruned']:>6}  {epochs:>6}  {seconds:>7.1f}  {epochs / seconds:>8.0f}  "
                  f"{phase:>13.1f}  {epochs / phase:>16.0f}", flush=True)
        same = all(run["values"] == piped["values"] for run in (*runs.values(), floor))
        # each sweep's epochs per second over the plain script's: whole processes, and the trial phase alone
        for name, run, swept in (*((name, run, piped) for name, run in runs.items()), ("floor", runs["memory"], floor)):
            ratios[name].append(run["wall"] / swept["seconds"] * swept["epochs"] / run["epochs"])
            ratios[f"{name} phase"].append(run["seconds"] / swept["phase"] * swept["epochs"] / run["epochs"])
        print(f"      seed {seed}: pipeline / plain in memory {ratios['memory'][-1]:.2f} (whole processes), {ratios['memory phase'][-1]:.2f} "
              f"(trial phase), goal ≥ 0.8; pipeline / plain on a journal file {ratios['journal'][-1]:.2f}, {ratios['journal phase'][-1]:.2f}; "
              f"pipeline / plain on SQLite {ratios['sqlite'][-1]:.2f}, {ratios['sqlite phase'][-1]:.2f}; "
              f"plain on SQLite / in memory {ratios['memory'][-1] / ratios['sqlite'][-1]:.2f}, on a journal file / in memory "
              f"{ratios['memory'][-1] / ratios['journal'][-1]:.2f} (whole processes); "
              f"floor (no report, lean trials) / plain in memory {ratios['floor'][-1]:.2f}, {ratios['floor phase'][-1]:.2f}; "
              f"{'the same trials in all five' if same else 'NOT the same trials (the ratios compare different work)'}")
    median = {name: sorted(values)[len(values) // 2] for name, values in ratios.items()}
    print(f"   median over seeds: pipeline / plain in memory {median['memory']:.2f} whole, {median['memory phase']:.2f} phase; "
          f"pipeline / plain on SQLite {median['sqlite']:.2f} whole, {median['sqlite phase']:.2f} phase; "
          f"pipeline / plain on a journal file {median['journal']:.2f} whole, {median['journal phase']:.2f} phase; "
          f"floor / plain in memory {median['floor']:.2f} whole, {median['floor phase']:.2f} phase  ({load()})")


def plain(seed: int, trials: int, storage: str | None = None) -> dict[str, Any]:
    """``optuna_moons.py``'s result, with its wall time as a process (``wall``)."""
    command = [sys.executable, str(ROOT / "benchmarks" / "optuna_moons.py"), "--trials", str(trials), "--seed", str(seed)]
    started = time.perf_counter()
    result = subprocess.run([*command, *(("--storage", storage) if storage else ())], capture_output=True, text=True, check=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "wall": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="TPE sampler seeds, comma-separated")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--jobs-trials", type=int, default=16, help="trials of each --jobs sweep")
    parser.add_argument("--skip-jobs", action="store_true", help="leave out part 3")
    parser.add_argument("--only-jobs", action="store_true", help="only part 3")
    parser.add_argument("--only-optuna", action="store_true", help="only part 4")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        artifacts = Path(folder)
        if not (args.only_jobs or args.only_optuna):
            quality_and_pruning(artifacts, seeds, args.trials)
        if not (args.skip_jobs or args.only_optuna):
            workers(artifacts, args.jobs_trials)
        if not args.only_jobs:
            against_optuna(artifacts, seeds, args.trials)


if __name__ == "__main__":
    main()
