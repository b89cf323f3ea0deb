"""``--jobs K``: K worker processes on this machine, each ``pipeline sweep FILE --worker I`` on the
same storage and study, each running trials of its own (real processes: a trial's training holds
the GIL, threads would take turns).

The workers end with the command: on Linux each asks the kernel to kill it when its parent dies
(``PR_SET_PDEATHSIG``), so a sweep killed with SIGKILL leaves no worker behind; its trials are
failed by their heartbeat and tried again when the same command is started again. Ctrl-C reaches
every worker (one process group); SIGTERM to the command is passed on to them.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from types import FrameType

PR_SET_PDEATHSIG = 1


def start(arguments: Sequence[str], jobs: int, threads: int) -> int:
    """Run ``pipeline <arguments> --worker I`` for I in 0..jobs-1 and wait; returns the first
    non-zero exit code of a worker (0 when every worker succeeded). Each worker computes with
    ``threads`` threads (``OMP_NUM_THREADS``, unless set): the workers share the cores instead of
    each taking all of them, which on a busy machine made an epoch 20 times slower."""
    command = [sys.executable, "-m", "pipeline_core", *arguments]
    environment = {"OMP_NUM_THREADS": str(threads), **os.environ}
    workers = [
        subprocess.Popen([*command, "--worker", str(index), "--parent", str(os.getpid())], env=environment) for index in range(jobs)
    ]

    def forward(signum: int, _: FrameType | None) -> None:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        codes = [_wait(worker) for worker in workers]
    finally:
        signal.signal(signal.SIGTERM, previous)
    return next((code for code in codes if code != 0), 0)


def _wait(worker: subprocess.Popen[bytes]) -> int:
    while True:
        try:
            return worker.wait()
        except KeyboardInterrupt:
            continue  # the worker got the same Ctrl-C: it stops its trial, and we wait for it to finish


def die_with_parent(parent: int) -> None:
    """In a worker: be killed when the command that started it dies (Linux), or exit now if it already has."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)
