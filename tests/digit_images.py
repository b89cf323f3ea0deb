"""MNIST-size, MNIST-format digit images made offline: scikit-learn's real 8×8 handwritten digits,
upscaled to 20×20, placed near the centre of a 28×28 frame, with random contrast and noise.

Models trained on these reach MNIST-like accuracy, logit magnitudes and weights, which is what the
export checks at real scale need (random pixels give near-zero logits that hide rounding problems).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits

from pipeline_core_plugins.datasets.idx import write_mnist


def digit_images(count: int, seed: int, pool: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``count`` 28×28 uint8 images and their labels (uint8), drawn from the digits numbered in
    ``pool`` (default: all 1,797)."""
    rng = np.random.default_rng(seed)
    digits = load_digits()
    picks = rng.integers(0, len(digits.images), count) if pool is None else pool[rng.integers(0, len(pool), count)]
    base = torch.tensor(digits.images[picks], dtype=torch.float32).unsqueeze(1) / 16.0
    glyphs = torch.nn.functional.interpolate(base, size=(20, 20), mode="bilinear", align_corners=False)[:, 0].numpy()
    frames = np.zeros((count, 28, 28), dtype=np.float32)
    rows, columns = rng.integers(3, 6, count), rng.integers(3, 6, count)  # centred, as MNIST centres its digits
    index = np.arange(20)
    frames[np.arange(count)[:, None, None], rows[:, None, None] + index[None, :, None], columns[:, None, None] + index[None, None, :]] = glyphs
    frames = frames * rng.uniform(0.7, 1.0, (count, 1, 1)).astype(np.float32) + rng.normal(0, 0.05, frames.shape).astype(np.float32)
    return (np.clip(frames, 0, 1) * 255).round().astype(np.uint8), digits.target[picks].astype(np.uint8)


def write_digit_mnist(root: Path, train: int = 60_000, test: int = 10_000, seed: int = 0, disjoint: bool = False) -> Path:
    """MNIST's four IDX files under ``<root>/MNIST/raw`` (what torchvision's ``datasets.MNIST`` reads).

    Both files draw from the same 1,797 digits, so a test image is often another rendering of a
    training digit; ``disjoint`` draws the test images from a fifth of the digits that no training
    image uses, so that test accuracy measures digits the model has not seen."""
    if not disjoint:
        return write_mnist(root, digit_images(train, seed), digit_images(test, seed + 1))
    order = np.random.default_rng(seed).permutation(len(load_digits().images))
    held_out = len(order) // 5
    return write_mnist(root, digit_images(train, seed, order[held_out:]), digit_images(test, seed + 1, order[:held_out]))
