"""An image folder through the pipeline's streaming path against torchvision's ImageFolder + DataLoader.

Same folder, transforms (resize, horizontal flip), worker processes and batch size, in one run:

1. decoding only: one shuffled epoch of uint8 batches, images/s (goal: the pipeline not slower);
2. the train stage's epoch (``load = "stream"``, a small CNN, Adam) against a plain PyTorch loop
   over ImageFolder + DataLoader with the same model, optimizer and batches, seconds per epoch.

Rounds alternate the two sides; medians are reported. Without ``--root`` (a folder with ``train/`` and
``test/`` class folders) it writes JPEG files (noise over a class colour) to a temporary folder.

    python benchmarks/image_folder.py [--images 3000] [--size 96] [--workers 2] [--batch-size 64] [--rounds 3] [--root DIR]
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
from PIL import Image

from pipeline_core.pipeline.runner import load_pipeline, run_pipeline

ROOT = Path(__file__).resolve().parent.parent
RESIZE = 64

PIPELINE = """
[pipeline]
name = "image_folder_benchmark"
seed = 0
stages = ["load_data", "build_model", "train"]

[data]
name = "image_folder"
root = "{root}"
mode = "rgb"
layout = "splits"
load = "stream"
workers = {workers}
transforms = [{{ name = "resize", size = [{resize}, {resize}] }}, "horizontal_flip"]

[model]
name = "cnn"
channels = [16, 32]
global_pool = "avg"

[train]
epochs = 1
batch_size = {batch_size}
checkpoint_seconds = 3600

[train.optimizer]
name = "adam"
lr = 0.001

[train.loss]
name = "cross_entropy"
"""


def write_folder(folder: Path, images: int, size: int, classes: int = 5) -> Path:
    """``folder/train/<class>/`` with ``images`` JPEG files and ``folder/test/<class>/`` with a tenth as many."""
    generator = np.random.default_rng(0)
    for split, count in (("train", images), ("test", max(classes, images // 10))):
        for index in range(count):
            label = index % classes
            pixels = generator.integers(0, 80, (size, size, 3), dtype=np.uint8)
            pixels[..., label % 3] += 120
            path = folder / split / f"class{label}" / f"{index:05d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(path, quality=90)
    return folder


def pipeline_file(folder: Path, root: Path, workers: int, batch_size: int) -> Path:
    path = folder / "pipeline.toml"
    path.write_text(PIPELINE.format(root=root, workers=workers, batch_size=batch_size, resize=RESIZE), encoding="utf-8")
    return path


def torchvision_loader(root: Path, workers: int, batch_size: int, seed: int) -> torch.utils.data.DataLoader:
    """ImageFolder as torchvision's tutorials use it, with the same transforms and uint8 output."""
    from torchvision import datasets
    from torchvision.transforms import v2

    transform = v2.Compose([v2.PILToTensor(), v2.Resize([RESIZE, RESIZE], antialias=True), v2.RandomHorizontalFlip()])
    folder = datasets.ImageFolder(str(root / "train"), transform=transform)
    return torch.utils.data.DataLoader(
        folder, batch_size=batch_size, shuffle=True, num_workers=workers, generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
    )


def decode_torchvision(root: Path, workers: int, batch_size: int, seed: int) -> tuple[int, float]:
    started = time.perf_counter()
    images = sum(len(inputs) for inputs, _ in torchvision_loader(root, workers, batch_size, seed))
    return images, time.perf_counter() - started


def decode_pipeline(path: Path, seed: int) -> tuple[int, float]:
    """One shuffled epoch of the train split's batches as the trainer draws them (scan excluded)."""
    from pipeline_core.training.feeds import StreamFeed

    config, host = load_pipeline(path, ('pipeline.stages=["load_data"]',))
    with tempfile.TemporaryDirectory() as out:
        run = run_pipeline(config, host, out=Path(out) / "run", quiet=True)
    split = run.data.splits["train"]
    feed = StreamFeed(split, torch.device("cpu"), seed)
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    size = config.train.batch_size
    spans = [(start, min(start + size, len(split))) for start in range(0, len(split), size)]
    started = time.perf_counter()
    images = sum(len(inputs) for inputs in feed.batches(order, spans, 1))
    seconds = time.perf_counter() - started
    feed.close()
    return images, seconds


def train_pipeline(path: Path) -> tuple[float, int]:
    config, host = load_pipeline(path)
    with tempfile.TemporaryDirectory() as out:
        run = run_pipeline(config, host, out=Path(out) / "run", quiet=True)
    return run.history[0]["seconds"], run.threads or 0


def train_plain(path: Path, root: Path, workers: int, batch_size: int, threads: int, seed: int) -> float:
    """The same model (built by the same factory, behind the same scaling) trained one epoch by a
    plain loop over ImageFolder + DataLoader."""
    from collections import OrderedDict

    from torch import nn

    config, host = load_pipeline(path, ('pipeline.stages=["load_data"]',))
    with tempfile.TemporaryDirectory() as out:
        data = run_pipeline(config, host, out=Path(out) / "run", quiet=True).data
    torch.manual_seed(seed)
    network = host.registry.get("model", "cnn").factory(data.spec, **config.model.options)
    model = nn.Sequential(OrderedDict(preprocess=data.preprocess, network=network))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    loss_fn = nn.CrossEntropyLoss()
    torch.set_num_threads(threads)
    started = time.perf_counter()
    model.train()
    for inputs, targets in torchvision_loader(root, workers, batch_size, seed):
        optimizer.zero_grad()
        loss_fn(model(inputs), targets).backward()
        optimizer.step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--size", type=int, default=96, help="side of the generated images, before the resize to 64")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--root", type=Path, help="a folder with train/<class>/ and test/<class>/ to use instead of a generated one")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        root = args.root.resolve() if args.root else write_folder(folder / "images", args.images, args.size)
        if not args.root:
            print(f"data: {args.images} generated {args.size}×{args.size} JPEG files in 5 classes, resized to {RESIZE}×{RESIZE}")
        path = pipeline_file(folder, root, args.workers, args.batch_size)
        print(f"workers {args.workers}, batch size {args.batch_size}, {args.rounds} rounds (medians); the machine's load: "
              f"{' '.join(open('/proc/loadavg').read().split()[:3]) if Path('/proc/loadavg').exists() else 'unknown'}", flush=True)
        decode = {"pipeline": [], "torchvision": []}
        train = {"pipeline": [], "plain": []}
        for round_number in range(args.rounds):
            images, seconds = decode_pipeline(path, round_number)
            decode["pipeline"].append(images / seconds)
            images_tv, seconds_tv = decode_torchvision(root, args.workers, args.batch_size, round_number)
            decode["torchvision"].append(images_tv / seconds_tv)
            pipeline_seconds, threads = train_pipeline(path)
            plain_seconds = train_plain(path, root, args.workers, args.batch_size, threads, round_number)
            train["pipeline"].append(pipeline_seconds)
            train["plain"].append(plain_seconds)
            print(f"round {round_number + 1}: decode {images / seconds:,.0f} images/s (pipeline, {images} images) vs "
                  f"{images_tv / seconds_tv:,.0f} (torchvision ImageFolder, {images_tv}); train epoch {pipeline_seconds:.2f} s "
                  f"(pipeline, threads {threads}) vs {plain_seconds:.2f} s (plain loop)", flush=True)

    pipeline_rate, torchvision_rate = statistics.median(decode["pipeline"]), statistics.median(decode["torchvision"])
    pipeline_epoch, plain_epoch = statistics.median(train["pipeline"]), statistics.median(train["plain"])
    print(f"decoding, images/s: pipeline {pipeline_rate:,.0f}, torchvision ImageFolder + DataLoader {torchvision_rate:,.0f}; "
          f"ratio pipeline/torchvision {pipeline_rate / torchvision_rate:.2f} (goal ≥ 1)")
    print(f"train epoch, seconds: pipeline {pipeline_epoch:.2f}, plain loop {plain_epoch:.2f}; ratio pipeline/plain {pipeline_epoch / plain_epoch:.2f}")


if __name__ == "__main__":
    sys.exit(main())
