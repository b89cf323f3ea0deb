"""``serve``: the click command behind ``pipeline-deploy serve`` and ``pipeline serve``.

It lives in the torch-free distribution so both CLIs share one definition; ``pipeline serve``
only adds it to the training CLI. SIGTERM (or Ctrl-C) stops accepting connections, lets the
requests in flight finish, and exits 0: what an orchestrator expects of a replica it scales down.

Exit codes (docs/deploy.md has the same table):

* 0: stopped by SIGTERM or SIGINT after answering the requests in flight;
* 1: the server failed after it started (an internal error; the log says what);
* 2: it never started: a bad bundle, option or configuration file, or an address it cannot listen
  on (an unknown host, a port in use or not allowed); the socket is bound before the application
  starts, so a port in use is said before "Application startup complete", never after.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
from pathlib import Path

import click

from pipeline_core_deploy.serve import MAX_BODY_BYTES, MAX_REQUEST_ROWS

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port`` and listening, made before the application starts, so an
    address that cannot be used is one clear error (exit 2) instead of uvicorn's exit 3 after its
    start-up log. Raises :class:`~pipeline_core_deploy.predict.DeployError` naming the host and port."""
    from pipeline_core_deploy.predict import DeployError

    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as error:
        raise DeployError(f"--host {host!r} is not an address this machine can listen on ({error}); "
                          "use an IP address such as 127.0.0.1, 0.0.0.0 or ::1, or a name that resolves") from None
    sock = socket.socket(family, kind, protocol)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a restart need not wait for TIME_WAIT
        sock.bind(address)
        sock.listen(2048)
    except OSError as error:
        sock.close()
        hint = ("another process listens there; choose another --port, or stop that process" if error.errno == errno.EADDRINUSE
                else "choose another --host or --port")
        raise DeployError(f"cannot listen on {host} port {port}: {error.strerror or error}; {hint}") from None
    sock.set_inheritable(True)
    return sock


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
@click.option("--max-body-bytes", type=click.IntRange(min=1), default=MAX_BODY_BYTES, show_default=True, help="Larger request bodies get 400.")
@click.option("--max-request-rows", type=click.IntRange(min=1), default=MAX_REQUEST_ROWS, show_default=True, help="Requests holding more rows get 400.")
@click.option("--range-check", type=click.Choice(["flag", "refuse"]), help="Rows outside the training range: flag them in the answer "
              "(default) or refuse them with 400 (per model: range_check in --config).")
@click.option("--range-margin", type=click.FloatRange(min=0), help="How far outside the training range a value may lie, as a fraction of "
              "the range (default 0.5).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True, help="onnxruntime provider.")
@click.option("--timeout-graceful-shutdown", type=click.IntRange(min=0), default=30, show_default=True, help="Seconds to finish in-flight requests after SIGTERM.")
@click.option("--access-log/--no-access-log", default=True, show_default=True, help="One line per request on stdout.")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default="info", show_default=True)
@click.option("--verify-key", type=click.Path(path_type=Path, dir_okay=False),
              help="Serve only bundles whose manifest is signed by this Ed25519 public key (per model: verify_key in --config).")
@click.option("--variant", metavar="NAME", help="Serve this optimized variant of each bundle (int8_dynamic, fp16, ...) instead of model.onnx (per model: variant in --config).")
@click.option("--grpc-port", type=click.IntRange(0, 65535), help="Also serve the KServe v2 gRPC protocol (and grpc.health.v1) on this port.")
@click.option("--model-repository", type=click.Path(path_type=Path, file_okay=False),
              help="Serve every model folder in DIR by its name; the repository extension loads folders added later.")
@click.option("--ssl-certfile", type=click.Path(path_type=Path, dir_okay=False), help="TLS certificate (PEM) for REST and gRPC; needs --ssl-keyfile.")
@click.option("--ssl-keyfile", type=click.Path(path_type=Path, dir_okay=False), help="TLS private key (PEM) of --ssl-certfile.")
@click.option("--token-file", type=click.Path(path_type=Path, dir_okay=False),
              help="Require 'Authorization: Bearer TOKEN' (gRPC: metadata) on every route but the health probes, TOKEN read from "
                   "this file (or from the environment variable PIPELINE_SERVE_TOKEN); never given on the command line.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Server processes on the same port(s), one per core you give it; metrics, statistics and model loads are shared.")
@click.option("--cors-origin", "cors_origins", multiple=True, metavar="ORIGIN",
              help="Let browsers on ORIGIN (e.g. https://app.example.com; repeat for several, * for any) call the REST routes. Default: CORS off.")
def serve(bundles: tuple[str, ...], config_file: Path | None, host: str, port: int, max_batch_size: int | None,
          max_queue_delay_us: int | None, max_queue_size: int | None, instances: int | None, dynamic_batching: bool | None,
          threads: int, max_body_bytes: int, max_request_rows: int, range_check: str | None, range_margin: float | None, device: str,
          timeout_graceful_shutdown: int, access_log: bool, log_level: str, verify_key: Path | None, variant: str | None,
          grpc_port: int | None, model_repository: Path | None, ssl_certfile: Path | None, ssl_keyfile: Path | None,
          token_file: Path | None, workers: int, cors_origins: tuple[str, ...]) -> None:
    """Serve BUNDLE folders over the Open Inference Protocol (KServe v2 REST, and gRPC with
    --grpc-port), with dynamic batching and Triton's model repository and statistics extensions.

    Each bundle is verified against its manifest first (every file, and its signature with
    --verify-key); a bad one, or an address that cannot be listened on, stops the server with exit
    code 2 before it starts.
    """
    from pipeline_core_deploy.predict import DeployError
    from pipeline_core_deploy.serve import access, config, logs
    from pipeline_core_deploy.serve.dataplane import ServerSettings
    from pipeline_core_deploy.serve.process import ServerOptions, describe, load_repository, run_server

    flags = {"max_batch_size": max_batch_size, "max_queue_delay_us": max_queue_delay_us, "max_queue_size": max_queue_size,
             "instances": instances, "dynamic_batching": dynamic_batching, "range_check": range_check, "range_margin": range_margin}
    try:
        tls = access.check_tls(ssl_certfile, ssl_keyfile)
        settings = ServerSettings(max_body_bytes=max_body_bytes, max_request_rows=max_request_rows, inference_threads=os.cpu_count() or 2,
                                  access_log=access_log, token=access.read_token(token_file), cors_origins=cors_origins)
        options = ServerOptions(
            config.model_specs(bundles, config_file, flags, verify_key, variant, model_repository), config.template(config_file, flags, verify_key, variant),
            model_repository, device, threads, settings, host, port, grpc_port, timeout_graceful_shutdown, log_level,
            (ssl_certfile, ssl_keyfile) if tls and ssl_certfile and ssl_keyfile else None, tls)
        repository = load_repository(options)  # every bundle verified before anything listens (each worker opens its own)
        sock = listen(host, port)
    except DeployError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(error.exit_code) from None
    logs.configure(log_level, access_log)
    log = logging.getLogger("pipeline_core_deploy.serve")
    for model in repository:
        log.info("%s", describe(model))
        for message in model.bundle.warnings():
            log.warning("%s", message)
    if settings.token is not None:
        log.info("every route and RPC but the health probes needs the bearer token (from %s)", token_file or access.TOKEN_ENV)
        if tls is None and host not in ("127.0.0.1", "::1", "localhost"):
            log.warning("the bearer token travels in clear text over plain HTTP to %s; serve with --ssl-certfile and --ssl-keyfile", host)
    try:
        if workers > 1:
            from pipeline_core_deploy.serve.workers import supervise

            del repository  # each worker opens its own
            code = supervise(options, sock, workers, access_log)
            if code:
                sys.exit(code)
            return
        started = run_server(options, sock, repository)
    except DeployError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(error.exit_code) from None
    finally:
        sock.close()
    if not started:
        sys.exit(1)
    log.info("stopped")
