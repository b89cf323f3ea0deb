"""The tutorials' full-batch loops for the small workloads (make_moons, CS231n spirals, the two-layer
regression net), written by hand the way a careful user would: the same data, model, optimizer and loss
as ``pipelines/<workload>.toml``, one optimizer step per epoch, each epoch's training loss (and, for
classifiers, its accuracy) kept on the device and read once at the end. It is the baseline that
``benchmarks/small_models.py`` measures the train stage against.

    python benchmarks/tutorial_small.py {moons,spirals,regression} EPOCHS [--threads N] [--seed S]

Prints one JSON line: ``setup`` (seconds from the imports done to the first step: data, model,
optimizer), ``train`` (seconds of the epochs), the last epoch's loss and accuracy.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from sklearn.datasets import make_moons
from sklearn.model_selection import train_test_split
from torch import nn


class Standardize(nn.Module):
    """The moons pipeline standardizes inside the model; so does this loop, to train the same model."""

    def __init__(self, x: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", x.mean(0))
        self.register_buffer("std", x.std(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def spiral_points(per_class: int = 100, classes: int = 3, noise: float = 0.2, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """CS231n's spirals, as the tutorial draws them."""
    generator = np.random.RandomState(seed)
    x = np.zeros((per_class * classes, 2))
    y = np.zeros(per_class * classes, dtype=np.int64)
    for arm in range(classes):
        rows = range(per_class * arm, per_class * (arm + 1))
        radius = np.linspace(0.0, 1, per_class)
        theta = np.linspace(arm * 4, (arm + 1) * 4, per_class) + generator.randn(per_class) * noise
        x[rows] = np.c_[radius * np.sin(theta), radius * np.cos(theta)]
        y[rows] = arm
    return x, y


def setup(workload: str, seed: int) -> tuple[nn.Module, torch.optim.Optimizer, nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    if workload == "moons":
        x, y = make_moons(n_samples=1000, noise=0.03, random_state=42)
        x_train, _, y_train, _ = train_test_split(x.astype(np.float32), y, test_size=0.2, random_state=seed)
        inputs, targets = torch.from_numpy(x_train), torch.from_numpy(y_train).float().view(-1, 1)
        model = nn.Sequential(Standardize(inputs), nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))
        return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), nn.BCEWithLogitsLoss(), inputs, targets
    if workload == "spirals":
        x, y = spiral_points()
        x_train, _, y_train, _ = train_test_split(x.astype(np.float32), y, test_size=0.2, random_state=seed)
        inputs, targets = torch.from_numpy(x_train), torch.from_numpy(y_train)
        model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
        return model, torch.optim.Adam(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), inputs, targets
    generator = torch.Generator().manual_seed(0)
    inputs, targets = torch.randn(64, 1000, generator=generator), torch.randn(64, 10, generator=generator)
    model = nn.Sequential(nn.Linear(1000, 100), nn.ReLU(), nn.Linear(100, 10))
    return model, torch.optim.Adam(model.parameters(), lr=1e-4), nn.MSELoss(reduction="sum"), inputs, targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=("moons", "spirals", "regression"))
    parser.add_argument("epochs", type=int)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    imported = time.perf_counter()
    model, optimizer, loss_fn, inputs, targets = setup(args.workload, args.seed)
    classifier = args.workload != "regression"
    losses, correct = [], []
    first_step = time.perf_counter()
    for _epoch in range(args.epochs):
        model.train()
        outputs = model(inputs)
        loss = loss_fn(outputs, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
        if classifier:
            predicted = (outputs.detach() > 0).float() if outputs.shape[1] == 1 else outputs.detach().argmax(1)
            correct.append((predicted == targets).sum())
    history = torch.stack(losses).tolist()  # one read of every epoch's loss, at the end
    accuracy = (torch.stack(correct).double() / len(targets)).tolist() if classifier else []
    ended = time.perf_counter()
    print(json.dumps({
        "setup": first_step - imported, "train": ended - first_step, "loss": history[-1],
        "accuracy": accuracy[-1] if accuracy else None, "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
