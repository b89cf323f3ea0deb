"""Data-parallel speed-up on the MNIST-size workload: `pipelines/mnist.toml`'s train stage in one
process against 2 processes (`--nproc-per-node 2`, DDP with gloo on this machine's CPU), same global
batch of 32, in one run. Epoch seconds come from each run's history.csv; the first epoch is a warm-up.

    python benchmarks/mnist_ddp.py [--epochs 3] [--processes 2] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from mnist_train import mnist_root  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def epoch_seconds(root: Path, out: Path, epochs: int, processes: int, batch_size: int) -> list[float]:
    command = [
        str(Path(sys.executable).parent / "pipeline"), "run", str(ROOT / "pipelines" / "mnist.toml"), "--out", str(out), "-q",
        f'--set=data.root="{root.resolve()}"', f"--set=train.epochs={epochs}", f"--set=train.batch_size={batch_size}",
        '--set=pipeline.stages=["load_data", "build_model", "train"]',
    ]
    if processes > 1:
        command += ["--set=train.strategy=ddp", f"--nproc-per-node={processes}"]
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
    with open(out / "history.csv") as stream:
        return [float(row["seconds"]) for row in csv.DictReader(stream)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32, help="global batch (the tutorial's is 32)")
    parser.add_argument("--root", type=Path, default=ROOT / "data")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = mnist_root(args.root, Path(scratch) / "mnist")
        single = epoch_seconds(root, Path(scratch) / "single", args.epochs, 1, args.batch_size)
        parallel = epoch_seconds(root, Path(scratch) / "ddp", args.epochs, args.processes, args.batch_size)
    one, many = statistics.median(single[1:] or single), statistics.median(parallel[1:] or parallel)
    print(f"global batch {args.batch_size}: seconds per epoch (median after the first): 1 process {one:.2f}, {args.processes} processes {many:.2f}")
    print(f"speed-up with {args.processes} processes: {one / many:.2f}×")


if __name__ == "__main__":
    main()
