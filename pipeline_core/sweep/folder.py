"""A sweep's folder, next to the pipeline's runs: ``<artifacts>/<pipeline>/sweeps/<study>/``.

Optuna-free, so ``pipeline runs`` lists sweeps from ``sweep.json`` without importing it::

    study.log       the study (Optuna's journal file: one fsynced append per write), unless --storage
                    names another; a folder begun by an earlier version keeps its SQLite study.db
    sweep.json      the study, its objective, trial counts, the best trial and its test metrics
    best.toml       the best trial's pipeline, without [sweep]: `pipeline run best.toml`
    report.html     optimization history, parameter importances, parallel coordinates, the trials
    plots/*.png     the report's figures
    trials/0007/    trial 7's run folder (config.toml, history.csv, metrics.json, report.html, ...)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pipeline_core.errors import ConfigError

SWEEPS = "sweeps"
_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class SweepFolder:
    """The files of one study's sweep folder, by name."""

    root: Path

    STUDY_LOG = "study.log"  # a new sweep's study: Optuna's journal file
    STUDY_DB = "study.db"  # a sweep begun on SQLite (earlier versions' default): continued on it
    RECORD = "sweep.json"
    BEST_PIPELINE = "best.toml"
    REPORT = "report.html"
    PLOTS = "plots"
    TRIALS = "trials"

    @classmethod
    def of(cls, artifacts_root: Path, pipeline: str, study: str) -> SweepFolder:
        if not _STUDY_NAME.match(study):
            raise ConfigError(f"study name {study!r}: a study name is letters, digits, '_', '.' and '-' (it names a folder); choose one with --study NAME")
        return cls(artifacts_root / pipeline / SWEEPS / study)

    def trial_dir(self, number: int) -> Path:
        """Trial ``number``'s run folder: the trial number and the folder name each give the other."""
        return self.root / self.TRIALS / f"{number:04d}"

    @property
    def record(self) -> Path:
        return self.root / self.RECORD

    def trial_folders(self) -> list[Path]:
        folder = self.root / self.TRIALS
        return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def sweep_folders(artifacts_root: Path, pipeline: str | None = None) -> list[SweepFolder]:
    """Every sweep folder under ``artifacts_root`` (of ``pipeline``), oldest study name first."""
    names = [pipeline] if pipeline else sorted(p.name for p in artifacts_root.iterdir() if p.is_dir()) if artifacts_root.is_dir() else []
    found = []
    for name in names:
        sweeps = artifacts_root / name / SWEEPS
        if sweeps.is_dir():
            found += [SweepFolder(p) for p in sorted(sweeps.iterdir()) if (p / SweepFolder.RECORD).is_file()]
    return found
