"""Inference latency and throughput of a trained pipeline's model in every exported format, side by
side in one run: eager PyTorch, TorchScript, torch.export (.pt2) and onnxruntime, at batch 1 and 1024.

    python benchmarks/inference.py [RUN_FOLDER] [--threads N] [--seconds S]

Without RUN_FOLDER it trains ``pipelines/iris.toml`` briefly (20 epochs) into a temporary folder.
Every runtime gets the same thread count (default 1, the setting for serving small models).
Prints a table and the ratio of each runtime's batch-1 latency to eager PyTorch's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from pipeline_core.config.export_section import PROBABILITIES
from pipeline_core.engine import deployable
from pipeline_core.pipeline.runner import load_pipeline, run_pipeline

ROOT = Path(__file__).resolve().parent.parent


def _time(call: Callable[[], object], seconds: float) -> float:
    """Median seconds per call over repeated timing rounds of about ``seconds`` in total."""
    for _ in range(20):  # warm up
        call()
    rounds, samples = 7, []
    started = time.perf_counter()
    count = 0
    while time.perf_counter() - started < seconds / rounds:
        call()
        count += 1
    per_round = max(count, 1)
    for _ in range(rounds):
        begin = time.perf_counter()
        for _ in range(per_round):
            call()
        samples.append((time.perf_counter() - begin) / per_round)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_folder", nargs="?", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=2.0, help="timing budget per measurement")
    args = parser.parse_args()

    folder = args.run_folder
    if folder is None:
        folder = Path(tempfile.mkdtemp()) / "run"
        config, host = load_pipeline(ROOT / "pipelines" / "iris.toml", ("train.epochs=20",))
        run_pipeline(config, host, out=folder, quiet=True)
    bundle = folder / "bundle"
    metadata = json.loads((bundle / "metadata.json").read_text())
    shape = [int(d) for d in metadata["input"]["shape"][1:]]
    dtype = np.dtype(metadata["input"]["dtype"])

    torch.set_num_threads(args.threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(str(bundle / "model.torchscript.pt")).eval()
    program = torch.export.load(str(bundle / "model.pt2")).module()
    # eager: the run's own model rebuilt from its resolved config and weights, wrapped like the exports
    # (raw output plus probabilities when the bundle has them), so every runtime does the same work
    config, host = load_pipeline(Path(folder) / "config.toml", ('pipeline.stages=["load_data", "build_model"]',))
    rebuilt = run_pipeline(config, host, out=Path(tempfile.mkdtemp()) / "eager", quiet=True)
    rebuilt.model.load_state_dict(torch.load(folder / "weights.pt", weights_only=True))
    with_probabilities = any(o["name"] == PROBABILITIES for o in metadata["outputs"])
    eager = deployable(rebuilt.model, metadata["task"], with_probabilities)

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(bundle / "model.onnx"), options, providers=["CPUExecutionProvider"])
    input_name = metadata["input"]["name"]

    rows = []
    for batch in (1, 1024):
        x = torch.rand(batch, *shape).to(torch.float32 if dtype == np.float32 else torch.uint8)
        xn = x.numpy()
        runtimes = {
            "eager PyTorch": lambda x=x: eager(x),
            "TorchScript": lambda x=x: scripted(x),
            "torch.export": lambda x=x: program(x),
            "onnxruntime": lambda xn=xn: session.run(None, {input_name: xn}),
        }
        with torch.inference_mode():
            for name, call in runtimes.items():
                seconds = _time(call, args.seconds)
                rows.append((name, batch, seconds))

    print(f"model: {metadata['pipeline']} ({folder}), threads: {args.threads}, torch {torch.__version__}, onnxruntime {onnxruntime.__version__}")
    print(f"{'runtime':16}{'batch':>7}{'latency (µs)':>15}{'rows/s':>14}{'speed-up vs eager':>20}")
    eager_time = {batch: s for name, batch, s in rows if name == "eager PyTorch"}
    for name, batch, seconds in rows:
        print(f"{name:16}{batch:>7}{seconds * 1e6:>15.1f}{batch / seconds:>14,.0f}{eager_time[batch] / seconds:>19.2f}×")


if __name__ == "__main__":
    main()
