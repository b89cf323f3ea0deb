"""The MNIST MLP training loop exactly as the tutorial wrote it: torchvision's MNIST with
``transforms.ToTensor()`` (every image decoded through PIL on every epoch), a DataLoader with batch 32
and shuffling, 784-512-256-10 sigmoid + log_softmax, SGD lr 0.01 momentum 0.5, CrossEntropyLoss, a
per-step ``.item()``. Used as the baseline in ``mnist_train.py``."""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision import datasets, transforms


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(28 * 28, 512)
        self.fc2 = nn.Linear(512, 256)
        self.fc3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(-1, 28 * 28)
        x = torch.sigmoid(self.fc1(x))
        x = torch.sigmoid(self.fc2(x))
        return F.log_softmax(self.fc3(x), dim=1)


def train_epochs(root: Path, epochs: int = 1, seed: int = 0) -> list[float]:
    """Seconds per training epoch of the tutorial's loop (data loading included, as in the tutorial)."""
    torch.manual_seed(seed)
    train_dataset = datasets.MNIST(root=str(root), train=True, download=False, transform=transforms.ToTensor())
    train_loader = torch.utils.data.DataLoader(dataset=train_dataset, batch_size=32, shuffle=True)
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
    criterion = nn.CrossEntropyLoss()
    seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        model.train()
        for batch_idx, (image, label) in enumerate(train_loader):
            optimizer.zero_grad()
            output = model(image)
            loss = criterion(output, label)
            loss.backward()
            optimizer.step()
            if batch_idx % 200 == 0:
                _ = loss.item()
            _ = loss.item()
        seconds.append(time.perf_counter() - started)
    return seconds
