"""Data-parallel training on PyTorch's own distributed engine: torchrun's launcher, the
``torch.distributed`` process group (gloo on the CPU, NCCL on CUDA) and DistributedDataParallel.

Each process holds the whole (in-memory) dataset; every epoch's permutation comes from the run's
seed, so it is the same whatever the number of processes, and each global batch is split among the
ranks. Gradients are averaged by DDP with each rank's loss weighted by its share of the global batch,
so N processes take the same steps as one process with the same global batch. Only rank 0 writes
files and calls lifecycle hooks; the other ranks train and exit.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

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

#: A rank's exit code when it failed only because another rank went away and so printed nothing:
#: the launcher then reports the rank that failed first instead of trusting rank 0 to have spoken.
PEER_LOST_EXIT = 3


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
        # torch.distributed.nn.functional binds the default group as a default argument when first
        # imported; imported later (DDP does), it would keep the group alive to the end (see leave())
        import torch.distributed.nn.functional  # noqa: F401

        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return info


def check_sync_batchnorm(strategy: str, sync_batchnorm: bool, device: torch.device) -> None:
    """``train.sync_batchnorm`` is only meaningful, and only possible, for data-parallel CUDA runs."""
    if not sync_batchnorm:
        return
    if strategy != "ddp":
        raise ConfigError("train.sync_batchnorm synchronizes BatchNorm statistics across data-parallel processes; "
                          "it needs train.strategy = 'ddp' (one process already normalizes over the whole batch)")
    if device.type != "cuda":
        raise ConfigError(f"train.sync_batchnorm needs CUDA devices (PyTorch's SyncBatchNorm has no {device.type} "
                          "implementation); set it to false, where each process normalizes over its share of the batch")


@contextlib.contextmanager
def synchronized_batchnorm(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` with every BatchNorm layer replaced by :class:`~torch.nn.SyncBatchNorm` for the duration,
    then the original layers put back.

    The synchronized layers share their parameters and running statistics with the originals, so the
    optimizer keeps working on the same tensors and the put-back layers hold what training learned:
    checkpoints, weights and exports see plain BatchNorm, which every exporter and runtime knows."""
    originals = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, nn.SyncBatchNorm)
    ]
    for parent, name, child in originals:
        parent.add_module(name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
    try:
        yield model
    finally:
        for parent, name, child in originals:
            child.train(getattr(parent, name).training)
            parent.add_module(name, child)


def leave() -> bool:
    """Destroy the process group and free it now; returns whether it was freed.

    Freeing it joins the backend's threads while the interpreter is whole. Left to interpreter
    shutdown, a gloo thread releasing the tensors of a finished collective needs the GIL, cannot
    take it any more, and the process dies with SIGABRT ("terminate called without an active
    exception") after a successful run. DDP's reducer holds the group, and a DDP module can sit in
    reference cycles (compiled modules, hook closures), hence the collection."""
    if not dist.is_initialized():
        return True
    group = weakref.ref(dist.group.WORLD)
    dist.destroy_process_group()
    gc.collect()
    return group() is None


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
    # threads chosen on purpose (torchrun would otherwise force 1 and warn): the cores, shared out
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc_per_node)))
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # the failure is reported below, once
    try:
        torchrun.run(torchrun.parse_args(arguments))
    except ChildFailedError as error:
        # the story is the first rank that neither merely lost its peers nor was stopped by the launcher's
        # SIGTERM, killed by it or stopping cleanly on it (any may carry the same second-resolution
        # timestamp as the real failure)
        secondary = (PEER_LOST_EXIT, -signal.SIGTERM, 128 + signal.SIGTERM)
        causes = {rank: failure for rank, failure in error.failures.items() if failure.exitcode not in secondary}
        main = error.failures.get(0)
        # rank 0 printed its own error already, unless it only lost its peers, or stopped on the SIGTERM after another rank failed
        if main is not None and main.exitcode > 0 and main.exitcode != PEER_LOST_EXIT and (main.exitcode not in secondary or not causes):
            failed = PipelineError(f"rank 0 exited with code {main.exitcode}")
            failed.exit_code, failed.reported = main.exitcode, True
            raise failed from None
        rank, failure = min((causes or error.failures).items(), key=lambda item: item[1].timestamp)
        code = failure.exitcode
        if code == PEER_LOST_EXIT:
            how = "lost contact with the other ranks"
        elif code < 0:
            how = f"was killed by signal {-code} ({signal.Signals(-code).name})" if -code in signal.valid_signals() else f"was killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        failed = PipelineError(f"distributed run failed: rank {rank} {how}; the other ranks were stopped")
        failed.exit_code = code if code > 0 and code != PEER_LOST_EXIT else 1
        raise failed from None


def is_peer_failure(error: BaseException) -> bool:
    """A collective failed because another process went away: that process is the story, not this one."""
    backend_error = getattr(dist, "DistBackendError", ())
    return isinstance(error, backend_error) or (isinstance(error, RuntimeError) and "gloo" in str(error) and "Connection" in str(error))
