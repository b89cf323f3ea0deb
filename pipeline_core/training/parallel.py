"""Training across processes: the model wrapped in DistributedDataParallel (and compiled on request)
for the batch loop, and BatchNorm synchronized over the global batch for the duration of training."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pipeline_core.config.train_section import TrainSection
from pipeline_core.errors import ConfigError
from pipeline_core.run.distributed import Distributed, synchronized_batchnorm


def training_forward(model: nn.Module, settings: TrainSection, device: torch.device, distributed: Distributed) -> Any:
    """What the batch loop calls: the model, wrapped in DDP across processes, compiled on request."""
    if settings.precision == "fp16" and device.type != "cuda":
        raise ConfigError(f"train.precision 'fp16' needs a CUDA device (the run is on {device}); use '32' or 'bf16'")
    forward: Any = model
    if distributed.enabled:
        forward = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if settings.compile:
        forward = torch.compile(forward, backend=settings.compile_backend)
    return forward


def batchnorm_synchronized(model: nn.Module, settings: TrainSection, distributed: Distributed) -> contextlib.AbstractContextManager[Any]:
    """``train.sync_batchnorm`` of a data-parallel run: SyncBatchNorm while the block runs (build the
    trainer inside it, so DDP wraps the synchronized layers)."""
    if settings.sync_batchnorm and distributed.enabled:
        return synchronized_batchnorm(model)
    return contextlib.nullcontext()
