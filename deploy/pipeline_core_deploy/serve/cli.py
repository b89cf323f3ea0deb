"""``serve``: the click command behind ``pipeline-deploy serve`` and ``pipeline serve``.

It lives in the torch-free distribution so both CLIs share one definition; ``pipeline serve``
only adds it to the training CLI. Bad bundles and bad options stop here with exit code 2 and a
message, before any port is opened. SIGTERM (or Ctrl-C) stops accepting connections, lets the
requests in flight finish, and exits 0: what an orchestrator expects of a replica it scales down.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def _describe(model: Any) -> str:
    b = model.batching
    batching = (f"dynamic batching up to {b.max_batch_size} rows, delay {b.max_queue_delay_us} µs, queue {b.max_queue_size}, "
                f"{b.instances} instance(s)") if b.dynamic_batching else f"no batching, queue {b.max_queue_size}"
    outputs = ", ".join(o.name for o in model.outputs)
    signed = f"; signed by key {model.bundle.signer} (checked)" if model.bundle.signer else ""
    variant = f" (variant {model.bundle.variant})" if model.bundle.variant != "float32" else ""
    return (f"model {model.name!r} version {model.version!r} from {model.bundle.folder}{variant}: "
            f"{model.input.datatype} {list(model.input.shape)} -> {outputs}; {batching}{signed}")


@click.command()
@click.argument("bundles", nargs=-1, metavar="[NAME[:VERSION]=]BUNDLE...")
@click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False), help="TOML file with [defaults] and [[models]] (see docs/deploy.md).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 for every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--max-batch-size", type=click.IntRange(min=1), help="Rows per batch (default 64).")
@click.option("--max-queue-delay-us", type=click.IntRange(min=0), help="Longest wait for a fuller batch, in microseconds (default 0: run what is queued).")
@click.option("--max-queue-size", type=click.IntRange(min=1), help="Requests that may wait per model before 503 (default 256).")
@click.option("--instances", type=click.IntRange(min=1), help="Batches of one model that may run at once (default 1).")
@click.option("--dynamic-batching/--no-dynamic-batching", default=None, help="Batch concurrent requests (default on).")
@click.option("--threads", type=click.IntRange(min=0), default=1, show_default=True, help="onnxruntime threads per call (0: one per core).")
@click.option("--max-body-bytes", type=click.IntRange(min=1), default=64 * 1024 * 1024, show_default=True, help="Larger request bodies get 400.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True, help="onnxruntime provider.")
@click.option("--timeout-graceful-shutdown", type=click.IntRange(min=0), default=30, show_default=True, help="Seconds to finish in-flight requests after SIGTERM.")
@click.option("--access-log/--no-access-log", default=True, show_default=True, help="One line per request on stdout.")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default="info", show_default=True)
@click.option("--verify-key", type=click.Path(path_type=Path, dir_okay=False),
              help="Serve only bundles whose manifest is signed by this Ed25519 public key (per model: verify_key in --config).")
@click.option("--variant", metavar="NAME", help="Serve this optimized variant of each bundle (int8_dynamic, fp16, ...) instead of model.onnx (per model: variant in --config).")
def serve(bundles: tuple[str, ...], config_file: Path | None, host: str, port: int, max_batch_size: int | None,
          max_queue_delay_us: int | None, max_queue_size: int | None, instances: int | None, dynamic_batching: bool | None,
          threads: int, max_body_bytes: int, device: str, timeout_graceful_shutdown: int, access_log: bool, log_level: str,
          verify_key: Path | None, variant: str | None) -> None:
    """Serve BUNDLE folders over the Open Inference Protocol (KServe v2 REST), with dynamic batching.

    Each bundle is verified against its manifest first (and its signature, with --verify-key); a bad
    one stops the server with exit code 2.
    """
    import uvicorn

    from pipeline_core_deploy.predict import DeployError
    from pipeline_core_deploy.serve import config, logs, models
    from pipeline_core_deploy.serve.app import ServerSettings, create_app

    flags = {"max_batch_size": max_batch_size, "max_queue_delay_us": max_queue_delay_us, "max_queue_size": max_queue_size,
             "instances": instances, "dynamic_batching": dynamic_batching}
    try:
        repository = models.load(config.model_specs(bundles, config_file, flags, verify_key, variant), device, threads)
    except DeployError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(error.exit_code) from None
    logs.configure(log_level, access_log)
    log = logging.getLogger("pipeline_core_deploy.serve")
    for model in repository:
        log.info("%s", _describe(model))
        for message in model.bundle.warnings():
            log.warning("%s", message)
    settings = ServerSettings(max_body_bytes=max_body_bytes, inference_threads=os.cpu_count() or 2, access_log=access_log)
    server = uvicorn.Server(uvicorn.Config(
        create_app(repository, settings), host=host, port=port, log_config=None, access_log=False,
        timeout_graceful_shutdown=timeout_graceful_shutdown, server_header=False,
    ))
    # uvicorn re-raises the signal it stopped on once it has drained; absorb it so a graceful stop exits 0
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:
        sys.exit(1)
    log.info("stopped")
