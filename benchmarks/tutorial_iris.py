"""The Iris MLP exactly as the tutorial wrote it: DataLoader(batch_size=4, shuffle=True), a per-step
``.item()``, SGD lr 0.001, 200 epochs, a 25% test split, no feature scaling. Used as the baseline the
pipeline is measured against; run it alone with ``python benchmarks/tutorial_iris.py [SEED]``."""

from __future__ import annotations

import sys
import time

import torch
import torch.nn as nn
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer0 = nn.Linear(4, 128)
        self.layer1 = nn.Linear(128, 64)
        self.layer2 = nn.Linear(64, 32)
        self.layer3 = nn.Linear(32, 16)
        self.layer4 = nn.Linear(16, 3)
        self.bn0 = nn.BatchNorm1d(128)
        self.bn1 = nn.BatchNorm1d(64)
        self.bn2 = nn.BatchNorm1d(32)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn0(self.layer0(x)))
        x = self.act(self.bn1(self.layer1(x)))
        x = self.act(self.bn2(self.layer2(x)))
        x = self.act(self.layer3(x))
        return self.layer4(x)


def run(seed: int, epochs: int = 200) -> tuple[float, float]:
    """Test accuracy (eval mode) and seconds spent in the training loop."""
    torch.manual_seed(seed)
    dataset = load_iris()
    X_train, X_test, y_train, y_test = train_test_split(dataset.data, dataset.target, test_size=0.25, random_state=seed)
    X_train = torch.from_numpy(X_train).float()
    y_train = torch.from_numpy(y_train).long()
    X_test = torch.from_numpy(X_test).float()
    y_test = torch.from_numpy(y_test).long()
    train_loader = DataLoader(TensorDataset(X_train, y_train), batch_size=4, shuffle=True)
    net = Net()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.001)
    criterion = nn.CrossEntropyLoss()

    started = time.perf_counter()
    for _epoch in range(epochs):
        epoch_loss = 0.0
        epoch_accuracy = 0
        for X, y in train_loader:
            optimizer.zero_grad()
            output = net(X)
            loss = criterion(output, y)
            loss.backward()
            optimizer.step()
            _, predicted = torch.max(output, dim=1)
            epoch_accuracy += (predicted == y).sum().item()
            epoch_loss += loss.item()
    seconds = time.perf_counter() - started

    net.eval()
    with torch.no_grad():
        predicted = net(X_test).argmax(dim=1)
    return float((predicted == y_test).float().mean()), seconds


if __name__ == "__main__":
    accuracy, seconds = run(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(f"test accuracy {accuracy:.4f}  training loop {seconds:.2f} s")
