"""Penguins: ``pipelines/penguins.toml`` against scikit-learn's HistGradientBoostingClassifier on the
same splits, for several seeds, in one run: test accuracy of each and their means.

The baseline gets the same training rows (train split; the validation split is not used by it) and
the columns as the pipeline encodes them (blanks filled, categories one-hot, with statistics of the
training split); gradient boosting needs no scaling, so this costs it nothing.

    python benchmarks/penguins.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from sklearn.ensemble import HistGradientBoostingClassifier

from pipeline_core.pipeline.runner import load_pipeline, run_pipeline

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "pipelines" / "penguins.toml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    pipeline, baseline = [], []
    for seed in range(args.seeds):
        config, host = load_pipeline(PIPELINE, (f"pipeline.seed={seed}",))
        with tempfile.TemporaryDirectory() as folder:
            run = run_pipeline(config, host, out=Path(folder) / "run", quiet=True)
        data = run.require_data("benchmark")
        train, test = data.splits["train"], data.splits["test"]
        model = HistGradientBoostingClassifier(random_state=seed).fit(train.inputs.numpy(), train.targets.numpy())
        pipeline.append(run.metrics["test"]["accuracy"])
        baseline.append(float((model.predict(test.inputs.numpy()) == test.targets.numpy()).mean()))
        print(f"seed {seed}: pipeline {pipeline[-1]:.4f}   HistGradientBoosting {baseline[-1]:.4f}   ({len(test.targets)} test rows)")
    print(f"mean of {args.seeds} seeds: pipeline {statistics.mean(pipeline):.4f} (sd {statistics.pstdev(pipeline):.4f})   "
          f"HistGradientBoosting {statistics.mean(baseline):.4f} (sd {statistics.pstdev(baseline):.4f})")


if __name__ == "__main__":
    main()
