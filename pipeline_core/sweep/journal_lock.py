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

The appends themselves are :class:`JournalFile`'s: one that fails part-way (a full disk) or that a
crash cut short never leaves a partial line behind, which would make the whole study unreadable to
Optuna once another line follows it; and a reported value is not fsynced on its own (see there).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalFileSymlinkLock

try:
    import fcntl
except ImportError:  # Windows: Optuna's own lock
    fcntl = None  # type: ignore[assignment]

SUFFIX = ".flock"
try:  # the record of a value reported to the pruner: the one record not fsynced on its own
    from optuna.storages.journal._storage import JournalOperation

    REPORTED_VALUE: int | None = int(JournalOperation.SET_TRIAL_INTERMEDIATE_VALUE)
except (ImportError, AttributeError):  # another Optuna: every record fsynced, as Optuna's own appends do
    REPORTED_VALUE = None
#: How far back an append looks for the end of the last whole line when the file does not end with one.
_TAIL_CHUNK = 1 << 16


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


class JournalFile(JournalFileBackend):
    """Optuna's journal file with appends that leave whole lines only.

    Optuna's reader skips a last line without its newline (a write in progress) but fails, for every
    process and for good, once another line follows it: "Invalid log format". A write that stops
    part-way (the disk filled up, the machine lost power mid-append) leaves just such a line, and the
    next append would bury it. So each append, under the lock, first cuts the file back to its last
    whole line (no writer is mid-append while the lock is held: what is there is a dead write's), and
    a write that fails is cut back at once. Readers never kept a position past a whole line, so the
    cut changes nothing they saw.

    Each append is fsynced, as Optuna's are, except the values a trial reports to the pruner: these
    are appended (every process sees them at once) and reach the disk with the next fsynced record,
    since an fsync writes every earlier byte of the file. A power loss can lose the values reported
    since the last such record, and only those: their trial was running, and is failed and tried
    again when the sweep continues. A reported value then costs a tenth of a millisecond instead of
    about half of one, which matters when a full-batch trial reports every millisecond epoch."""

    def __init__(self, file_path: str, lock_obj: KernelFileLock | JournalFileSymlinkLock | None = None) -> None:
        self.appends_to, self.append_lock = file_path, lock_obj or JournalFileSymlinkLock(file_path)  # its own: Optuna's are private
        super().__init__(file_path, lock_obj=self.append_lock)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        payload = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode("utf-8")
        durable = REPORTED_VALUE is None or any(log.get("op_code") != REPORTED_VALUE for log in logs)
        self.append_lock.acquire()
        try:
            descriptor = os.open(self.appends_to, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                whole = _whole_lines_end(descriptor)
                try:
                    _write_all(descriptor, payload)
                except OSError:
                    os.ftruncate(descriptor, whole)
                    raise
                if durable:
                    os.fsync(descriptor)
            finally:
                os.close(descriptor)
        finally:
            self.append_lock.release()


def _whole_lines_end(descriptor: int) -> int:
    """The size of the file's whole lines; anything after the last newline is cut off. The usual file
    ends with its newline: one byte read says so, and only a cut-short tail is searched."""
    size = os.fstat(descriptor).st_size
    if size == 0 or _read_at(descriptor, size - 1, 1) == b"\n":
        return size
    end = size
    while end > 0:
        start = max(0, end - _TAIL_CHUNK)
        chunk = _read_at(descriptor, start, end - start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            end = start + newline + 1
            break
        end = start
    os.ftruncate(descriptor, end)
    return end


def _read_at(descriptor: int, offset: int, count: int) -> bytes:
    os.lseek(descriptor, offset, os.SEEK_SET)  # not os.pread, which Windows lacks
    return os.read(descriptor, count)


def _write_all(descriptor: int, payload: bytes) -> None:
    """``payload`` appended in full (``os.write`` may write part of it), or ``OSError``."""
    view = memoryview(payload)
    while view:
        view = view[os.write(descriptor, view):]


def journal_backend(journal: Path) -> JournalFile:
    """The journal file ``journal`` with the lock every sweep process takes (Optuna's own where the
    system has no ``flock``)."""
    return JournalFile(str(journal), lock_obj=KernelFileLock(journal) if fcntl is not None else None)


def journal_storage(journal: Path) -> optuna.storages.JournalStorage:
    """An Optuna storage on ``journal``, locked as every sweep process locks it."""
    return optuna.storages.JournalStorage(journal_backend(journal))
