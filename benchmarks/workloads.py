"""Every tutorial workload as a pipeline, over several seeds, against the tutorial's reported number.

    python benchmarks/workloads.py [--seeds 5] [--only moons,spirals] [--mnist-root data]

Each pipeline in ``pipelines/`` runs at full length with ``pipeline.seed`` = 0 … seeds-1 (train,
evaluate; export is skipped here, it is checked by the tests). MNIST pipelines run only when the real
MNIST files are in ``<mnist-root>/MNIST/raw``; otherwise the table says that they were not measured.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from pipeline_core.pipeline.runner import load_pipeline, run_pipeline
from pipeline_core_plugins.datasets.mnist import FILES

ROOT = Path(__file__).resolve().parent.parent

#: pipeline → (tutorial's reported result, target, the figure compared)
WORKLOADS = {
    "iris": ("0.9737", "mean ≥ 0.93", "test accuracy"),
    "moons": ("0.88", "≥ 0.96", "test accuracy"),
    "spirals": ("1.00", "≥ 0.95", "test accuracy"),
    "mnist": ("90.27%", "≥ 90%", "test accuracy"),
    "mnist_small": ("95.0%", "≥ 95%", "test accuracy"),
    "mnist_relu": ("about 97%", "≥ 97%", "test accuracy"),
    "digits": ("—", "≥ 0.97", "test accuracy"),
    "regression": ("loss ≈ 5e-8", "final training loss ≤ 1e-3", "final training loss"),
}


def measure(name: str, seed: int, mnist_root: Path) -> float:
    overrides = [f"pipeline.seed={seed}", 'pipeline.stages=["load_data", "build_model", "train", "evaluate"]']
    if name.startswith("mnist"):
        overrides.append(f'data.root="{mnist_root.resolve()}"')
    config, host = load_pipeline(ROOT / "pipelines" / f"{name}.toml", tuple(overrides))
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as out:
        run = run_pipeline(config, host, out=Path(out) / "run", quiet=True)
    torch.set_num_threads(threads)
    if name == "regression":
        return run.history[-1]["train_loss"]
    return run.metrics["test"]["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated pipeline names")
    parser.add_argument("--mnist-root", type=Path, default=ROOT / "data")
    args = parser.parse_args()
    names = [n for n in WORKLOADS if not args.only or n in args.only.split(",")]
    have_mnist = all(
        (args.mnist_root / "MNIST" / "raw" / f).exists() or (args.mnist_root / "MNIST" / "raw" / f"{f}.gz").exists() for f in FILES
    )

    print("| pipeline | tutorial reported | target | measured (mean over seeds) | min … max | seconds per run |")
    print("|---|---|---|---|---|---|")
    for name in names:
        reported, target, figure = WORKLOADS[name]
        if name.startswith("mnist") and not have_mnist:
            print(f"| {name}.toml | {reported} | {target} | not measured: real MNIST is not in {args.mnist_root}/MNIST/raw | | |", flush=True)
            continue
        values, started = [], time.perf_counter()
        for seed in range(args.seeds):
            values.append(measure(name, seed, args.mnist_root))
        seconds = (time.perf_counter() - started) / args.seeds
        fmt = "{:.2e}" if name == "regression" else "{:.4f}"
        print(f"| {name}.toml | {reported} | {target} | {fmt.format(statistics.mean(values))} ({figure}, {args.seeds} seeds) | "
              f"{fmt.format(min(values))} … {fmt.format(max(values))} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
