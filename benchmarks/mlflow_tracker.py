"""Iris with the MLflow tracker on against off, side by side in one process on one machine.

Starts a real ``mlflow server`` (SQLite and a local artifact folder in a temporary folder, on
127.0.0.1), then runs ``pipelines/iris.toml`` (200 epochs, batch 4: the issue's "iris job") up to
its train stage, alternating tracker off and on, ``--repeats`` times each, and prints the train
stage's seconds (every epoch's row logged to the server while it runs) for each, the medians and
their ratio; the target is on/off <= 1.05. The time the tracker spends after training (artifacts,
the model) is printed apart: training does not wait for it.

    pip install -e '.[mlflow]'
    python benchmarks/mlflow_tracker.py [--repeats 3] [--epochs 200]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from pipeline_core import hookimpl
from pipeline_core.pipeline.runner import load_pipeline, run_pipeline

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "pipelines" / "iris.toml"
STAGES = 'pipeline.stages=["load_data", "build_model", "train"]'


class StageClock:
    """Times the train stage (every on_epoch_end inside it) and the whole run."""

    def __init__(self) -> None:
        self.started = self.train = self.cpu_started = self.cpu = 0.0

    @hookimpl
    def before_stage(self, run: object, stage: str) -> None:
        if stage == "train":
            self.started, self.cpu_started = time.perf_counter(), time.process_time()

    @hookimpl
    def after_stage(self, run: object, stage: str) -> None:
        if stage == "train":
            self.train, self.cpu = time.perf_counter() - self.started, time.process_time() - self.cpu_started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination", str(folder / "artifacts")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return process, url
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"mlflow server exited with {process.returncode}") from None
            time.sleep(0.3)
    raise SystemExit("mlflow server did not start in 180 s")


def one_run(folder: Path, epochs: int, url: str | None) -> tuple[float, float, float]:
    """(train stage seconds, its CPU seconds in this process, whole run seconds) of one iris run, tracked to ``url`` or not."""
    overrides = [STAGES, f"train.epochs={epochs}"] + ([f'trackers.mlflow.tracking_uri="{url}"', 'trackers.mlflow.experiment="benchmark"'] if url else [])
    clock = StageClock()
    config, host = load_pipeline(PIPELINE, tuple(overrides), plugins=[clock])
    started = time.perf_counter()
    run_pipeline(config, host, out=Path(tempfile.mkdtemp(dir=folder)), quiet=True)
    return clock.train, clock.cpu, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        process, url = start_server(folder)
        try:
            one_run(folder, 2, url)  # warm: imports, the experiment created
            off: list[tuple[float, float, float]] = []
            on: list[tuple[float, float, float]] = []
            for repeat in range(args.repeats):
                for tracked, results in ((None, off), (url, on)) if repeat % 2 == 0 else ((url, on), (None, off)):
                    results.append(one_run(folder, args.epochs, tracked))
                    train, cpu, whole = results[-1]
                    print(f"repeat {repeat + 1}  tracker {'on ' if tracked else 'off'}  train stage {train:7.3f} s (CPU {cpu:7.3f} s)  "
                          f"whole run {whole:7.3f} s", flush=True)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
    train_off, train_on = (statistics.median(t for t, _, _ in runs) for runs in (off, on))
    cpu_off, cpu_on = (statistics.median(c for _, c, _ in runs) for runs in (off, on))
    whole_off, whole_on = (statistics.median(w for _, _, w in runs) for runs in (off, on))
    print(f"\niris, {args.epochs} epochs, median of {args.repeats}: train stage off {train_off:.3f} s, on {train_on:.3f} s: "
          f"on/off {train_on / train_off:.3f} (target <= 1.05)")
    print(f"fastest of each (the least disturbed by other load): off {min(t for t, _, _ in off):.3f} s, on {min(t for t, _, _ in on):.3f} s: "
          f"on/off {min(t for t, _, _ in on) / min(t for t, _, _ in off):.3f}")
    print(f"the train stage's CPU time in this process (threads included; others' load left out): off {cpu_off:.3f} s, "
          f"on {cpu_on:.3f} s: on/off {cpu_on / cpu_off:.3f}")
    print(f"whole run (the tracker's artifacts and final metrics after training included): off {whole_off:.3f} s, on {whole_on:.3f} s")


if __name__ == "__main__":
    main()
