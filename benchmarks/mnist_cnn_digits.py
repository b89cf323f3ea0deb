"""``pipelines/mnist_cnn.toml``'s test accuracy on MNIST-format images made from scikit-learn's real
8×8 handwritten digits (``tests/digit_images.py``). This is NOT real MNIST: these machines have no
internet and no installed package ships MNIST, so the figure says that the pipeline learns
handwritten digits at MNIST's size and scale, not what it scores on MNIST.

The digits are 1,797 glyphs, each drawn many times at other positions, contrasts and noise. By
default the test images come from a fifth of the glyphs that no training image uses (digits the
model has never seen); ``--shared`` draws both from all of them, as the tests do, and the test split
then holds other renderings of training glyphs. Runs the pipeline as shipped (8 epochs, batch 128,
5,000 validation images) without its export stage, which does not change the accuracy.

    python benchmarks/mnist_cnn_digits.py [--train 60000] [--test 10000] [--shared] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from pipeline_core.pipeline.runner import load_pipeline, run_pipeline  # noqa: E402

from digit_images import write_digit_mnist  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=60_000, help="training images (MNIST has 60,000)")
    parser.add_argument("--test", type=int, default=10_000, help="test images (MNIST has 10,000)")
    parser.add_argument("--shared", action="store_true", help="draw test images from the training images' glyphs too")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="an override for the pipeline")
    args = parser.parse_args()

    one, five, _ = os.getloadavg()
    print(f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "digits"
        write_digit_mnist(root, train=args.train, test=args.test, disjoint=not args.shared)
        settings = (f'data.root="{root}"', 'pipeline.stages=["load_data", "build_model", "train", "evaluate"]', *args.overrides)
        config, host = load_pipeline(ROOT / "pipelines" / "mnist_cnn.toml", settings)
        started = time.perf_counter()
        run = run_pipeline(config, host, out=Path(scratch) / "run", quiet=True)
        seconds = time.perf_counter() - started
    glyphs = "the training images' glyphs too (--shared)" if args.shared else "glyphs no training image uses"
    print(f"{args.train:,} training images ({config.data.options.get('val_size', 0):,} of them for validation), {args.test:,} test images from {glyphs}")
    last = run.history[-1]
    print(f"{len(run.history)} epochs, {sum(row['seconds'] for row in run.history) / len(run.history):.1f} s each; whole run {seconds:.0f} s")
    print(f"validation accuracy after the last epoch: {last.get('val_accuracy', float('nan')):.4f}")
    print(f"test accuracy: {run.metrics['test']['accuracy']:.4f} (not real MNIST; the pipeline's comment expects 99% there)")
    one, five, _ = os.getloadavg()
    print(f"load average {one:.2f} (1 min), {five:.2f} (5 min)")


if __name__ == "__main__":
    main()
