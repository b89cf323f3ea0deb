"""The optimized variants of model.onnx side by side: latency at batch 1 and 1024 on one thread, size
on disk and accuracy against float32, for the iris MLP and the MNIST MLP (784-512-256-10), in one run.

Each pipeline runs with ``[export.optimize] variants`` set to all four; every variant's gate tolerance
is opened (``max_accuracy_drop = 100``) so that each ships and can be timed here, and the table says
whether it would have passed the default gate (0.5 points). The MNIST MLP trains through
``pipelines/mnist.toml`` (2 epochs, lr 0.05) on MNIST-size digit images written as IDX files (or on
real MNIST with ``--data``). Timings interleave the files round by round (median of the rounds'
medians), so a change in the machine's load touches every file alike.

Goals: the MNIST MLP's int8 variant at batch 1024 at least 1.5× faster than float32 onnxruntime and
at most 0.3× its size, with an accuracy drop of at most 0.5 points.

    python benchmarks/variants.py [--data DIR] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from pipeline_core.pipeline.runner import load_pipeline, run_pipeline  # noqa: E402

from digit_images import write_digit_mnist  # noqa: E402

VARIANTS = ["optimized", "int8_dynamic", "int8_static", "fp16"]
OPEN_GATES = tuple(f"export.optimize.{name}.max_accuracy_drop=100.0" for name in VARIANTS)
EXPORT = ('export.formats=["onnx"]', f"export.optimize.variants={json.dumps(VARIANTS)}", *OPEN_GATES)
DEFAULT_DROP = 0.5
GOAL_SPEED, GOAL_SIZE, GOAL_DROP = 1.5, 0.3, 0.5


def session(path: Path) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def time_call(run, batch: np.ndarray, seconds: float) -> float:
    """Median seconds of one call, repeated for ``seconds`` (at least 5 calls)."""
    times = []
    started = time.perf_counter()
    while len(times) < 5 or time.perf_counter() - started < seconds:
        begin = time.perf_counter()
        run(None, {"input": batch})
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def latencies(files: dict[str, Path], rows: np.ndarray, rounds: int) -> dict[str, dict[int, float]]:
    """Milliseconds per call for each file at batch 1 and 1024, interleaved over ``rounds``."""
    sessions = {name: session(path) for name, path in files.items()}
    results: dict[str, dict[int, list[float]]] = {name: {1: [], 1024: []} for name in files}
    for size in (1, 1024):
        batch = np.ascontiguousarray(np.resize(rows, (size, *rows.shape[1:])))
        for current in sessions.values():
            current.run(None, {"input": batch})  # warm-up
        for _ in range(rounds):
            for name, current in sessions.items():
                results[name][size].append(time_call(current.run, batch, 0.15 if size == 1 else 0.4))
    return {name: {size: statistics.median(values) * 1000 for size, values in sizes.items()} for name, sizes in results.items()}


def measure(title: str, pipeline: Path, overrides: tuple[str, ...], out: Path, rounds: int) -> list[dict]:
    config, host = load_pipeline(pipeline, (*overrides, *EXPORT))
    started = time.perf_counter()
    run = run_pipeline(config, host, out=out, quiet=True)
    bundle = run.run_dir / "bundle"
    metadata = json.loads((bundle / "metadata.json").read_text())
    report = run.export_report["onnx"]["variants"]
    files = {name: bundle / entry["file"] for name, entry in metadata["variants"].items()}
    rows = run.data.splits["test"].inputs[:1024].cpu().numpy()  # type: ignore[union-attr]
    timed = latencies(files, rows, rounds)
    print(f"\n{title}: {len(run.data.splits['test'])} test rows, run took {time.perf_counter() - started:.0f} s "  # type: ignore[union-attr]
          f"(training {run.training.epochs_run} epochs, export and every variant's gate included)")  # type: ignore[union-attr]
    base = timed["float32"]
    accuracy = report["int8_dynamic"]["accuracy"]["float32"]
    lines = []
    for name, path in files.items():
        entry = report.get(name, {})
        drop = entry.get("accuracy", {}).get("drop_points", 0.0)
        lines.append({
            "model": title, "variant": name, "bytes": path.stat().st_size, "size": path.stat().st_size / files["float32"].stat().st_size,
            "ms1": timed[name][1], "speed1": base[1] / timed[name][1], "ms1024": timed[name][1024], "speed1024": base[1024] / timed[name][1024],
            "accuracy": entry.get("accuracy", {}).get("variant", accuracy), "drop": drop,
            "agreement": entry.get("class_agreement", 1.0), "gate": "—" if name == "float32" else ("passes" if drop <= DEFAULT_DROP else "FAILS"),
        })
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="a folder holding MNIST/raw (default: digit images made here)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds per batch size")
    args = parser.parse_args()
    print(f"onnxruntime {onnxruntime.__version__}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the start")
    scratch = Path(tempfile.mkdtemp(prefix="variants-"))
    root = args.data or scratch / "digits"
    if args.data is None:
        write_digit_mnist(root)
    lines = measure("iris MLP", ROOT / "pipelines" / "iris.toml", (), scratch / "iris", args.rounds)
    lines += measure("MNIST MLP 784-512-256-10", ROOT / "pipelines" / "mnist.toml",
                     (f'data.root="{root.resolve()}"', "train.epochs=2", "train.optimizer.lr=0.05"), scratch / "mnist", args.rounds)
    print(f"\n{'model':<25} {'variant':<13} {'bytes':>10} {'× size':>7} {'batch 1 ms':>11} {'× speed':>8} {'batch 1024 ms':>14} "
          f"{'× speed':>8} {'accuracy':>9} {'drop pts':>9} {'agree':>7}  gate at {DEFAULT_DROP}")
    for line in lines:
        print(f"{line['model']:<25} {line['variant']:<13} {line['bytes']:>10,} {line['size']:>7.3f} {line['ms1']:>11.4f} {line['speed1']:>8.2f} "
              f"{line['ms1024']:>14.3f} {line['speed1024']:>8.2f} {line['accuracy']:>9.4f} {line['drop']:>9.2f} {line['agreement']:>7.2%}  {line['gate']}")
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    print(f"goals for the MNIST MLP's int8 variants: ≥ {GOAL_SPEED}× float32's speed at batch 1024, ≤ {GOAL_SIZE}× its size, drop ≤ {GOAL_DROP} points")
    for line in lines:
        if line["model"].startswith("MNIST") and line["variant"].startswith("int8"):
            met = line["speed1024"] >= GOAL_SPEED and line["size"] <= GOAL_SIZE and line["drop"] <= GOAL_DROP
            print(f"  {line['variant']}: {line['speed1024']:.2f}× faster, {line['size']:.3f}× the size, drop {line['drop']:.2f} points: "
                  f"{'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
