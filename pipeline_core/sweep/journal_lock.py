"""The lock around each append to a study's journal file: one the operating system releases when its
holder dies.

Optuna's own journal lock is a symbolic link next to the file. A process killed with SIGKILL while
it holds it (a fraction of a millisecond per write, but a sweep writes at every report) leaves the
link behind, and every later writer waits Optuna's grace period, 30 seconds, before it takes the
lock by force. ``flock`` on ``<journal>.flock`` is held by an open file, and the kernel closes a dead
process's files: the next writer goes on at once. Linux NFS clients (2.6.12 on) carry ``flock`` to
the server as a whole-file lock, so a journal on a shared disk is still locked across machines.

Every process that writes the journal must take the same lock: every ``pipeline sweep`` does, and a
plain Optuna script joining the study opens it with :func:`journal_storage` too.
"""

from __future__ import annotations

import os
from pathlib import Path

import optuna
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

try:
    import fcntl
except ImportError:  # Windows: Optuna's own lock
    fcntl = None  # type: ignore[assignment]

SUFFIX = ".flock"


class KernelFileLock(JournalFileOpenLock):
    """An exclusive ``flock`` on ``<journal>.flock``, taken for each append and released after it.
    (A subclass of one of Optuna's public locks only for its type: their base class is private;
    every method is this class's own.)"""

    def __init__(self, journal: Path) -> None:  # noqa: D107 - Optuna's lock keeps nothing this one needs
        self.path = str(journal) + SUFFIX
        self._descriptor: int | None = None

    def acquire(self) -> bool:
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)  # waits while another process writes
        except BaseException:
            os.close(descriptor)
            raise
        self._descriptor = descriptor
        return True

    def release(self) -> None:
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is not None:
            os.close(descriptor)  # closing the file releases the lock


def journal_backend(journal: Path) -> JournalFileBackend:
    """The journal file ``journal`` with the lock every sweep process takes (Optuna's own where the
    system has no ``flock``)."""
    return JournalFileBackend(str(journal), lock_obj=KernelFileLock(journal) if fcntl is not None else None)


def journal_storage(journal: Path) -> optuna.storages.JournalStorage:
    """An Optuna storage on ``journal``, locked as every sweep process locks it."""
    return optuna.storages.JournalStorage(journal_backend(journal))
