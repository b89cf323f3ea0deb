"""Data-parallel training on PyTorch's own distributed engine: torchrun's launcher, the
``torch.distributed`` process group (gloo on the CPU, NCCL on CUDA) and DistributedDataParallel.

Each process holds the whole (in-memory) dataset; every epoch's permutation comes from the run's
seed, so it is the same whatever the number of processes, and each global batch is split among the
ranks. Gradients are averaged by DDP with each rank's loss weighted by its share of the global batch,
so N processes take the same steps as one process with the same global batch. Only rank 0 writes
files and calls lifecycle hooks; the other ranks train and exit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.distributed as dist

from pipeline_core.errors import ConfigError, PipelineError


@dataclass(frozen=True)
class Distributed:
    """Where this process stands in the job (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def bounds(self, rows: int) -> tuple[int, int]:
        """This rank's slice ``[low, high)`` of a global batch of ``rows`` rows: contiguous, sizes
        differing by at most one (the first ``rows % world_size`` ranks take one more)."""
        if not self.enabled:
            return 0, rows
        share, extra = divmod(rows, self.world_size)
        low = self.rank * share + min(self.rank, extra)
        return low, low + share + (1 if self.rank < extra else 0)

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` summed over every rank (a no-op for one process)."""
        if self.enabled:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when it is true on any rank."""
        if not self.enabled:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (checkpoints reach ranks without a shared file system)."""
        if not self.enabled:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


SINGLE = Distributed()


def launched() -> bool:
    """Whether this process was started by torchrun (or an equivalent launcher) as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(strategy: str, device: torch.device) -> Distributed:
    """Join the process group torchrun prepared (environment variables ``RANK``, ``WORLD_SIZE``, ...)."""
    if not launched():
        return SINGLE
    if strategy != "ddp":
        raise ConfigError(f"this process is one of {os.environ['WORLD_SIZE']} started by a launcher, but train.strategy is "
                          f"{strategy!r}; set train.strategy = 'ddp' to train data-parallel")
    info = Distributed(
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", "1")),
    )
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return info


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def launch(worker_args: Sequence[str], nproc_per_node: int, nnodes: str, rdzv_endpoint: str | None, rdzv_id: str) -> None:
    """Run ``python -m pipeline_core <worker_args>`` as ``nproc_per_node`` processes on this node
    through torchrun's launcher; raises :class:`PipelineError` with one line per failed rank."""
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    arguments = [f"--nproc-per-node={nproc_per_node}", f"--nnodes={nnodes}"]
    if rdzv_endpoint:
        arguments += ["--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}", f"--rdzv-id={rdzv_id}"]
    else:
        arguments.append("--standalone")
    arguments += ["--module", "pipeline_core", *worker_args]
    try:
        torchrun.run(torchrun.parse_args(arguments))
    except ChildFailedError as error:
        lines, codes = [], []
        for rank, failure in sorted(error.failures.items()):
            code = failure.exitcode
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            lines.append(f"rank {rank} {how}")
            codes.append(code)
        failed = PipelineError("distributed run failed: " + "; ".join(lines) + " (the other ranks were stopped)")
        failed.exit_code = next((c for c in codes if c > 0), 1)
        raise failed from None
