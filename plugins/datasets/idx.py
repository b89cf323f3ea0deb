"""Writing MNIST's IDX format, for turning your own 28×28 images (or test data) into files that
torchvision's ``datasets.MNIST`` and ``FashionMNIST`` — and so the ``mnist`` and ``fashion_mnist``
datasets — read."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

UBYTE = 0x08


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: magic (0, 0, type, rank), big-endian sizes, the data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, UBYTE, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_mnist(
    root: Path, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], gzipped: bool = False, dataset: str = "MNIST"
) -> Path:
    """Write images (N×28×28 uint8) and labels (N uint8) as ``<root>/<dataset>/raw/*-idx?-ubyte[.gz]``
    (``dataset``: ``MNIST``, or ``FashionMNIST`` for Fashion-MNIST, which has the same files)."""
    raw = Path(root) / dataset / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    files = {
        "train-images-idx3-ubyte": train[0], "train-labels-idx1-ubyte": train[1],
        "t10k-images-idx3-ubyte": test[0], "t10k-labels-idx1-ubyte": test[1],
    }
    for name, array in files.items():
        data = idx_bytes(array)
        if gzipped:
            (raw / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (raw / name).write_bytes(data)
    return raw
