"""The deploy tools as a deployment runs them: the ``pipeline-deploy`` console script (and a bundle's
``predict.py``) in subprocesses; ``serve`` on a free loopback port, stopped with SIGTERM (what an
orchestrator sends a replica it scales down)."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

#: the console scripts of the environment running the suite (.venv-deploy/bin)
BIN = Path(sys.executable).parent
DEPLOY = BIN / "pipeline-deploy"
READY_SECONDS = 60
#: the longest a one-shot command may take (a start-up costs about a second)
COMMAND_SECONDS = 60


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command to its end in ``cwd`` (a test's own folder: relative paths in messages stay
    short, and nothing of the repository's own folders is on the way) and return what it did."""
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=COMMAND_SECONDS)


def deploy(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``pipeline-deploy ARGS``."""
    return run([str(DEPLOY), *map(str, args)], cwd)


def free_port() -> int:
    """A port nothing listens on now (the kernel's choice), for a server started right after."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    grpc_port: int | None = None
    #: the CA certificate a TLS server's certificate verifies with (None: plain HTTP)
    tls_ca: Path | None = None

    @property
    def grpc_address(self) -> str:
        """What ``tritonclient.grpc``'s ``InferenceServerClient(url=...)`` takes."""
        assert self.grpc_port is not None, "the server was started without grpc=True"
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls_ca else 'http'}://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        """What tritonclient's ``InferenceServerClient(url=...)`` takes: host and port, no scheme."""
        return f"127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, and the exit code once the server has drained (bounded wait)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(READY_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def start(args: list[str], folder: Path, grpc: bool = False, tls_ca: Path | None = None, env: dict[str, str] | None = None) -> Server:
    """Start ``pipeline-deploy serve ARGS`` on a free port (and gRPC on another, with ``grpc``) and
    wait (at most 60 s) until ``/v2/health/ready`` answers 200 (over TLS, verified with ``tls_ca``,
    when given); its output goes to a log file in ``folder``. ``env`` is added to the environment."""
    port = free_port()
    grpc_port = free_port() if grpc else None
    log = folder / f"server-{port}.log"
    extra = ["--grpc-port", str(grpc_port)] if grpc_port is not None else []
    with open(log, "wb") as stream:
        process = subprocess.Popen([str(DEPLOY), "serve", *args, "--host", "127.0.0.1", "--port", str(port), *extra],
                                   stdout=stream, stderr=subprocess.STDOUT, cwd=folder, env={**os.environ, **(env or {})})
    server = Server(process, port, log, grpc_port, tls_ca)
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode} before it was ready:\n{server.output()}")
        try:
            if httpx.get(f"{server.url}/v2/health/ready", timeout=2, verify=ssl.create_default_context(cafile=str(tls_ca)) if tls_ca else True).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    process.wait()
    raise AssertionError(f"the server was not ready in {READY_SECONDS} s:\n{server.output()}")


@contextmanager
def serving(args: list[str], folder: Path, grpc: bool = False, tls_ca: Path | None = None,
            env: dict[str, str] | None = None) -> Iterator[Server]:
    """A started server, stopped with SIGTERM when the block ends, which must exit 0."""
    server = start(args, folder, grpc, tls_ca, env)
    try:
        yield server
    finally:
        code = server.stop()
        assert code == 0, f"the server exited with {code} on SIGTERM:\n{server.output()}"


def metric(server: Server, series: str) -> float:
    """The value of one Prometheus series (``name{labels}`` as the exposition writes it) from the
    server's ``/metrics``, 0 when it is absent."""
    for line in httpx.get(f"{server.url}/metrics", timeout=10).text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
