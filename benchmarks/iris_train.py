"""Iris: the pipeline against the tutorial's plain loop, side by side in one run on one machine.

For each seed it runs the tutorial loop (``tutorial_iris.py``) and ``pipelines/iris.toml`` (same
model, optimizer, batch size, epochs and step count) and prints test accuracy and training-loop
seconds for both, then the means and the ratio pipeline/tutorial. With ``--processes`` it also times
whole processes: ``pipeline run pipelines/iris.toml`` against ``python benchmarks/tutorial_iris.py``.

    python benchmarks/iris_train.py [--seeds 5] [--processes]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import tutorial_iris  # noqa: E402

from pipeline_core.runner import load_pipeline, run_pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "pipelines" / "iris.toml"


def pipeline_run(seed: int, out: Path) -> tuple[float, float]:
    config, host = load_pipeline(PIPELINE, (f"pipeline.seed={seed}", 'pipeline.stages=["load_data", "build_model", "train", "evaluate"]'))
    run = run_pipeline(config, host, out=out, quiet=True)
    return run.metrics["test"]["accuracy"], sum(row["seconds"] for row in run.history)


def whole_process(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--processes", action="store_true", help="also time whole processes")
    args = parser.parse_args()

    default_threads = torch.get_num_threads()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(args.seeds):
            torch.set_num_threads(default_threads)  # the tutorial runs with torch's default
            tutorial_accuracy, tutorial_seconds = tutorial_iris.run(seed)
            pipeline_accuracy, pipeline_seconds = pipeline_run(seed, Path(folder) / f"seed{seed}")
            rows.append((seed, tutorial_accuracy, tutorial_seconds, pipeline_accuracy, pipeline_seconds))
            print(f"seed {seed}: tutorial acc {tutorial_accuracy:.4f} loop {tutorial_seconds:.2f}s | "
                  f"pipeline acc {pipeline_accuracy:.4f} train {pipeline_seconds:.2f}s", flush=True)

    mean = lambda index: statistics.mean(row[index] for row in rows)  # noqa: E731
    print()
    print(f"{'':24}{'tutorial':>12}{'pipeline':>12}")
    print(f"{'mean test accuracy':24}{mean(1):>12.4f}{mean(3):>12.4f}")
    print(f"{'mean training seconds':24}{mean(2):>12.3f}{mean(4):>12.3f}")
    print(f"ratio pipeline/tutorial (training loop): {mean(4) / mean(2):.3f}")

    if args.processes:
        tutorial = whole_process([sys.executable, "benchmarks/tutorial_iris.py"])
        pipeline = whole_process([str(Path(sys.executable).parent / "pipeline"), "run", "pipelines/iris.toml", "--quiet", "--out", tempfile.mkdtemp()])
        print(f"whole process: tutorial {tutorial:.2f}s, `pipeline run pipelines/iris.toml` {pipeline:.2f}s "
              f"(ratio {pipeline / tutorial:.2f}; the pipeline also exports and checks two formats)")


if __name__ == "__main__":
    main()
