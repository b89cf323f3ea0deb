"""The small CNN of ``pipelines/mnist_cnn.toml``: the pipeline's train stage against a plain PyTorch
loop, per epoch, in one run.

Both train the same network (conv 32 → conv 64, 3×3, BatchNorm, ReLU, 2×2 max pooling, dropout 0.25;
a 128-unit hidden layer with dropout 0.5; 10 outputs) with Adam (lr 0.001), cross-entropy, batch 128,
on the same 60,000 MNIST-size images held in memory as one uint8 tensor: the plain loop shuffles it,
slices batches, scales and normalizes each batch, and steps, with torch's default threads and no
per-step host sync. The pipeline's figure is the ``seconds`` of its epoch in ``history.csv`` (its
training-accuracy bookkeeping included). Rounds alternate the two, the first is a warm-up, and the
medians are compared; the goal is at most 1.1× the plain loop. Uses real MNIST from
``data/MNIST/raw`` when it is there, else MNIST-format files of real size (the timing depends on the
sizes, not the pixels).

``--images N`` trains on N generated images per epoch instead (a shorter run when the machine is
busy: the comparison is per epoch, and the pipeline's fixed cost per epoch weighs more on a short one).

    python benchmarks/cnn_train.py [--rounds 4] [--images 60000] [--root data] [--set train.KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_core.pipeline.runner import load_pipeline, run_pipeline  # noqa: E402
from pipeline_core.training.threads import DEFAULT_THREADS  # noqa: E402
from pipeline_core_plugins.datasets.idx import write_mnist  # noqa: E402

from mnist_train import mnist_root  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MEAN, STD, BATCH = 0.1307, 0.3081, 128


def plain_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10),
    )


def generated(folder: Path, count: int) -> Path:
    """MNIST-format files of ``count`` random training images (and 1,000 test images) in ``folder``."""
    generator = np.random.default_rng(0)

    def split(rows: int) -> tuple[np.ndarray, np.ndarray]:
        return generator.integers(0, 256, (rows, 28, 28), dtype=np.uint8), generator.integers(0, 10, rows, dtype=np.uint8)

    print(f"data: {count:,} random 28×28 uint8 training images in MNIST's format (--images), written by this script")
    write_mnist(folder, split(count), split(1000))
    return folder


def load_images(root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision import datasets

    train = datasets.MNIST(str(root), train=True, download=False)
    return train.data.unsqueeze(1), train.targets.to(torch.int64)


def plain_epoch(images: torch.Tensor, labels: torch.Tensor, seed: int) -> float:
    """Seconds of one epoch of the plain loop (model and optimizer made before the clock starts)."""
    torch.manual_seed(seed)
    model, generator = plain_model(), torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    model.train()
    started = time.perf_counter()
    order = torch.randperm(len(images), generator=generator)
    total = torch.zeros(())
    for start in range(0, len(images), BATCH):
        rows = order[start : start + BATCH]
        inputs = (images[rows].float() / 255 - MEAN) / STD
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(inputs), labels[rows])
        loss.backward()
        optimizer.step()
        total += loss.detach()
    float(total)  # one host sync at the end, as a loop that reports the epoch's loss needs
    return time.perf_counter() - started


def pipeline_epoch(root: Path, overrides: list[str]) -> tuple[float, int]:
    """Seconds of one epoch of ``pipelines/mnist_cnn.toml``'s train stage on all 60,000 images, and its threads."""
    settings = (f'data.root="{root.resolve()}"', "data.val_size=0", "train.epochs=1", f"train.batch_size={BATCH}",
                'pipeline.stages=["load_data", "build_model", "train"]', *overrides)
    config, host = load_pipeline(ROOT / "pipelines" / "mnist_cnn.toml", settings)
    with tempfile.TemporaryDirectory() as out:
        run = run_pipeline(config, host, out=Path(out) / "run", quiet=True)
    return run.history[0]["seconds"], run.threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="rounds of one plain epoch and one pipeline epoch; the first is a warm-up")
    parser.add_argument("--images", type=int, default=60_000, help="training images per epoch; fewer than 60,000 are generated")
    parser.add_argument("--root", type=Path, default=ROOT / "data")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="an override for the pipeline (e.g. model.channels_last=true)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        root = mnist_root(args.root, Path(scratch)) if args.images == 60_000 else generated(Path(scratch), args.images)
        images, labels = load_images(root)
        plain, pipeline = [], []
        for round_number in range(args.rounds):
            torch.set_num_threads(DEFAULT_THREADS)  # the plain loop runs with torch's default
            plain_seconds = plain_epoch(images, labels, seed=round_number)
            pipeline_seconds, threads = pipeline_epoch(root, args.overrides)
            label = "warm-up" if round_number == 0 else f"round {round_number}"
            print(f"{label:>8}: plain {plain_seconds:.2f} s ({DEFAULT_THREADS} threads), pipeline {pipeline_seconds:.2f} s ({threads} threads)", flush=True)
            if round_number:
                plain.append(plain_seconds)
                pipeline.append(pipeline_seconds)

    plain_median, pipeline_median = statistics.median(plain), statistics.median(pipeline)
    print(f"median seconds per epoch ({-(-len(images) // BATCH)} steps of {BATCH}): plain {plain_median:.2f}, pipeline {pipeline_median:.2f}")
    print(f"ratio pipeline/plain per epoch: {pipeline_median / plain_median:.3f} (goal: at most 1.1)")


if __name__ == "__main__":
    main()
