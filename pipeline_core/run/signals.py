"""SIGINT and SIGTERM during training: finish the current step, checkpoint, and stop cleanly.

The handler only records the request; the training loop checks it after each optimizer step, so a
step is never cut in half and the checkpoint it writes resumes exactly. A second Ctrl-C stops at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass

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
