"""SIGINT and SIGTERM: during training, finish the current step, checkpoint, and stop cleanly; in
any other stage, stop at once with an :class:`~pipeline_core.errors.Interrupted` error, so the run
folder's ``status.json`` says which stage was stopped and how, instead of staying ``running``.

During training the handler only records the request; the training loop checks it after each
optimizer step, so a step is never cut in half and the checkpoint it writes resumes exactly. A
second Ctrl-C stops at once. Elsewhere nothing is cut in half either: every file is written to a
temporary name and renamed when whole, and the bundle is sealed last.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pipeline_core.errors import Interrupted

HANDLED = (signal.SIGINT, signal.SIGTERM)


@dataclass
class StopRequest:
    """Set by a signal handler; read by the training loop."""

    signal: int | None = None

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal is not None else ""


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Route SIGINT/SIGTERM to a :class:`StopRequest` while the block runs (main thread only)."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum: int, frame: object) -> None:
        if request.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        request.signal = signum

    previous = {sig: signal.signal(sig, handler) for sig in HANDLED}
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def interrupt_on_signals(where: Callable[[], str]) -> Iterator[None]:
    """While the block runs (main thread only), SIGINT and SIGTERM raise :class:`Interrupted` at once,
    naming ``where()`` (the stage running); training's :func:`stop_on_signals` takes over inside it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Interrupted(f"stopped by {signal.Signals(signum).name} during {where()}; no file was left half-written. "
                          "Continue with --resume", signum)

    previous = {sig: signal.signal(sig, handler) for sig in HANDLED}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
