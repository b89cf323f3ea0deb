"""What many tests share, in one place: the repository's paths, the small iris pipeline, the command
line through click's CliRunner, a pipeline file run as ``pipeline run`` runs it, a real install with
pip, a real ``pipeline serve`` process, and a few checks (a drawn PNG, a checkpoint written).

The tests live in one folder per package of the core (tests/host, tests/config, ...); this module and
the data makers beside it (digit_images.py, image_folders.py, export_faults.py, image_plugin.py) sit in
tests/, which pytest puts on ``sys.path`` when it loads tests/conftest.py, so ``from helpers import
...`` works from every folder. The fixtures are in conftest.py.
"""

from __future__ import annotations

import inspect
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from click.testing import CliRunner, Result
from PIL import Image

from pipeline_core import RunContext, hookspecs
from pipeline_core.cli import cli
from pipeline_core.pipeline.runner import load_pipeline, run_pipeline

ROOT = Path(__file__).resolve().parent.parent
PIPELINES = ROOT / "pipelines"
#: the console scripts of this environment (pipeline, pipeline-deploy)
BIN = Path(sys.executable).parent

IRIS_FAST = """
[pipeline]
name = "iris_fast"
seed = 3

[data]
name = "iris"

[model]
name = "mlp"
hidden_sizes = [16, 8]
batch_norm = [true, false]

[train]
epochs = 3
batch_size = 16

[train.optimizer]
name = "adam"
lr = 0.01

[train.loss]
name = "cross_entropy"
"""


def invoke(*args: object, env: dict[str, str] | None = None) -> Result:
    """``pipeline ARGS`` through click's CliRunner, in this process; exceptions are not caught."""
    return CliRunner().invoke(cli, [str(arg) for arg in args], catch_exceptions=False, env=env)


def run_file(path: Path, out: Path, *overrides: str) -> RunContext:
    """Load a pipeline file (with ``--set`` overrides) and run it quietly into ``out``, as ``pipeline run`` does."""
    config, host = load_pipeline(path, tuple(overrides))
    return run_pipeline(config, host, out=out, quiet=True)


def install(source: Path, target: Path) -> dict[str, str]:
    """``pip install --target`` (no dependencies, no network) and the environment that sees it."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(target), str(source)],
        check=True, capture_output=True, timeout=300,
    )
    return {**os.environ, "PYTHONPATH": str(target)}


def hookspec_names() -> list[str]:
    """Every hook of :mod:`pipeline_core.hookspecs`, by name."""
    return [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "pipeline_core_spec")]


def check_png(path: Path) -> tuple[int, int]:
    """A real PNG of a sensible size with something drawn on it; its width and height."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
    with Image.open(path) as image:
        width, height = image.size
        colors = len(np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0))
    assert 300 <= width <= 3000 and 250 <= height <= 3000, (width, height)
    assert colors > 20  # something was drawn, not a blank canvas
    return width, height


def wait_for_checkpoint(process: subprocess.Popen, run_dir: Path, timeout: float = 120) -> bool:
    """True once the run has a checkpoint; False if the process ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (run_dir / "checkpoints" / "latest.json").exists():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.02)
    raise TimeoutError("no checkpoint appeared")


# -- a real server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> int:
        """SIGTERM, and the exit code once it has drained (bounded wait)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start(args: list[str], tmp: Path, command: list[str] | None = None) -> Server:
    """Start a server as a subprocess and wait (at most 60 s) until /v2/health/ready answers 200."""
    port = free_port()
    log = tmp / f"server-{port}.log"
    with open(log, "wb") as stream:
        process = subprocess.Popen([*(command or [str(BIN / "pipeline-deploy"), "serve"]), *args, "--port", str(port)],
                                   stdout=stream, stderr=subprocess.STDOUT)
    server = Server(process, port, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{server.output()}")
        try:
            if httpx.get(f"{server.url}/v2/health/ready", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"server not ready in 60 s:\n{server.output()}")


_MIXED_TABLE = """\
    species,island,bill,mass,sex,tagged
    {rows}
"""


def write_mixed_table(folder: Path, rows: int = 120, blanks: bool = True) -> Path:
    """A small table like the penguins: a category, two numbers, a category with blanks, a yes/no column;
    blanks at every position of the feature columns (first row, last row, each column), and a class
    learnable from the numbers."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(rows):
        species = ["A", "B", "C"][i % 3]
        bill = 40 + 5 * (i % 3) + rng.normal()
        mass = 3500 + 400 * (i % 3) + rng.normal() * 50
        cells = [species, ["North", "South"][i % 2], f"{bill:.2f}", f"{mass:.0f}", ["male", "female"][i % 2], ["yes", "no"][i % 2]]
        if blanks:
            cells[1 + i % 5] = ["", "NA", "", "N/A", ""][i % 5] if i % 4 == 0 else cells[1 + i % 5]
        lines.append(",".join(cells))
    path = folder / "table.csv"
    path.write_text(textwrap.dedent(_MIXED_TABLE).format(rows="\n".join(lines)))
    return path
