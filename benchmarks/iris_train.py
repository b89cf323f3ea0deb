"""Iris: the pipeline against the tutorial's plain loop and PyTorch Lightning, in one run on one machine.

For each seed it runs the tutorial loop (``tutorial_iris.py``), Lightning's Trainer on the same
module (``lightning_iris.py``, when lightning is installed: ``pip install -e '.[benchmark]'``) and
``pipelines/iris.toml`` (same model, optimizer, batch size, epochs and step count), and prints test
accuracy and training seconds for each, then the means and the ratios. With ``--processes`` it also
times whole processes: ``pipeline run pipelines/iris.toml`` against ``python benchmarks/tutorial_iris.py``.

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

from pipeline_core import hookimpl  # noqa: E402
from pipeline_core.pipeline.runner import load_pipeline, run_pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "pipelines" / "iris.toml"


class StageClock:
    """A plugin that times the train stage as a whole (its checkpoint and history writes included)."""

    def __init__(self) -> None:
        self.started = self.seconds = 0.0

    @hookimpl
    def before_stage(self, run: object, stage: str) -> None:
        if stage == "train":
            self.started = time.perf_counter()

    @hookimpl
    def after_stage(self, run: object, stage: str) -> None:
        if stage == "train":
            self.seconds = time.perf_counter() - self.started


def pipeline_run(seed: int, out: Path) -> tuple[float, float]:
    """Test accuracy and wall seconds of the train stage of ``pipelines/iris.toml``."""
    config, host = load_pipeline(PIPELINE, (f"pipeline.seed={seed}", 'pipeline.stages=["load_data", "build_model", "train", "evaluate"]'))
    clock = StageClock()
    host.manager.register(clock, name="stage-clock")
    run = run_pipeline(config, host, out=out, quiet=True)
    return run.metrics["test"]["accuracy"], clock.seconds


def whole_process(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--processes", action="store_true", help="also time whole processes")
    args = parser.parse_args()

    try:
        import lightning_iris
    except ImportError:
        lightning_iris = None
        print("lightning is not installed (pip install -e '.[benchmark]'): measuring without it")

    default_threads = torch.get_num_threads()
    results: dict[str, list[tuple[float, float]]] = {"tutorial": [], "lightning": [], "lightning-defaults": [], "pipeline": []}
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(args.seeds):
            torch.set_num_threads(default_threads)  # the tutorial and Lightning run with torch's default
            results["tutorial"].append(tutorial_iris.run(seed))
            if lightning_iris is not None:
                torch.set_num_threads(default_threads)
                results["lightning"].append(lightning_iris.run(seed, minimal=True))
                torch.set_num_threads(default_threads)
                results["lightning-defaults"].append(lightning_iris.run(seed, minimal=False))
            results["pipeline"].append(pipeline_run(seed, Path(folder) / f"seed{seed}"))
            line = " | ".join(f"{name} acc {runs[-1][0]:.4f} {runs[-1][1]:.2f}s" for name, runs in results.items() if runs)
            print(f"seed {seed}: {line}", flush=True)

    measured = {name: runs for name, runs in results.items() if runs}
    print()
    print(f"{'':24}" + "".join(f"{name:>20}" for name in measured))
    print(f"{'mean test accuracy':24}" + "".join(f"{statistics.mean(a for a, _ in runs):>20.4f}" for runs in measured.values()))
    print(f"{'mean training seconds':24}" + "".join(f"{statistics.mean(s for _, s in runs):>20.3f}" for runs in measured.values()))
    pipeline_seconds = statistics.mean(s for _, s in measured["pipeline"])
    for baseline in ("tutorial", "lightning", "lightning-defaults"):
        if baseline in measured:
            ratio = pipeline_seconds / statistics.mean(s for _, s in measured[baseline])
            print(f"ratio pipeline/{baseline} (training): {ratio:.3f}")

    if args.processes:
        tutorial = whole_process([sys.executable, "benchmarks/tutorial_iris.py"])
        pipeline = whole_process([str(Path(sys.executable).parent / "pipeline"), "run", "pipelines/iris.toml", "--quiet", "--out", tempfile.mkdtemp()])
        print(f"whole process: tutorial {tutorial:.2f}s, `pipeline run pipelines/iris.toml` {pipeline:.2f}s "
              f"(ratio {pipeline / tutorial:.2f}; the pipeline also evaluates every split and exports and checks three formats)")


if __name__ == "__main__":
    main()
