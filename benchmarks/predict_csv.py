"""`predict.py` on a large CSV against the same rows as `.npy`: wall time and peak memory side by side.

A 20-feature, 3-class bundle is made by a real pipeline run (the ``csv`` dataset on a generated
training file, a small MLP, two epochs). Then the bundle's own ``predict.py`` runs as a subprocess
(what a deployer types) on ``--rows`` rows of 20 features written as CSV (with a header) and as NPY,
and on a one-row CSV (the fixed cost: starting Python, importing NumPy and onnxruntime, verifying the
bundle). Each input runs ``--repeat`` times, interleaved; the table shows the median wall time and
the largest peak RSS of each (the child's own ``ru_maxrss``, from a small launcher process). Predictions go to a CSV file.

    python benchmarks/predict_csv.py [--rows 200000] [--repeat 3] [--bundle BUNDLE] [--script PREDICT_PY] [--keep DIR]

Goals (issue 20): the CSV in at most 1.5x the NPY's time, and peak memory at most 4x the CSV's size.
``--script`` runs another predict.py on the same bundle (e.g. an older one, to compare before and after).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

FEATURES = 20
PIPELINE = """
[pipeline]
name = "wide20"
seed = 0

[data]
name = "csv"
path = "train.csv"
target = "label"

[model]
name = "mlp"
hidden_sizes = [32]

[train]
epochs = 2
batch_size = 64

[train.optimizer]
name = "adam"
lr = 0.01

[train.loss]
name = "cross_entropy"
"""


def make_bundle(folder: Path) -> Path:
    """A bundle from a real pipeline run on a generated 20-feature, 3-class CSV."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, FEATURES))
    labels = (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 1)
    header = ",".join([*(f"f{i}" for i in range(FEATURES)), "label"])
    lines = [",".join(f"{v:.4f}" for v in row) + f",c{label}" for row, label in zip(x, labels, strict=True)]
    (folder / "train.csv").write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    (folder / "pipeline.toml").write_text(textwrap.dedent(PIPELINE).lstrip(), encoding="utf-8")
    subprocess.run([sys.executable, "-m", "pipeline_core", "run", str(folder / "pipeline.toml"), "--out", str(folder / "run")],
                   check=True, capture_output=True, timeout=600)
    return folder / "run" / "bundle"


def write_inputs(folder: Path, rows: int) -> dict[str, Path]:
    """The same rows as CSV (header, 4 decimals) and as NPY (float64, the values the CSV holds)."""
    rng = np.random.default_rng(1)
    values = np.round(rng.normal(size=(rows, FEATURES)), 4)
    header = ",".join(f"f{i}" for i in range(FEATURES))
    np.savetxt(folder / "rows.csv", values, delimiter=",", fmt="%.4f", header=header, comments="")
    np.save(folder / "rows.npy", values)
    np.savetxt(folder / "one.csv", values[:1], delimiter=",", fmt="%.4f", header=header, comments="")
    return {"csv": folder / "rows.csv", "npy": folder / "rows.npy", "one row": folder / "one.csv"}


# Runs one command and reports its wall time and peak RSS. The benchmark itself holds NumPy and the
# generated rows; a child started from it directly would count that memory in its own ru_maxrss (Linux
# carries the parent's high-water mark across fork and exec), so a small launcher that imports
# nothing big starts each child instead.
LAUNCHER = """
import json, os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(json.dumps({"seconds": time.perf_counter() - started, "rss": usage.ru_maxrss * 1024, "code": os.waitstatus_to_exitcode(status)}))
"""


def run_once(script: Path, bundle: Path, source: Path, output: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS in bytes of one ``python predict.py`` run."""
    command = [sys.executable, str(script), str(bundle), "--input", str(source), "--output", str(output)]
    launched = subprocess.run([sys.executable, "-c", LAUNCHER, *command], capture_output=True, text=True, timeout=600)
    result = json.loads(launched.stdout)
    if result["code"] != 0:
        raise SystemExit(f"predict.py failed on {source} (exit {result['code']}):\n{launched.stderr}")
    return result["seconds"], result["rss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bundle", type=Path, help="a 20-feature bundle to use instead of training one")
    parser.add_argument("--script", type=Path, help="the predict.py to run (default: the bundle's own copy)")
    parser.add_argument("--keep", type=Path, help="write the files here and keep them (default: a temporary folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as temporary:
        folder = args.keep or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        bundle = args.bundle or make_bundle(folder)
        script = args.script or bundle / "predict.py"
        inputs = write_inputs(folder, args.rows)
        times: dict[str, list[float]] = {name: [] for name in inputs}
        peaks: dict[str, list[int]] = {name: [] for name in inputs}
        for _ in range(args.repeat):
            for name, source in inputs.items():
                seconds, peak = run_once(script, bundle, source, folder / f"predictions-{name.replace(' ', '-')}.csv")
                times[name].append(seconds)
                peaks[name].append(peak)
        same = (folder / "predictions-csv.csv").read_bytes() == (folder / "predictions-npy.csv").read_bytes()
        sizes = {name: source.stat().st_size for name, source in inputs.items()}

    size = sizes["csv"]
    median = {name: statistics.median(values) for name, values in times.items()}
    peak = {name: max(values) for name, values in peaks.items()}
    mb = 1024 * 1024
    print(f"predict.py {script}\nbundle {bundle}: {FEATURES} features; {args.rows:,} rows; median of {args.repeat} runs, largest peak RSS\n")
    print("| input | file size | wall time | peak RSS | peak RSS / CSV size |\n|---|---|---|---|---|")
    for name in inputs:
        print(f"| {name} | {sizes[name] / mb:.1f} MB | {median[name]:.2f} s | {peak[name] / mb:.0f} MB | {peak[name] / size:.2f}x |")
    print(f"\nCSV / NPY: time {median['csv'] / median['npy']:.2f}x (goal <= 1.5x), peak RSS {peak['csv'] / peak['npy']:.2f}x")
    print(f"CSV peak RSS / CSV size: {peak['csv'] / size:.2f}x (goal <= 4x); above the one-row run's {peak['one row'] / mb:.0f} MB: "
          f"{(peak['csv'] - peak['one row']) / size:.2f}x")
    print(f"CSV and NPY predictions identical: {same}")


if __name__ == "__main__":
    main()
