"""`pipeline serve` under load: requests/s, p50 and p99 latency, errors and server memory, for the iris
MLP and the MNIST MLP (784-512-256-10) at concurrency 1, 16 and 64, dynamic batching on and off,
next to onnxruntime called in-process (the ceiling: no HTTP, no JSON).

The load generator is a real HTTP client sending Open Inference Protocol requests of one row each to
a real server on 127.0.0.1 (a subprocess of this script), one kept-alive connection per concurrent
caller, bounded by a request count and a time limit per run: libcurl's multi interface (pycurl) by
default, or aiohttp on one event loop (``--client aiohttp``). The client shares this machine's two
cores with the server, so a lighter client leaves more of them to the server: libcurl spends about
half of aiohttp's CPU per request, and the table prints both sides' CPU per request. Both clients come
with the benchmark extra: ``pip install -e '.[benchmark]'``. With ``--grpc`` each server also listens
for gRPC, and every run is repeated there by a ``grpc.aio`` client sending pre-serialized
``ModelInferRequest`` messages (raw tensor bytes, as ``tritonclient.grpc`` sends them) on one HTTP/2
channel: REST and gRPC measured side by side on the same server. The bundles are
made by running the project's pipelines (MNIST on MNIST-format files of real size written here:
this machine has no internet, and the timing depends on the sizes, not on the pixels).

    python benchmarks/serve.py [--requests 4500] [--seconds 60] [--encoding json|binary] [--client curl|aiohttp] [--grpc] [--bundles DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import numpy as np

try:
    import pycurl
except ImportError:  # the benchmark extra brings it
    raise SystemExit("benchmarks/serve.py needs pycurl for its default client: pip install -e '.[benchmark]' (or pass --client aiohttp)") from None

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_core_deploy.predict import open_bundle  # noqa: E402

from mnist_train import synthetic_mnist  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CONCURRENCY = (1, 16, 64)
POOL = 256  # distinct rows per model


@dataclass
class Result:
    model: str
    mode: str
    concurrency: int
    requests: int
    seconds: float
    latencies: list[float]
    errors: int
    server_cpu: float = float("nan")  # seconds of server CPU (all threads) during the run
    client_cpu: float = float("nan")  # seconds of this process's CPU (the load generator) during the run

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def make_bundles(folder: Path) -> dict[str, Path]:
    """Run pipelines/iris.toml and pipelines/mnist.toml (1 epoch) once; reuse them afterwards."""
    bundles = {"iris": folder / "iris" / "bundle", "mnist": folder / "mnist" / "bundle"}
    if not (bundles["iris"] / "manifest.json").exists():
        subprocess.run([BIN / "pipeline", "run", ROOT / "pipelines/iris.toml", "--out", folder / "iris", "--quiet"], check=True)
    if not (bundles["mnist"] / "manifest.json").exists():
        data = synthetic_mnist(folder / "mnist-data")
        subprocess.run([BIN / "pipeline", "run", ROOT / "pipelines/mnist.toml", "--out", folder / "mnist", "--quiet",
                        "--set", f'data.root="{data}"', "--set", "train.epochs=1"], check=True)
    return bundles


def rows_for(bundle_path: Path) -> np.ndarray:
    bundle = open_bundle(bundle_path, threads=1)
    generator = np.random.default_rng(0)
    shape = (POOL, *bundle.input_shape)
    if bundle.input_dtype.kind == "u":
        return generator.integers(0, 256, shape).astype(bundle.input_dtype)
    return generator.normal(4, 2, shape).astype(bundle.input_dtype)


def bodies(model: str, rows: np.ndarray, encoding: str) -> list[tuple[bytes, dict[str, str]]]:
    """One pre-encoded request per row: the client's own encoding cost stays out of the server's figures."""
    datatype = {"float32": "FP32", "uint8": "UINT8"}[rows.dtype.name]
    out = []
    for row in rows:
        tensor = {"name": "input", "shape": [1, *row.shape], "datatype": datatype}
        if encoding == "json":
            body = json.dumps({"inputs": [{**tensor, "data": row.reshape(-1).tolist()}]}).encode()
            out.append((body, {"Content-Type": "application/json"}))
        else:
            raw = row.tobytes()
            header = json.dumps({"inputs": [{**tensor, "parameters": {"binary_data_size": len(raw)}}],
                                 "parameters": {"binary_data_output": True}}).encode()
            out.append((header + raw, {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))}))
    return out


def grpc_bodies(model: str, rows: np.ndarray) -> list[bytes]:
    """One serialized ``ModelInferRequest`` per row, the tensor as raw bytes (tritonclient.grpc's way)."""
    from pipeline_core_deploy.serve import protos

    request_class = protos.message("ModelInferRequest")
    datatype = {"float32": "FP32", "uint8": "UINT8"}[rows.dtype.name]
    out = []
    for row in rows:
        request = request_class(model_name=model, raw_input_contents=[row.tobytes()])
        request.inputs.add(name="input", datatype=datatype, shape=[1, *row.shape])
        out.append(request.SerializeToString())
    return out


async def load_grpc(address: str, requests: list[bytes], concurrency: int, count: int, seconds: float) -> Result:
    """``count`` ModelInfer calls from ``concurrency`` callers on one channel, or fewer if ``seconds`` run out first."""
    latencies: list[float] = []
    errors = issued = 0
    deadline = time.perf_counter() + seconds
    async with grpc.aio.insecure_channel(address) as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")  # bytes in, bytes out

        async def caller() -> None:
            nonlocal issued, errors
            while issued < count and time.perf_counter() < deadline:
                body = requests[issued % len(requests)]
                issued += 1
                started = time.perf_counter()
                try:
                    await infer(body, timeout=30)
                    ok = True
                except grpc.aio.AioRpcError:
                    ok = False
                latencies.append(time.perf_counter() - started)
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Result("", "", concurrency, len(latencies), elapsed, latencies, errors)


def run_grpc(address: str, requests: list[bytes], concurrency: int, count: int, seconds: float) -> Result:
    return asyncio.run(load_grpc(address, requests, concurrency, count, seconds))


def in_process(bundle_path: Path, rows: np.ndarray, calls: int = 5000) -> tuple[float, float, float, float]:
    """onnxruntime in this process, one thread as the server uses: p50 and p99 of a one-row call (ms),
    one-row calls/s, and rows/s at batch 64."""
    bundle = open_bundle(bundle_path, threads=1)
    name = bundle.metadata["input"]["name"]
    for row in rows[:50]:
        bundle.session.run(None, {name: row[None]})
    times = []
    for index in range(calls):
        started = time.perf_counter()
        bundle.session.run(None, {name: rows[index % len(rows)][None]})
        times.append(time.perf_counter() - started)
    batch = rows[:64]
    started = time.perf_counter()
    for _ in range(200):
        bundle.session.run(None, {name: batch})
    batched = 64 * 200 / (time.perf_counter() - started)
    times.sort()
    return times[len(times) // 2] * 1000, times[int(0.99 * len(times))] * 1000, len(times) / sum(times), batched


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live children so far (Linux /proc), all their
    threads: with --workers the supervisor's worker processes do the serving."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return own + sum(cpu_seconds(int(child)) for child in children.read_text().split()) if children.exists() else own


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(bundle: Path, port: int, batching: bool, log: Path, grpc_port: int | None = None, workers: int = 1) -> subprocess.Popen[bytes]:
    command = [str(BIN / "pipeline-deploy"), "serve", str(bundle), "--port", str(port),
               "--dynamic-batching" if batching else "--no-dynamic-batching", "--workers", str(workers),
               *(["--grpc-port", str(grpc_port)] if grpc_port is not None else [])]
    with open(log, "wb") as stream:  # the access log stays on, written to a file as a deployment would
        server = subprocess.Popen(command, stdout=stream, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1) as response:
                if response.status == 200:
                    return server
        except OSError:
            if server.poll() is not None:
                raise SystemExit(f"the server exited with {server.returncode}: {log.read_text()[-2000:]}") from None
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the server did not become ready in 60 s")


async def load(url: str, requests: list[tuple[bytes, dict[str, str]]], concurrency: int, count: int, seconds: float) -> Result:
    """``count`` requests from ``concurrency`` callers, or fewer if ``seconds`` run out first."""
    latencies: list[float] = []
    errors = 0
    issued = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def caller() -> None:
            nonlocal issued, errors
            while issued < count and time.perf_counter() < deadline:
                body, headers = requests[issued % len(requests)]
                issued += 1
                started = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        ok = response.status == 200
                except (TimeoutError, aiohttp.ClientError):
                    ok = False
                latencies.append(time.perf_counter() - started)
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Result("", "", concurrency, len(latencies), elapsed, latencies, errors)


def load_curl(url: str, requests: list[tuple[bytes, dict[str, str]]], concurrency: int, count: int, seconds: float) -> Result:
    """``count`` requests from ``concurrency`` libcurl handles on one multi handle, or fewer if
    ``seconds`` run out first."""
    multi = pycurl.CurlMulti()
    latencies: list[float] = []
    errors = issued = 0
    started_at: dict[pycurl.Curl, float] = {}
    buffers: dict[pycurl.Curl, io.BytesIO] = {}
    deadline = time.perf_counter() + seconds

    def issue(handle: pycurl.Curl) -> bool:
        nonlocal issued
        if issued >= count or time.perf_counter() >= deadline:
            return False
        body, headers = requests[issued % len(requests)]
        issued += 1
        buffers[handle] = io.BytesIO()
        handle.setopt(pycurl.POSTFIELDS, body)
        # "Expect:" turns off libcurl's 100-continue round trip for bodies over 1 KiB
        handle.setopt(pycurl.HTTPHEADER, [f"{key}: {value}" for key, value in headers.items()] + ["Expect:"])
        handle.setopt(pycurl.WRITEDATA, buffers[handle])
        started_at[handle] = time.perf_counter()
        multi.add_handle(handle)
        return True

    running = 0
    for _ in range(concurrency):
        handle = pycurl.Curl()
        for option, value in ((pycurl.URL, url), (pycurl.NOSIGNAL, 1), (pycurl.TIMEOUT, 30)):
            handle.setopt(option, value)
        running += issue(handle)
    started = time.perf_counter()
    while running:
        while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
            pass
        _, succeeded, failed = multi.info_read()
        finished = [(handle, handle.getinfo(pycurl.RESPONSE_CODE) == 200) for handle in succeeded]
        finished += [(handle, False) for handle, _, _ in failed]
        for handle, ok in finished:
            multi.remove_handle(handle)
            latencies.append(time.perf_counter() - started_at[handle])
            errors += not ok
            if not issue(handle):
                running -= 1
        if not finished:
            multi.select(0.05)
    return Result("", "", concurrency, len(latencies), time.perf_counter() - started, latencies, errors)


def run_load(client: str, url: str, requests: list[tuple[bytes, dict[str, str]]], concurrency: int, count: int, seconds: float) -> Result:
    if client == "curl":
        return load_curl(url, requests, concurrency, count, seconds)
    return asyncio.run(load(url, requests, concurrency, count, seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4500, help="requests per (model, mode, concurrency) run")
    parser.add_argument("--seconds", type=float, default=60, help="time limit per run")
    parser.add_argument("--encoding", choices=("json", "binary"), default="json", help="JSON tensors, or binary tensor data as tritonclient sends by default")
    parser.add_argument("--bundles", type=Path, help="folder for the bundles (kept and reused); default: a temporary folder")
    parser.add_argument("--models", default="iris,mnist")
    parser.add_argument("--client", choices=("curl", "aiohttp"), default="curl", help="the load generator: libcurl (pycurl) or aiohttp")
    parser.add_argument("--grpc", action="store_true", help="also measure gRPC (grpc.aio client) on the same servers")
    parser.add_argument("--modes", default="on,off", help="batching modes to run: on, off, or both")
    parser.add_argument("--workers", default="1", help="server processes (--workers), one run per value: e.g. 1,2")
    args = parser.parse_args()

    scratch = tempfile.TemporaryDirectory()
    folder = args.bundles or Path(scratch.name)
    bundles = make_bundles(folder)
    print(f"{os.cpu_count()} CPU cores; {args.client} client; {args.encoding} tensors; {args.requests} requests per run (at most {args.seconds:.0f} s); "
          f"server: pipeline-deploy serve with its defaults (onnxruntime 1 thread, max_batch_size 64, max_queue_delay_us 0, access log on)")
    results: list[Result] = []
    memory: list[tuple[str, str, float, float, int | None]] = []
    ceilings = {}
    for model in args.models.split(","):
        rows = rows_for(bundles[model])
        ceilings[model] = in_process(bundles[model], rows)
        requests = bodies(model, rows, args.encoding)
        messages = grpc_bodies(model, rows) if args.grpc else []
        for batching, workers in ((mode == "on", int(w)) for mode in args.modes.split(",") for w in args.workers.split(",")):
            mode = ("batching on" if batching else "batching off") + (f", {workers} workers" if workers > 1 else "")
            port, grpc_port = free_port(), free_port() if args.grpc else None
            server = start_server(bundles[model], port, batching, folder / f"{model}-{port}.log", grpc_port, workers)
            url = f"http://127.0.0.1:{port}/v2/models/{model}/infer"
            loads = [(mode, functools.partial(run_load, args.client, url, requests))]
            if grpc_port is not None:
                loads.append((f"{mode}, gRPC", functools.partial(run_grpc, f"127.0.0.1:{grpc_port}", messages)))
            try:
                for _, run in loads:
                    run(16, 500, 30)  # warm-up: connections, caches, allocator
                time.sleep(1 if workers > 1 else 0)
                start_rss = rss_mib(server.pid)
                for concurrency in CONCURRENCY:
                    for label, run in loads:
                        cpu, own = cpu_seconds(server.pid), time.process_time()
                        result = run(concurrency, args.requests, args.seconds)
                        result.model, result.mode, result.server_cpu = model, label, cpu_seconds(server.pid) - cpu
                        result.client_cpu = time.process_time() - own
                        results.append(result)
                end_rss = rss_mib(server.pid)
            finally:
                server.send_signal(signal.SIGTERM)
                try:
                    code: int | None = server.wait(60)
                except subprocess.TimeoutExpired:
                    server.kill()
                    code = None
            memory.append((model, mode, start_rss, end_rss, code))

    print("\n| model | mode | concurrency | requests | requests/s | p50 (ms) | p99 (ms) | errors | server CPU per request (µs) | client CPU per request (µs) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model, (p50, p99, calls, batched) in ceilings.items():
        print(f"| {model} | in-process onnxruntime, 1 row | 1 | 5000 | {calls:,.0f} | {p50:.3f} | {p99:.3f} | 0 | | |")
        print(f"| {model} | in-process onnxruntime, 64 rows | 1 | 200 | {batched / 64:,.0f} ({batched:,.0f} rows/s) | | | 0 | | |")
        for result in (r for r in results if r.model == model):
            print(f"| {model} | {result.mode} | {result.concurrency} | {result.requests} | {result.throughput:,.0f} | "
                  f"{result.percentile(0.5):.2f} | {result.percentile(0.99):.2f} | {result.errors} | "
                  f"{1e6 * result.server_cpu / max(result.requests, 1):.0f} | {1e6 * result.client_cpu / max(result.requests, 1):.0f} |")
    print("\n| model | mode | server RSS at start (MiB) | at end (MiB) | growth | exit code after SIGTERM |")
    print("|---|---|---|---|---|---|")
    for model, mode, start, end, code in memory:
        print(f"| {model} | {mode} | {start:.1f} | {end:.1f} | {100 * (end - start) / start:+.1f}% | {code} |")

    total = sum(r.requests for r in results)
    errors = sum(r.errors for r in results)
    print(f"\ntotal: {total} requests, {errors} errors")
    for model, (_, p99, _, _) in ceilings.items():
        by = {(r.mode, r.concurrency): r for r in results if r.model == model}
        on, off = by.get(("batching on", 64)), by.get(("batching off", 64))
        if on and off:
            print(f"{model}: concurrency 64, batching on / off = {on.throughput / off.throughput:.2f}x (goal >= 3x)")
        on_grpc = by.get(("batching on, gRPC", 64))
        if on and on_grpc:
            print(f"{model}: concurrency 64, batching on, gRPC / REST = {on_grpc.throughput / on.throughput:.2f}x requests/s (goal >= 1x); "
                  f"server CPU per request REST {1e6 * on.server_cpu / on.requests:.0f} µs, gRPC {1e6 * on_grpc.server_cpu / on_grpc.requests:.0f} µs "
                  "(goal <= 100 µs)")
        for mode in ("batching on", "batching off"):
            single = by.get((mode, 1))
            if single:
                print(f"{model}: concurrency 1 ({mode}), p99 {single.percentile(0.99):.2f} ms vs in-process {p99:.3f} ms: "
                      f"+{single.percentile(0.99) - p99:.2f} ms (goal <= 2 ms)")
    growth = max((end - start) / start for _, _, start, end, _ in memory)
    print(f"largest memory growth: {100 * growth:+.1f}% (goal < 10%)")
    print(f"median requests/s over all runs: {statistics.median(r.throughput for r in results):,.0f}")


if __name__ == "__main__":
    main()
