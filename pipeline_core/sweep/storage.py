"""Where a study lives: by default a journal file in the sweep folder (``study.log``, Optuna's
JournalStorage), or whatever ``--storage`` names: an RDB URL (``postgresql://``,
``mysql+pymysql://``, ``sqlite:///``) or another journal file (``journal:PATH``, for a disk several
machines share).

The journal file is the default because a study write there is one fsynced append (about 0.4 ms on
this project's machine) against a SQLite commit's 1.5–2.5 ms, and a moons sweep of 30 trials makes
about 900 of them. A sweep folder that already holds ``study.db`` (begun on SQLite, the default of
earlier versions) keeps it, so the same command continues that study where it is.

In the installed Optuna, only RDB storages keep heartbeats: a trial whose worker stops sending them
for ``grace_seconds`` is failed by the next worker that looks, and tried again. A journal file has
none, so :mod:`.study` fails the trials of this machine's dead processes itself.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError

from pipeline_core.config.sweep_section import SweepSection
from pipeline_core.errors import ConfigError
from pipeline_core.sweep.folder import SweepFolder
from pipeline_core.sweep.journal_lock import journal_storage

JOURNAL = "journal:"
OnStale = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


def storage_url(given: str | None, folder: SweepFolder) -> str:
    """The storage's URL, absolute: ``given``, or else the sweep folder's own study (:func:`folder_url`)."""
    if given is None:
        return folder_url(folder)
    if given.startswith(JOURNAL):
        path = given[len(JOURNAL):]
        path = path[2:] if path.startswith("///") else path  # journal:///abs/path as well as journal:/abs/path
        if not path:
            raise ConfigError("--storage journal:PATH needs the journal file's path, e.g. journal:/shared/sweeps/moons.log")
        return JOURNAL + str(Path(path).resolve())
    if "://" in given:
        if given.startswith("sqlite:///") and given != "sqlite:///:memory:":
            return "sqlite:///" + str(Path(given[len("sqlite:///"):]).resolve())
        return given
    raise ConfigError(
        f"--storage {given!r}: expected an RDB URL (sqlite:///path/study.db, postgresql://user@host/db, "
        "mysql+pymysql://user@host/db) or a journal file (journal:/shared/path/study.log)"
    )


def folder_url(folder: SweepFolder) -> str:
    """The study kept in the sweep folder: its SQLite file when it has one (a sweep begun by an
    earlier version, continued where it is), else its journal file. A folder with both holds two
    studies; continuing either one silently could split a sweep's trials between them, so it is
    refused, naming both."""
    database = (folder.root / SweepFolder.STUDY_DB).resolve()
    journal = (folder.root / SweepFolder.STUDY_LOG).resolve()
    if database.exists() and journal.exists():
        raise ConfigError(
            f"{folder.root} holds two studies: {SweepFolder.STUDY_DB} (SQLite, begun by an earlier version or by --storage sqlite:///) "
            f"and {SweepFolder.STUDY_LOG} (a journal file, the default now); name the one to continue with "
            f"--storage sqlite:///{database} or --storage {JOURNAL}{journal}, or move the other out of the folder"
        )
    return f"sqlite:///{database}" if database.exists() else JOURNAL + str(journal)


def display_url(url: str) -> str:
    """``url`` without its password, for run folders and messages."""
    if url.startswith(JOURNAL):
        return url
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return url


def open_storage(url: str, sweep: SweepSection, on_stale: OnStale) -> optuna.storages.BaseStorage:
    """The storage at ``url``; RDB storages keep heartbeats and call ``on_stale`` for a trial whose
    worker went silent. A URL that cannot be opened is a :class:`ConfigError` naming it."""
    try:
        if url.startswith(JOURNAL):
            path = Path(url[len(JOURNAL):])
            path.parent.mkdir(parents=True, exist_ok=True)
            return plain_storage(url)
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(
                url, engine_kwargs=_engine_options(url), heartbeat_interval=sweep.heartbeat_seconds,
                grace_period=sweep.grace_seconds, heartbeat_stale_trial_callback=on_stale,
            )
        if url.startswith("sqlite"):
            _write_ahead_log(storage.engine)
        return storage
    except (SQLAlchemyError, ImportError, OSError, ValueError) as error:
        raise ConfigError(f"--storage {display_url(url)}: cannot open the study storage: {type(error).__name__}: {error}") from None


def _engine_options(url: str) -> dict[str, Any]:
    # several worker processes share one SQLite file: wait for the lock rather than fail at once
    return {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}


def _write_ahead_log(engine: sqlalchemy.engine.Engine) -> None:
    """SQLite in write-ahead-log mode with normal syncing: readers do not block the writer, and a
    reported value costs about 1.5 ms instead of 17 (measured on this project's machine)."""

    @event.listens_for(engine, "connect")
    def _pragmas(connection: Any, _: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    engine.dispose()  # connections opened before the listener get the pragmas too


def keeps_heartbeats(storage: optuna.storages.BaseStorage) -> bool:
    return isinstance(storage, optuna.storages.RDBStorage)


def unused_heartbeat_settings(url: str, sweep: SweepSection) -> str | None:
    """A note when ``[sweep]`` changes ``heartbeat_seconds`` or ``grace_seconds`` but the study is a
    journal file, which keeps no heartbeats: the settings would do nothing, and nothing would say so.
    Left at their defaults, they call for no note."""
    if not url.startswith(JOURNAL):
        return None
    changed = [f"{name} = {getattr(sweep, name)}" for name in ("heartbeat_seconds", "grace_seconds")
               if getattr(sweep, name) != SweepSection.model_fields[name].default]
    if not changed:
        return None
    return (
        f"note: sweep.{' and '.join(changed)} {'apply' if len(changed) > 1 else 'applies'} to RDB storages only; the study is the journal file "
        f"{url[len(JOURNAL):]}, which keeps no heartbeats: a trial whose process on this machine is gone is failed and "
        "tried again without waiting for a grace period. For heartbeats, give --storage sqlite:///PATH or a database URL"
    )


def plain_storage(url: str) -> optuna.storages.BaseStorage:
    """The storage at ``url`` as it is, without heartbeats or connection settings: to read a study a
    sweep wrote (benchmarks, tools). Opening a journal file that does not exist creates it empty."""
    if url.startswith(JOURNAL):
        return journal_storage(Path(url[len(JOURNAL):]))
    return optuna.storages.RDBStorage(url)
