"""``serve --workers N``: N server processes on one port, so a server uses more than one core.

The supervisor (the process ``serve`` started) binds the REST socket once and hands it to N worker
processes (started with ``spawn``: nothing of the supervisor's state is forked into them); the kernel
spreads the connections among them. For gRPC each worker binds the port with ``SO_REUSEPORT``, after
the supervisor has checked that no other process holds it. Every worker opens and verifies the
bundles itself, and runs the whole server (``process.run_server``): batching, statistics and metrics
are per worker, merged where a client reads them (``worker_sync.py``, prometheus-client's
multiprocess mode).

SIGTERM or SIGINT to the supervisor is passed to every worker; each stops as one server does
(requests in flight finish) and the supervisor exits 0 once all have. A worker that dies otherwise is
named and started again (it replays the repository log, so it serves what the others serve); one
that stops before it was ever ready (exit code 2: a bundle changed, a port taken) stops the whole
server with that code, since the next try would fail the same way.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
from multiprocessing.process import BaseProcess
from pathlib import Path

from pipeline_core_deploy.predict import DeployError
from pipeline_core_deploy.serve.process import ServerOptions, WorkerPlace, load_repository, run_server

log = logging.getLogger("pipeline_core_deploy.serve")


def _worker(options: ServerOptions, sock: socket.socket, log_level: str, access_log: bool) -> None:
    """A worker process: open the bundles, serve until SIGTERM; exit 2 when it cannot start."""
    from pipeline_core_deploy.serve import logs

    logs.configure(log_level, access_log)
    try:
        repository = load_repository(options)
        started = run_server(options, sock, repository)
    except DeployError as error:
        log.error("worker %d: %s", options.worker.index if options.worker else -1, error)
        raise SystemExit(error.exit_code) from None
    raise SystemExit(0 if started else 1)


def check_port_free(host: str, port: int) -> None:
    """Bind ``port`` without sharing it and let it go: what the workers' shared gRPC port must pass first."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise DeployError(f"cannot listen for gRPC on {host} port {port} ({error.strerror or error}); another process may listen "
                              "there: choose another --grpc-port, or stop that process") from None


def supervise(options: ServerOptions, sock: socket.socket, count: int, access_log: bool) -> int:
    """Run ``count`` workers on ``sock`` until SIGTERM or SIGINT; the exit code for the command."""
    if options.grpc_port is not None:
        check_port_free(options.host, options.grpc_port)
    shared = Path(tempfile.mkdtemp(prefix="pipeline-serve-"))
    (shared / "metrics").mkdir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(shared / "metrics")  # the workers inherit it
    context = multiprocessing.get_context("spawn")
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for process in processes.values():
            if process.is_alive():
                process.terminate()  # SIGTERM: the worker drains and exits 0

    def start(index: int) -> BaseProcess:
        place = WorkerPlace(index, count, shared)
        process = context.Process(target=_worker, args=(_with_place(options, place), sock, options.log_level, access_log),
                                  name=f"pipeline-serve-worker-{index}")
        process.start()
        log.info("worker %d started (pid %d)", index, process.pid)
        return process

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    processes: dict[int, BaseProcess] = {}
    code = 0
    try:
        for index in range(count):
            processes[index] = start(index)
        while processes:
            for index, process in list(processes.items()):
                process.join(0.1)
                if process.is_alive():
                    continue
                _forget(process)
                del processes[index]
                if stopping:
                    code = code or (0 if process.exitcode == 0 else 1)
                elif not (shared / f"ready-{process.pid}").exists():
                    log.error("worker %d (pid %d) could not start (exit code %s); stopping the server", index, process.pid, process.exitcode)
                    code = 2 if process.exitcode == 2 else 1
                    stop(signal.SIGTERM, None)
                else:
                    log.error("worker %d (pid %d) died (exit code %s); starting it again", index, process.pid, process.exitcode)
                    processes[index] = start(index)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(shared, ignore_errors=True)
    log.info("stopped")
    return code


def _forget(process: BaseProcess) -> None:
    """Drop a dead worker's live gauges from the merged metrics (prometheus-client's multiprocess mode)."""
    from prometheus_client import multiprocess

    if process.pid is not None:
        multiprocess.mark_process_dead(process.pid)


def _with_place(options: ServerOptions, place: WorkerPlace) -> ServerOptions:
    import dataclasses

    return dataclasses.replace(options, worker=place)

