"""MNIST: the pipeline's train stage against the tutorial's plain loop, per epoch, in one run.

Same model (784-512-256-10 sigmoid, log_softmax), optimizer (SGD 0.01, momentum 0.5), batch size 32
and step count (1,875 per epoch on 60,000 images). Uses real MNIST from ``data/MNIST/raw`` when it
is there; otherwise it writes MNIST-format files of real size (60,000 + 10,000 random 28×28 images)
to a temporary folder and says so: the timing depends on the sizes, not on the pixels.

    python benchmarks/mnist_train.py [--rounds 8] [--root data]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import tutorial_mnist  # noqa: E402

from pipeline_core.pipeline.runner import load_pipeline, run_pipeline  # noqa: E402
from pipeline_core_plugins.datasets.idx import write_mnist  # noqa: E402
from pipeline_core_plugins.datasets.mnist import FILES  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def real_mnist(root: Path) -> bool:
    raw = root / "MNIST" / "raw"
    return all((raw / name).exists() or (raw / f"{name}.gz").exists() for name in FILES)


def mnist_root(root: Path, scratch: Path) -> Path:
    """``root`` when it holds real MNIST, else MNIST-format files of real size written to ``scratch``
    (the timings depend on the sizes, not on the pixels); says which."""
    if real_mnist(root):
        print(f"data: real MNIST from {root / 'MNIST' / 'raw'}")
        return root
    print("data: real MNIST is not available here (no internet); measured on MNIST-format files of real "
          "size (60,000 + 10,000 random 28×28 uint8 images) written by this script")
    return synthetic_mnist(scratch)


def synthetic_mnist(folder: Path) -> Path:
    generator = np.random.default_rng(0)

    def split(count: int) -> tuple[np.ndarray, np.ndarray]:
        return generator.integers(0, 256, (count, 28, 28), dtype=np.uint8), generator.integers(0, 10, count, dtype=np.uint8)

    write_mnist(folder, split(60000), split(10000))
    return folder


def pipeline_epoch(root: Path) -> tuple[float, int]:
    """Seconds of one epoch of ``pipelines/mnist.toml``'s train stage, and the thread count it chose."""
    overrides = (f'data.root="{root.resolve()}"', "train.epochs=1", 'pipeline.stages=["load_data", "build_model", "train"]')
    config, host = load_pipeline(ROOT / "pipelines" / "mnist.toml", overrides)
    with tempfile.TemporaryDirectory() as out:
        run = run_pipeline(config, host, out=Path(out) / "run", quiet=True)
    return run.history[0]["seconds"], run.threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8, help="rounds of one tutorial epoch and one pipeline epoch; the first is a warm-up")
    parser.add_argument("--root", type=Path, default=ROOT / "data")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        root = mnist_root(args.root, Path(scratch))
        default_threads = torch.get_num_threads()
        tutorial, pipeline = [], []
        for round_number in range(args.rounds):
            torch.set_num_threads(default_threads)  # the tutorial runs with torch's default
            tutorial_seconds = tutorial_mnist.train_epochs(root, 1, seed=round_number)[0]
            pipeline_seconds, threads = pipeline_epoch(root)
            label = "warm-up" if round_number == 0 else f"round {round_number}"
            print(f"{label:>8}: tutorial {tutorial_seconds:.2f} s, pipeline {pipeline_seconds:.2f} s (threads {threads})", flush=True)
            if round_number:
                tutorial.append(tutorial_seconds)
                pipeline.append(pipeline_seconds)

    tutorial_median, pipeline_median = statistics.median(tutorial), statistics.median(pipeline)
    print(f"median seconds per epoch (1,875 steps): tutorial {tutorial_median:.2f}, pipeline {pipeline_median:.2f}")
    print(f"ratio pipeline/tutorial per MNIST epoch: {pipeline_median / tutorial_median:.3f}")


if __name__ == "__main__":
    main()
