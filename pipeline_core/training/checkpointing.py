"""When the trainer checkpoints: every ``checkpoint_every`` epochs, whenever ``checkpoint_seconds``
have passed since the last one, at the last epoch and at an early stop, and before a stop a signal
asked for. Short runs of fast epochs pay for one checkpoint; long runs lose at most a minute."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

NONE_YET = "none yet"


class CheckpointPolicy:
    """Decides when to write a checkpoint, writes it through ``save`` (which returns its name; ``None``
    writes nothing: a rank other than 0, or a test), and remembers the last one for messages."""

    def __init__(self, save: Callable[[dict[str, Any]], str] | None, every: int = 0, seconds: float = 60.0) -> None:
        self._save, self.every, self.seconds = save, every, seconds
        self.last = NONE_YET
        self.saved_at = time.monotonic()

    def due(self, epoch: int, final: bool) -> bool:
        """Whether the end of ``epoch`` calls for a checkpoint (``final``: the last epoch, or an early stop)."""
        elapsed = time.monotonic() - self.saved_at >= self.seconds
        return elapsed or final or bool(self.every and epoch % self.every == 0)

    def save(self, payload: Callable[[], dict[str, Any]]) -> None:
        """Write the checkpoint ``payload()`` builds (built only when something is written)."""
        if self._save is not None:
            self.last = self._save(payload())
            self.saved_at = time.monotonic()
