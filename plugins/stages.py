"""The default stages load_data → build_model → train → evaluate (export: :mod:`pipeline_core_plugins.export_stage`).

They are ordinary plugins on ``register_stages``, written with the public API alone; a pipeline file
may reorder them, drop them, or add stages of its own between them.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from typing import TYPE_CHECKING

from pipeline_core import DatasetContext, PipelineError, Register, RunFiles, hookimpl

if TYPE_CHECKING:
    from pipeline_core import RunContext


def load_data(run: RunContext) -> None:
    """Call the configured dataset loader with the run's seed; decode its streamed splits into memory
    or keep them streamed, as ``[data] load`` and ``memory_limit`` say (recorded in ``data.json``)."""
    from pipeline_core import LoadedData
    from pipeline_core.engine import place_splits

    assert run.config.data is not None  # the config requires [data] when this stage is listed
    loaded = run.create(run.config.data, DatasetContext(run.config.pipeline.seed, run.config.root))
    if not isinstance(loaded, LoadedData):
        raise PipelineError(f"dataset {run.config.data.name!r} returned {type(loaded).__name__}, not a LoadedData")
    run.data = place_splits(loaded, run.config.data.loading, run.device)
    if run.data.loading:
        run.write_json(RunFiles.DATA, run.data.loading)


def build_model(run: RunContext) -> None:
    """Build the configured model from the data spec, behind the data's preprocessing, and check
    with one dry pass on two training rows that its outputs fit the data (nothing trains on a
    model whose last layer has the wrong size)."""
    from torch import nn

    from pipeline_core.engine import check_data_spec, check_model_outputs, remember_model_check

    assert run.config.model is not None
    data = run.require_data("build_model")
    registry = run.host.registry
    check_data_spec(data.spec, owner=registry.describe("dataset", run.config.data.name) if run.config.data else "the data")
    network = run.create(run.config.model, data.spec)
    if not isinstance(network, nn.Module):
        raise PipelineError(f"model {run.config.model.name!r} returned {type(network).__name__}, not an nn.Module")
    run.model = nn.Sequential(OrderedDict(preprocess=data.preprocess, network=network)).to(run.device)
    rows = data.splits["train"].head(2).inputs.to(run.device)
    outputs = check_model_outputs(run.model, data.spec, rows, owner=registry.describe("model", run.config.model.name))
    remember_model_check(run, data.spec, outputs[-1])  # pipeline validate answers from it, without torch


#: history.csv's last columns, where every epoch's row ends (the val_ columns of a run that validates
#: every N epochs come before them, as in a run that validates every epoch)
HISTORY_LAST = ("lr", "seconds")


def train(run: RunContext) -> None:
    """Fit the model on the train split (validation each epoch, checkpoints, resumable, signal-safe),
    then keep the history, the weights and what training did in the run folder."""

    from pipeline_core.engine import fit

    model = run.require_model("train")
    try:
        run.training = fit(run)
    finally:
        if run.history:
            run.write_csv(RunFiles.HISTORY, run.history, last=HISTORY_LAST)
    run.write_file(RunFiles.WEIGHTS, lambda temp: temp.write_bytes(_serialized(model.state_dict())))
    run.write_json(RunFiles.TRAINING, run.training.as_dict())


def evaluate(run: RunContext) -> None:
    """Compute the configured metrics on every split (the test split is the headline), then draw the
    registered plots (unless ``evaluate.plots = false``)."""
    from pipeline_core.engine import Evaluator, draw_plots

    data, model = run.require_data("evaluate"), run.require_model("evaluate")
    split_name = run.config.evaluate.split
    if split_name not in data.splits:
        raise PipelineError(f"evaluate.split is {split_name!r} but the data has splits {sorted(data.splits)}")
    evaluator = Evaluator.for_run(run, data.spec.task)
    ordered = [split_name] + [name for name in ("train", "validation", "test") if name in data.splits and name != split_name]
    for name in ordered:
        run.metrics[name] = evaluator(model, data.splits[name].to(run.device))
    run.write_json(RunFiles.METRICS, run.metrics)
    if run.config.evaluate.plots:
        draw_plots(run)



def _serialized(state: dict[str, object]) -> bytes:
    """``torch.save``'s bytes, made in memory and then written by Python: torch's own file writer aborts
    the process (a C++ exception in a destructor) when the disk fills up, where a Python write raises
    an error the run reports ("No space left on device; the previous file is untouched")."""
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()

@hookimpl
def register_stages(register: Register) -> None:
    register("load_data", load_data, provides=("data",))
    register("build_model", build_model, needs=("data",), provides=("model",))
    register("train", train, needs=("data", "model"), provides=("training",))
    register("evaluate", evaluate, needs=("data", "model"), provides=("metrics",))
