"""The moons sweep written as a plain Optuna script: the search space, sampler and pruner of
``pipelines/moons_sweep.toml`` (TPE with its seed and 8 random trials, constant liar; the median pruner
after 5 trials and 20 epochs; a value reported every 10 epochs), the same data and splits, the same
MLP with the same initial weights, trained full batch on rows shuffled as the pipeline shuffles them
with fused SGD and BCEWithLogits, scored on validation accuracy, in memory, writing no file: the same
trials as the pipeline's sweep, pruned at the same epochs, so the two differ only in what they cost.
``benchmarks/sweep.py`` measures the pipeline's sweep against it in epochs trained per second of
wall time.

    python benchmarks/optuna_moons.py [--trials 30] [--seed 0] [--storage sqlite:///study.db | journal:study.log]

Prints one JSON line: trials by state, epochs trained, the best validation accuracy, seconds, and
each trial's value (to check that the pipeline ran the same trials).
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
    """make_moons(1000, noise 0.03, random_state 42) split as the pipeline splits it: 20% test drawn
    with the run's seed, then a quarter of the rest (20% of all) for validation with the seed + 1."""
    x, y = make_moons(n_samples=1000, noise=0.03, random_state=42)
    x, y = x.astype(np.float32), y
    rest, test = train_test_split(np.arange(len(x)), test_size=0.2, random_state=seed)
    train, validation = train_test_split(rest, test_size=0.25, random_state=seed + 1)
    as_tensors = lambda rows: (torch.from_numpy(x[rows]), torch.as_tensor(y[rows], dtype=torch.float32).view(-1, 1))  # noqa: E731
    return {"train": as_tensors(train), "validation": as_tensors(validation), "test": as_tensors(test)}


class Standardized(nn.Module):
    """``(x - mean) / std`` of the training inputs in front of the network, as the pipeline's data does."""

    def __init__(self, network: nn.Module, inputs: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", inputs.mean(0))
        self.register_buffer("std", inputs.std(0))
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network((x - self.mean) / self.std)


def network(hidden: list[int], seed: int = 0) -> nn.Module:
    """The MLP as the pipeline builds it: its layers drawn in order right after the run's seed is set."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    width = 2
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    return nn.Sequential(*layers, nn.Linear(width, 1))


def storage(url: str | None) -> optuna.storages.BaseStorage | None:
    """In memory (``None``), a journal file (``journal:PATH``), or the RDB at ``url``; a SQLite file in write-ahead-log mode with normal
    syncing, as the pipeline's sweep opens its own (without it a commit costs about ten times more)."""
    if url is None:
        return None
    if url.startswith("journal:"):
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(url[len("journal:"):]))
    rdb = optuna.storages.RDBStorage(url)
    if url.startswith("sqlite"):
        import sqlalchemy

        @sqlalchemy.event.listens_for(rdb.engine, "connect")
        def _pragmas(connection: object, _: object) -> None:
            cursor = connection.cursor()  # type: ignore[attr-defined]
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        rdb.engine.dispose()
    return rdb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0, help="the TPE sampler's seed (sweep.sampler.seed)")
    parser.add_argument("--storage", default=None, help="an Optuna storage (default: in memory): sqlite:///study.db, journal:study.log, "
                        "to see what a durable study costs on its own")
    args = parser.parse_args()
    started = time.perf_counter()
    data = splits()
    x_train, y_train = data["train"]
    x_val, y_val = data["validation"]
    epochs_trained = 0

    def accuracy(model: nn.Module) -> float:
        model.eval()
        with torch.no_grad():
            value = float(((model(x_val) > 0).float() == y_val).float().mean())  # in float32, as the pipeline's metric
        model.train()
        return value

    def objective(trial: optuna.Trial) -> float:
        nonlocal epochs_trained
        lr = trial.suggest_float("train.optimizer.lr", 1e-3, 1.0, log=True)
        momentum = trial.suggest_float("train.optimizer.momentum", 0.0, 0.95)
        hidden = HIDDEN[trial.suggest_categorical("model.hidden_sizes", list(HIDDEN))]
        standardize = trial.suggest_categorical("data.standardize", [True, False])
        epochs = trial.suggest_int("train.epochs", 100, 500, step=50)
        model = network(hidden)
        model = Standardized(model, x_train) if standardize else model
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, fused=True)  # as the pipeline builds it
        loss_fn = nn.BCEWithLogitsLoss()
        shuffle = torch.Generator().manual_seed(0)  # the rows in a new order each epoch, as the pipeline's loop takes them
        for epoch in range(1, epochs + 1):
            order = torch.randperm(len(x_train), generator=shuffle)
            loss = loss_fn(model(x_train[order]), y_train[order])
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
    sampler = optuna.samplers.TPESampler(seed=args.seed, n_startup_trials=8, multivariate=False, constant_liar=True)  # as [sweep] builds it
    study = optuna.create_study(storage=storage(args.storage), direction="maximize", sampler=sampler, pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=20))
    study.optimize(objective, n_trials=args.trials)
    states = [trial.state.name.lower() for trial in study.trials]
    print(json.dumps({
        "complete": states.count("complete"), "pruned": states.count("pruned"), "epochs": epochs_trained,
        "best": study.best_value, "seconds": time.perf_counter() - started,
        "values": [trial.value for trial in study.trials]
    }))


if __name__ == "__main__":
    main()
