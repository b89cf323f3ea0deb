"""What checking the model's outputs costs `pipeline validate`, and what loading the data would cost.

`pipeline validate` builds the model from the dataset's spec and runs it once on zeros
(pipeline_core/model/check.py), without loading data. This measures, in fresh processes (each round a
new interpreter, so imports are paid as a user pays them), side by side:

* validate's work before the check: read the file, load the plugins, validate (``load_pipeline``);
* the check from the spec (``check_from_spec``): what validate adds;
* the alternative: call the dataset loader (scikit-learn's import included), build the model behind
  the data's preprocessing and check it on two real rows;

and the whole `pipeline validate FILE` process. Run: ``python benchmarks/validate_model_check.py
[--rounds 5] [pipelines/iris.toml ...]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = str(Path(sys.executable).parent / "pipeline")

PHASES = r"""
import json, sys, time
from collections import OrderedDict
from pathlib import Path
started = time.perf_counter()
from pipeline_core.pipeline.runner import load_pipeline
config, host = load_pipeline(Path(sys.argv[1]))
loaded = time.perf_counter()
from pipeline_core.model.check import check_from_spec
line = check_from_spec(config, host)
checked = time.perf_counter()
import torch
from torch import nn
from pipeline_core import DatasetContext
from pipeline_core.engine import check_model_outputs
registry = host.registry
bundle = registry.get("dataset", config.data.name).factory(DatasetContext(config.pipeline.seed, config.root), **config.data.resolved_options(config.root))
network = registry.get("model", config.model.name).factory(bundle.spec, **config.model.resolved_options(config.root))
model = nn.Sequential(OrderedDict(preprocess=bundle.preprocess, network=network))
check_model_outputs(model, bundle.spec, bundle.splits["train"].head(2).inputs, owner="model")
data = time.perf_counter()
print(json.dumps({"validate": loaded - started, "check_from_spec": checked - loaded, "load_data_and_check": data - checked,
                  "spec_checked": "no data loaded" in line}))
"""


def _phases(path: Path) -> dict[str, float]:
    result = subprocess.run([sys.executable, "-c", PHASES, str(path)], capture_output=True, text=True, check=True, timeout=600)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _whole(path: Path) -> float:
    started = time.perf_counter()
    subprocess.run([PIPELINE, "validate", str(path)], capture_output=True, check=True, timeout=600)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pipelines", nargs="*", type=Path, default=[ROOT / "pipelines" / name for name in ("iris.toml", "digits.toml", "moons.toml")])
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    rows: dict[Path, dict[str, list[float]]] = {path: {} for path in arguments.pipelines}
    for _ in range(arguments.rounds):  # interleaved: every pipeline once per round
        for path in arguments.pipelines:
            for key, value in {**_phases(path), "whole pipeline validate": _whole(path)}.items():
                if key != "spec_checked":
                    rows[path].setdefault(key, []).append(value)
    print(f"{arguments.rounds} rounds, median seconds (fresh process each round)")
    print(f"{'pipeline':<16}{'validate before':>16}{'+ check (spec)':>16}{'+ load data':>14}{'check/before':>14}{'data/before':>13}{'whole cmd':>11}")
    for path, times in rows.items():
        median = {key: statistics.median(values) for key, values in times.items()}
        before, spec, data = median["validate"], median["check_from_spec"], median["load_data_and_check"]
        print(f"{path.name:<16}{before:>16.3f}{spec:>16.3f}{data:>14.3f}{spec / before:>14.3f}{data / before:>13.3f}"
              f"{median['whole pipeline validate']:>11.3f}")


if __name__ == "__main__":
    main()
