"""Dead DataLoader worker processes, reported as a failed run that names the split they decoded.

A worker that dies (a native decoder crashing, the kernel's out-of-memory killer) surfaces in the
main process in three ways: torch's SIGCHLD handler raising ``RuntimeError("DataLoader worker (pid
N) is killed ...")`` at whatever line happens to run, the loader's own timeout check ("exited
unexpectedly"), or a broken connection while the main process fetches a batch the worker shared
through a file descriptor. Each becomes the same :class:`RunFailed`. Torch-free.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from typing import Any

from pipeline_core.errors import RunFailed

#: The split each live DataLoader worker process decodes, by pid: torch's SIGCHLD handler reports a
#: dead worker by raising wherever the main process happens to be, naming only the pid.
_WORKER_SPLITS: dict[int, str | None] = {}
_WORKER_PIDS = re.compile(r"DataLoader worker \(pid(?:\(s\))? ([\d, ]+)\)")


def watch(iterator: Iterator[Any], split: str | None) -> None:
    """Remember which split the worker processes of a DataLoader ``iterator`` decode."""
    for worker in getattr(iterator, "_workers", []):
        if worker.pid is not None:
            _WORKER_SPLITS[worker.pid] = split
    while len(_WORKER_SPLITS) > 1024:  # pids of workers long gone
        del _WORKER_SPLITS[next(iter(_WORKER_SPLITS))]


def worker_death(error: BaseException | str | None) -> RunFailed | None:
    """The run failure to report for torch's error about a dead DataLoader worker (``error``, or its
    message), naming the split it decoded; ``None`` when ``error`` is not about a worker's death.

    The runner applies it to any stage's error, since torch raises it from a signal handler at
    whatever line the main process is running when the worker dies."""
    message = error if isinstance(error, str) else str(error) if isinstance(error, RuntimeError) else ""
    found = _WORKER_PIDS.search(message)
    if found is None or not ("killed" in message or "exited" in message):
        return None
    pids = [int(pid) for pid in found.group(1).replace(",", " ").split()]
    split = next((_WORKER_SPLITS[pid] for pid in pids if pid in _WORKER_SPLITS), None)
    decoding = f" decoding split {split!r}" if split else ""
    return RunFailed(
        f"a worker process{decoding} died ({message.splitlines()[0].strip()}); with [data] workers = 0 the "
        "rows are decoded in this process, where the error shows"
    )


def shut_down(iterator: Iterator[Any]) -> None:
    """End a DataLoader ``iterator``'s worker processes, one of which may have died (already reported)."""
    if hasattr(iterator, "_shutdown_workers"):
        try:
            iterator._shutdown_workers()
        except RuntimeError as error:  # torch's SIGCHLD handler, on the dead worker
            if "DataLoader worker" not in str(error):
                raise


def dead_worker(iterator: Iterator[Any]) -> str | None:
    """How the first dead worker process of a DataLoader ``iterator`` ended, in torch's words, or
    ``None`` if all live.

    A worker killed while the main process fetched its batch may not be reaped yet: it is given up
    to a second to be seen dead (torch's SIGCHLD handler may say so first, by raising)."""
    workers = list(getattr(iterator, "_workers", []))
    deadline = time.monotonic() + 1.0
    try:
        while workers:
            for worker in workers:
                code = worker.exitcode
                if code is not None and code != 0:
                    if code > 0:
                        return f"DataLoader worker (pid {worker.pid}) exited with code {code}"
                    try:
                        name = signal.Signals(-code).name
                    except ValueError:
                        name = str(-code)
                    return f"DataLoader worker (pid {worker.pid}) is killed by signal {name}"
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
    except RuntimeError as error:
        if "DataLoader worker" not in str(error):
            raise
        return str(error).splitlines()[0]
    return None
