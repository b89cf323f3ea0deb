"""One server process: the data plane, the REST front end on a socket bound beforehand, and the gRPC
front end when asked for, on one event loop until SIGTERM. ``serve`` runs it in its own process, or
``--workers N`` runs it in N worker processes (``workers.py``), which is why everything it needs is
in one picklable :class:`ServerOptions`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline_core_deploy.predict import DeployError
from pipeline_core_deploy.serve.dataplane import DataPlane, ServerSettings
from pipeline_core_deploy.serve.models import ModelSpec, Repository

log = logging.getLogger("pipeline_core_deploy.serve")


@dataclass(frozen=True)
class WorkerPlace:
    """Where a worker stands among ``count`` workers, and the folder they share (metrics, the
    repository log, statistics)."""

    index: int
    count: int
    shared: Path


@dataclass(frozen=True)
class ServerOptions:
    """Everything one server process needs (picklable: a worker process receives it)."""

    configured: list[ModelSpec]
    template: ModelSpec
    model_repository: Path | None
    device: str
    threads: int
    settings: ServerSettings
    host: str
    port: int
    grpc_port: int | None
    grace_seconds: int
    log_level: str
    #: (certificate, key) files, checked by access.check_tls
    tls_files: tuple[Path, Path] | None = None
    tls: tuple[bytes, bytes] | None = field(default=None, repr=False)
    worker: WorkerPlace | None = None


def describe(model: Any) -> str:
    """The start-up line of one served model: what it takes and gives, how it is batched, its trust."""
    b = model.batching
    batching = (f"dynamic batching up to {b.max_batch_size} rows, delay {b.max_queue_delay_us} µs, queue {b.max_queue_size}, "
                f"{b.instances} instance(s)") if b.dynamic_batching else f"no batching, queue {b.max_queue_size}"
    if not model.shares_batches:
        measured = "not batch independent (measured at export)" if model.bundle.batch_independent is False else "batch independence not measured"
        batching = f"{measured}: requests never share a batch and each row runs alone, queue {b.max_queue_size}"
    outputs = ", ".join(o.name for o in model.outputs)
    signed = f"; signed by key {model.bundle.signer} (checked)" if model.bundle.signer else ""
    if not model.bundle.verified:
        signed = "; UNVERIFIED: a plain ONNX file, no manifest"
    variant = f" (variant {model.bundle.variant})" if model.bundle.variant != "float32" else ""
    ranges = f"; rows outside the training range (margin {model.range_margin:g}): {model.range_check}"
    return (f"model {model.name!r} version {model.version!r} from {model.bundle.folder}{variant}: "
            f"{model.input.datatype} {list(model.input.shape)} -> {outputs}; {batching}{ranges}{signed}")


def load_repository(options: ServerOptions) -> Repository:
    """Every configured bundle and every folder of the model repository, verified and opened."""
    from pipeline_core_deploy.serve import models
    from pipeline_core_deploy.serve.model_repository import scan

    directory = options.model_repository
    return models.load([*options.configured, *(scan(directory, options.template) if directory else [])], options.device, options.threads)


def run_server(options: ServerOptions, sock: socket.socket, repository: Repository) -> bool:
    """Serve until SIGTERM or SIGINT (then the requests in flight finish); True when the server had
    started. Raises :class:`DeployError` when the gRPC port cannot be bound (before anything starts)."""
    import uvicorn

    from pipeline_core_deploy.serve.app import create_app
    from pipeline_core_deploy.serve.metrics import Metrics
    from pipeline_core_deploy.serve.model_repository import ModelLoader

    loader = ModelLoader(repository, options.configured, options.model_repository, options.template, options.device, options.threads)
    plane = DataPlane(repository, options.settings, Metrics(), loader)
    certfile, keyfile = options.tls_files or (None, None)
    server = uvicorn.Server(uvicorn.Config(
        create_app(plane), host=options.host, port=options.port, log_config=None, access_log=False,
        timeout_graceful_shutdown=options.grace_seconds, server_header=False, ssl_certfile=certfile, ssl_keyfile=keyfile,
    ))

    async def run() -> None:
        if options.worker is not None:
            from pipeline_core_deploy.serve.worker_sync import WorkerSync

            plane.sync = WorkerSync(options.worker.shared, options.worker.index, options.worker.count)
            plane.companions.append(lambda: plane.sync.following(plane))  # type: ignore[union-attr]
        if options.grpc_port is not None:  # made inside the event loop it runs on, bound before anything starts
            from pipeline_core_deploy.serve.grpc_routes import GrpcServer

            grpc = GrpcServer(plane, options.host, options.grpc_port, options.grace_seconds, options.tls,
                              shared_port=options.worker is not None)
            plane.companions.append(grpc.serving)
        await server.serve(sockets=[sock])

    # uvicorn re-raises the signal it stopped on once it has drained; absorb it so a graceful stop exits 0
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
            runner.run(run())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return bool(server.started)


__all__ = ["DeployError", "ServerOptions", "WorkerPlace", "describe", "load_repository", "run_server"]
