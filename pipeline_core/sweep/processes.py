"""``--jobs K``: K worker processes on this machine, each ``pipeline sweep FILE --worker I`` on the
same storage and study, each running trials of its own (real processes: a trial's training holds
the GIL, threads would take turns).

A worker that dies (any signal, any moment: while importing, between trials, inside a trial) does
not end the sweep: the command says which worker died and how as soon as it happens, hands its
running trial back to the study at once (failed and queued again, as a heartbeat would after its
grace period), and the workers left finish the study's budget (no replacement is started: the budget
is the study's, so fewer workers only take longer). Only when every worker has died does the command
stop early (``coordinator.WorkersDied``).

The workers end with the command: on Linux each asks the kernel to kill it when its parent dies
(``PR_SET_PDEATHSIG``), so a sweep killed with SIGKILL leaves no worker behind; its trials are
failed and tried again when the same command is started again (on the journal file because their
processes are gone, on an RDB storage by their heartbeat). Ctrl-C reaches
every worker (one process group); SIGTERM to the command is passed on to them.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType

PR_SET_PDEATHSIG = 1
#: how often the command looks for workers that ended
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class WorkerEnd:
    """How worker ``index`` (process ``pid``) ended: its exit code, negative for the signal that killed it."""

    index: int
    pid: int
    code: int

    @property
    def died(self) -> bool:
        return self.code != 0

    def describe(self) -> str:
        if self.code < 0:
            try:
                name = signal.Signals(-self.code).name
            except ValueError:
                name = f"signal {-self.code}"
            return f"worker {self.index} (process {self.pid}) was killed by {name}"
        return f"worker {self.index} (process {self.pid}) exited with code {self.code}"


@dataclass(frozen=True)
class Outcome:
    """How every worker ended, and whether the command passed a stop signal on to them (then their
    ends are the stop, not deaths)."""

    ends: list[WorkerEnd]
    stopped: bool

    @property
    def deaths(self) -> list[WorkerEnd]:
        return [] if self.stopped else [end for end in self.ends if end.died]

    @property
    def all_died(self) -> bool:
        return not self.stopped and all(end.died for end in self.ends)

    def stop_code(self) -> int:
        """When the command was stopped: the first non-zero exit code of a worker (0 if none)."""
        return next((end.code for end in self.ends if end.code != 0), 0)


def start(arguments: Sequence[str], jobs: int, threads: int, on_death: Callable[[WorkerEnd], None] = lambda end: None) -> Outcome:
    """Run ``pipeline <arguments> --worker I`` for I in 0..jobs-1 and wait for all; ``on_death`` hears
    of each worker that dies while the others run (not of workers stopped by a signal the command
    passed on). Each worker computes with ``threads`` threads (``OMP_NUM_THREADS``, unless set): the
    workers share the cores instead of each taking all of them, which on a busy machine made an epoch
    20 times slower."""
    command = [sys.executable, "-m", "pipeline_core", *arguments]
    environment = {"OMP_NUM_THREADS": str(threads), **os.environ}
    workers = [
        subprocess.Popen([*command, "--worker", str(index), "--parent", str(os.getpid())], env=environment) for index in range(jobs)
    ]
    state = {"stopped": False}

    def forward(signum: int, _: FrameType | None) -> None:
        state["stopped"] = True
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        ends = _wait_all(workers, on_death, state)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return Outcome(ends, state["stopped"])


def _wait_all(workers: list[subprocess.Popen[bytes]], on_death: Callable[[WorkerEnd], None], state: dict[str, bool]) -> list[WorkerEnd]:
    """Every worker's end, in worker order, telling ``on_death`` of a non-zero end as soon as it is
    seen unless the command is stopping (``state["stopped"]``: SIGTERM passed on, or Ctrl-C, which
    reaches every worker too: each stops its trial, and the command waits for them)."""
    ends: dict[int, WorkerEnd] = {}
    while len(ends) < len(workers):
        for index, worker in enumerate(workers):
            code = worker.poll() if index not in ends else None
            if code is None:
                continue
            ends[index] = WorkerEnd(index, worker.pid, code)
            if code != 0 and not state["stopped"]:
                on_death(ends[index])
        if len(ends) < len(workers):
            try:
                time.sleep(POLL_SECONDS)
            except KeyboardInterrupt:
                state["stopped"] = True
    return [ends[index] for index in range(len(workers))]


def die_with_parent(parent: int) -> None:
    """In a worker: be killed when the command that started it dies (Linux), or exit now if it already has."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)
