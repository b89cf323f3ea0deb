"""``pipeline runs`` and ``pipeline compare``: past runs in the artifacts folder, side by side."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pipeline_core.errors import ConfigError
from pipeline_core.run.artifacts import DEFAULT_ROOT, RunFiles, read_json
from pipeline_core.run.results import scalars_by_split
from pipeline_core.sweep.folder import SweepFolder, sweep_folders

if TYPE_CHECKING:  # rich is imported by the commands that print, so `pipeline --help` does not pay for it
    from rich.table import Table

HEADLINE = ("accuracy", "f1", "loss", "mse", "r2")


def _config(folder: Path) -> dict[str, Any]:
    """The run's resolved configuration; a damaged file is named, not a traceback."""
    path = folder / RunFiles.CONFIG
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{path} cannot be read as TOML ({error}); is the run folder damaged?") from None


def _run_folders(root: Path, name: str | None) -> list[Path]:
    pipelines = [root / name] if name else sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return [
        run for folder in pipelines if folder.is_dir()
        for run in sorted(folder.iterdir()) if run.is_dir() and not run.is_symlink() and (run / RunFiles.CONFIG).exists()
    ]


@click.command()
@click.argument("name", required=False)
@click.option("--artifacts", "root", type=click.Path(path_type=Path, file_okay=False), default=DEFAULT_ROOT, show_default=True)
def runs(name: str | None, root: Path) -> None:
    """List past runs and sweeps (of pipeline NAME) with their status and test metrics."""
    from rich.console import Console

    folders, sweeps = _run_folders(root, name), sweep_folders(root, name)
    if not folders and not sweeps:
        raise ConfigError(f"no runs{f' of {name!r}' if name else ''} under {root}")
    console = Console(width=max(120, Console().width))
    if folders:
        console.print(_runs_table(folders, root))
    if sweeps:
        console.print(_sweeps_table(sweeps, root))


def _runs_table(folders: list[Path], root: Path) -> Table:
    from rich.table import Table

    table = Table("run", "status", "test metrics", "seed", title=f"runs in {root}")
    for folder in folders:
        status = read_json(folder / RunFiles.STATUS).get("status", "unknown")
        test = scalars_by_split(read_json(folder / RunFiles.METRICS)).get("test", {})
        shown = "  ".join(f"{k} {test[k]:.4f}" for k in HEADLINE if k in test)
        try:
            seed = _config(folder).get("pipeline", {}).get("seed", "")
        except ConfigError:
            status, seed = f"{status} (config.toml unreadable)", ""
        table.add_row(str(folder.relative_to(root)), status, shown, str(seed))
    return table


def _sweeps_table(sweeps: list[SweepFolder], root: Path) -> Table:
    """Each sweep from its sweep.json: trials by state, the best trial and its test metrics."""
    from rich.table import Table

    table = Table("sweep", "state", "trials", "objective", "best trial", "its test metrics", title=f"sweeps in {root}")
    for sweep in sweeps:
        record = read_json(sweep.record)
        counts = record.get("trials", {})
        trials = ", ".join(f"{counts[state]} {label}" for state, label in (("complete", "complete"), ("pruned", "pruned"), ("fail", "failed")) if counts.get(state))
        best = record.get("best") or {}
        test = scalars_by_split({"test": best.get("test") or {}})["test"]
        shown = "  ".join(f"{k} {test[k]:.4f}" for k in HEADLINE if k in test)
        value = f"{best['trial']}: {best['value']:.4f}" if "trial" in best else "—"
        table.add_row(
            str(sweep.root.relative_to(root)), str(record.get("state", "unknown")), trials or "none",
            f"{record.get('objective', '?')} ({record.get('direction', '?')})", value, shown,
        )
    return table


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            flat.update(_flatten(value, path))
        else:
            flat[path] = value
    return flat


@click.command()
@click.argument("first", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.argument("second", type=click.Path(path_type=Path, file_okay=False, exists=True))
def compare(first: Path, second: Path) -> None:
    """Metrics and configuration differences of two run folders, side by side."""
    from rich.console import Console
    from rich.table import Table

    for folder in (first, second):
        if not (folder / RunFiles.CONFIG).is_file():
            raise ConfigError(f"{folder} is not a run folder (no {RunFiles.CONFIG})")
    console = Console(width=max(120, Console().width))
    metrics = [scalars_by_split(read_json(folder / RunFiles.METRICS)) for folder in (first, second)]
    table = Table("split", "metric", str(first), str(second), "difference", title="metrics")
    for split in sorted(set(metrics[0]) | set(metrics[1])):
        names = sorted(set(metrics[0].get(split, {})) | set(metrics[1].get(split, {})))
        for metric in names:
            a, b = metrics[0].get(split, {}).get(metric), metrics[1].get(split, {}).get(metric)
            diff = f"{b - a:+.4f}" if a is not None and b is not None else ""
            table.add_row(split, metric, "" if a is None else f"{a:.4f}", "" if b is None else f"{b:.4f}", diff)
    console.print(table)
    configs = [_flatten(_config(folder)) for folder in (first, second)]
    changed = sorted(key for key in set(configs[0]) | set(configs[1]) if configs[0].get(key) != configs[1].get(key))
    if not changed:
        console.print("configuration: identical")
        return
    table = Table("key", str(first), str(second), title="configuration differences")
    for key in changed:
        table.add_row(key, repr(configs[0].get(key, "—")), repr(configs[1].get(key, "—")))
    console.print(table)


COMMANDS = [runs, compare]
