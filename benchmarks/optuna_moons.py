"""The moons sweep written as a plain Optuna script: the search space, sampler and pruner of
``pipelines/moons_sweep.toml`` (TPE with its seed and 8 random trials, constant liar; the median pruner
after 5 trials and 20 epochs; a value reported every 10 epochs), the same data and splits, the same
MLP trained full batch with SGD and BCEWithLogits, scored on validation accuracy, in memory, writing
no file. ``benchmarks/sweep.py`` measures the pipeline's sweep against it in epochs trained per
second of wall time.

    python benchmarks/optuna_moons.py [--trials 30] [--seed 0]

Prints one JSON line: trials by state, epochs trained, the best validation accuracy, seconds.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import optuna
import torch
from sklearn.datasets import make_moons
from sklearn.model_selection import train_test_split
from torch import nn

HIDDEN = {"[4]": [4], "[8, 8]": [8, 8], "[16, 16]": [16, 16], "[32, 16]": [32, 16], "[16, 16, 16]": [16, 16, 16]}
REPORT_EVERY = 10


def splits(seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """make_moons(1000, noise 0.03, random_state 42): 20% test, 20% validation, the rest to train."""
    x, y = make_moons(n_samples=1000, noise=0.03, random_state=42)
    x_rest, x_test, y_rest, y_test = train_test_split(x.astype(np.float32), y, test_size=0.2, random_state=seed)
    x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=0.25, random_state=seed)
    as_tensors = lambda a, b: (torch.from_numpy(a), torch.from_numpy(b).float().view(-1, 1))  # noqa: E731
    return {"train": as_tensors(x_train, y_train), "validation": as_tensors(x_val, y_val), "test": as_tensors(x_test, y_test)}


def network(hidden: list[int], mean: torch.Tensor | None, std: torch.Tensor | None) -> nn.Module:
    layers: list[nn.Module] = []
    width = 2
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    model = nn.Sequential(*layers, nn.Linear(width, 1))
    if mean is None:
        return model

    class Standardized(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", mean)
            self.register_buffer("std", std)
            self.network = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.network((x - self.mean) / self.std)

    return Standardized()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0, help="the TPE sampler's seed (sweep.sampler.seed)")
    args = parser.parse_args()
    started = time.perf_counter()
    data = splits()
    x_train, y_train = data["train"]
    x_val, y_val = data["validation"]
    epochs_trained = 0

    def accuracy(model: nn.Module) -> float:
        model.eval()
        with torch.no_grad():
            value = float(((model(x_val) > 0).float() == y_val).float().mean())
        model.train()
        return value

    def objective(trial: optuna.Trial) -> float:
        nonlocal epochs_trained
        lr = trial.suggest_float("train.optimizer.lr", 1e-3, 1.0, log=True)
        momentum = trial.suggest_float("train.optimizer.momentum", 0.0, 0.95)
        hidden = HIDDEN[trial.suggest_categorical("model.hidden_sizes", list(HIDDEN))]
        standardize = trial.suggest_categorical("data.standardize", [True, False])
        epochs = trial.suggest_int("train.epochs", 100, 500, step=50)
        torch.manual_seed(0)
        model = network(hidden, x_train.mean(0), x_train.std(0)) if standardize else network(hidden, None, None)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
        loss_fn = nn.BCEWithLogitsLoss()
        for epoch in range(1, epochs + 1):
            loss = loss_fn(model(x_train), y_train)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            epochs_trained += 1
            if epoch % REPORT_EVERY == 0:
                trial.report(accuracy(model), epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned()
        return accuracy(model)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=args.seed, n_startup_trials=8, constant_liar=True)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=20))
    study.optimize(objective, n_trials=args.trials)
    states = [trial.state.name.lower() for trial in study.trials]
    print(json.dumps({
        "complete": states.count("complete"), "pruned": states.count("pruned"), "epochs": epochs_trained,
        "best": study.best_value, "seconds": time.perf_counter() - started,
    }))


if __name__ == "__main__":
    main()
