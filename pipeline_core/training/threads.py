"""How many threads torch computes with while training, chosen on purpose.

Small models on the CPU are dominated by per-operation overhead, not arithmetic: a second thread only
adds synchronization, so a small step trains fastest on one thread.
"""

from __future__ import annotations

import torch
from torch import nn

#: Below this much work per step (parameters × rows per batch) a CPU model trains fastest on one
#: thread: per-operation overhead dominates and a second thread only adds synchronization. Measured
#: on the project's 2-core machine: the iris MLP at batch 4 (46k) ran 15% faster on one thread than
#: on two; a 64-128-64-10 MLP at batch 32 (550k) ran 35% faster on two.
SMALL_STEP_WORK = 150_000
#: torch's own choice at start-up (one per physical core, or OMP_NUM_THREADS), before any run changed it
DEFAULT_THREADS = torch.get_num_threads()


def choose_threads(model: nn.Module, device: torch.device, requested: int | str, rows_per_step: int, processes: int = 1) -> int:
    """Set and return torch's intra-op thread count: ``requested``, or 1 for a small CPU step, or the
    cores shared out among the ``processes`` training on this machine."""
    if isinstance(requested, int):
        threads = requested
    elif device.type == "cpu" and sum(p.numel() for p in model.parameters()) * rows_per_step < SMALL_STEP_WORK:
        threads = 1
    else:
        threads = max(1, DEFAULT_THREADS // processes)
    torch.set_num_threads(threads)
    return threads
