"""The model fits the data: checked once, before anything trains, by one dry forward pass.

A model whose last layer is sized by hand (7 logits for 3 classes) would otherwise train, export and
ship, and fail only in the report or on a deployer's machine; one whose input is empty (a feature
list that selects nothing) would train on nothing. The ``build_model`` stage runs the built model on
two rows of the training split and compares its outputs with what the data needs: multiclass
``(N, classes)``, binary ``(N, 1)``, regression ``(N, outputs)``. ``pipeline validate`` does the same
from a dataset's ``spec`` (:func:`check_from_spec`), without loading data, and answers from
:mod:`pipeline_core.model.check_cache` when the same check passed before: torch is imported only when the
check runs.

The pass changes nothing: eval mode and no autograd, every module's training flag, every buffer
(BatchNorm statistics) and every random generator put back as they were, so a run and its
resumption are bit for bit what they would be without the check.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pipeline_core.data.spec import DatasetContext, DataSpec
from pipeline_core.errors import ConfigError, PipelineError, PluginError
from pipeline_core.model import check_cache

if TYPE_CHECKING:
    import torch
    from torch import nn

    from pipeline_core.components.host import Host
    from pipeline_core.config.file import PipelineConfig

#: rows of the dry pass: two, so a model that drops the batch axis of a single row is caught too
DRY_ROWS = 2


def _shape(shape: tuple[int, ...] | torch.Size) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def needed_outputs(spec: DataSpec) -> tuple[int, str]:
    """How many outputs per row the data needs, and why, in words."""
    if spec.task == "multiclass":
        named = f": {', '.join(spec.classes[:10])}{', ...' if len(spec.classes) > 10 else ''}" if spec.classes else ""
        return spec.num_outputs, f"multiclass, one score per class ({spec.num_outputs} classes{named})"
    if spec.task == "binary":
        return 1, "binary, one logit per row"
    return spec.num_outputs, f"regression, {spec.num_outputs} target value(s) per row"


def check_data_spec(spec: DataSpec, *, owner: str = "the dataset") -> None:
    """Refuse data with nothing to learn from (an input dimension of size 0: a feature list or a
    filter that selects nothing) or a spec that contradicts its task; ``owner`` names the dataset."""
    if any(size < 1 for size in spec.input_shape):
        what = "no features" if len(spec.input_shape) == 1 else "an empty dimension"
        raise ConfigError(
            f"{owner} gives inputs of shape (N, {', '.join(map(str, spec.input_shape))}): {what}, so there is nothing to "
            "learn from; check the dataset's options (a feature list or a filter that selects nothing?)"
        )
    if spec.task == "binary" and spec.num_outputs != 1:
        raise PluginError(f"{owner} gives a binary DataSpec with num_outputs = {spec.num_outputs}; a binary task has one logit (num_outputs = 1)")
    if spec.task == "multiclass" and spec.classes and len(spec.classes) != spec.num_outputs:
        raise PluginError(
            f"{owner} gives a multiclass DataSpec with num_outputs = {spec.num_outputs} but {len(spec.classes)} class name(s); "
            "num_outputs is the number of classes, and classes names each of them"
        )
    if spec.task == "multiclass" and spec.num_outputs < 2:
        raise ConfigError(f"{owner} gives a multiclass task with {spec.num_outputs} class(es): nothing to tell apart; check its target")


@contextlib.contextmanager
def _untouched(model: nn.Module) -> Iterator[None]:
    """Eval mode and no autograd inside; outside, every training flag, buffer and RNG as before."""
    import numpy as np
    import torch

    modes = [(module, module.training) for module in model.modules()]
    buffers = [(buffer, buffer.detach().clone()) for buffer in model.buffers()]
    python_state, numpy_state = random.getstate(), np.random.get_state()
    cuda = sorted({t.device.index or 0 for t in [*model.parameters(), *model.buffers()] if t.device.type == "cuda"})
    try:
        with torch.random.fork_rng(devices=cuda), torch.no_grad():
            model.eval()
            yield
    finally:
        for module, training in modes:
            module.training = training
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def check_model_outputs(model: nn.Module, spec: DataSpec, inputs: torch.Tensor, *, owner: str = "the model") -> torch.Size:
    """Run ``model`` once on ``inputs`` (a few rows, on the model's device) without changing it, and
    refuse outputs that are not one tensor of shape ``(rows, outputs the data needs)``, or a model
    that cannot run on them, with a :class:`ConfigError` naming ``owner``, the shape it gave and the
    shape the data needs. Returns the outputs' shape."""
    import torch

    rows = len(inputs)
    try:
        with _untouched(model):
            outputs = model(inputs)
    except PipelineError:
        raise
    except Exception as error:
        first = (str(error).strip().splitlines() or [""])[0][:300]
        raise ConfigError(
            f"{owner} cannot run on {rows} rows of the data (inputs {_shape(tuple(inputs.shape))} "
            f"{str(inputs.dtype).removeprefix('torch.')}): {type(error).__name__}: {first}; build its layers from the DataSpec "
            f"(input_shape {_shape(spec.input_shape)})"
        ) from error
    count, why = needed_outputs(spec)
    needed = f"(N, {count}), here {_shape((rows, count))}: {why}"
    if not isinstance(outputs, torch.Tensor):
        raise ConfigError(f"{owner} returns {type(outputs).__name__}, not a tensor; the data needs one tensor of shape {needed}")
    if tuple(outputs.shape) != (rows, count):
        raise ConfigError(
            f"{owner} gives outputs of shape {_shape(tuple(outputs.shape))} for {rows} rows; the data needs {needed}. "
            f"Size the last layer from the DataSpec ({'1 for binary' if spec.task == 'binary' else f'spec.num_outputs = {spec.num_outputs}'})"
        )
    return outputs.shape


def _dry_inputs(spec: DataSpec) -> tuple[torch.Tensor, bool]:
    """Zeros shaped like the network's input, and whether their dtype is certain. A floating raw
    input reaches the network as it is (standardized); image pixels (uint8) reach it as floats from
    the preprocessing module; other integer inputs (indices) are guessed to pass unchanged."""
    import torch

    if spec.input_dtype.is_floating_point:
        return torch.zeros((DRY_ROWS, *spec.input_shape), dtype=spec.input_dtype), True
    dtype = torch.get_default_dtype() if spec.image is not None else spec.input_dtype
    return torch.zeros((DRY_ROWS, *spec.input_shape), dtype=dtype), False


def check_from_spec(config: PipelineConfig, host: Host) -> str:
    """``pipeline validate``'s model check: build the configured model from the dataset's ``spec``
    (no training; a spec reads at most what it needs, a table of typed columns whole) and check its
    outputs; raises like ``build_model`` would. Returns a line saying what was checked, or why it was
    not (the dataset has no ``spec``)."""
    if config.data is None or config.model is None or "build_model" not in config.pipeline.stages:
        return ""
    registry = host.registry
    dataset, model = registry.get("dataset", config.data.name), config.model.name
    if dataset.spec is None:
        return (f"model {model!r}: outputs checked when the run builds it (dataset {config.data.name!r} cannot say its "
                "shape without loading its data; `pipeline inspect` loads it and checks now)")
    data_owner = registry.describe("dataset", config.data.name)
    try:
        spec = dataset.spec(DatasetContext(config.pipeline.seed, config.root), **config.data.resolved_options(config.root))
    except PipelineError:
        raise
    except Exception as error:  # a bug in the plugin's spec, not in the pipeline file
        raise PluginError(f"the spec of {data_owner} raised {type(error).__name__}: {error}") from error
    if not isinstance(spec, DataSpec):
        raise PluginError(f"the spec of {data_owner} returned {type(spec).__name__}, not a DataSpec")
    check_data_spec(spec, owner=data_owner)
    count, why = needed_outputs(spec)
    passed = (f"model {model!r}: outputs (N, {count}) as the data needs: {why} (checked on the spec of dataset "
              f"{config.data.name!r}, before any training)")
    key = check_cache.model_check_key(config, host, spec)
    remembered = check_cache.recall(key)
    if remembered is not None and remembered["outputs"] == count:
        return passed
    from torch import nn

    network = registry.get("model", model).factory(spec, **config.model.resolved_options(config.root))
    if not isinstance(network, nn.Module):
        raise PipelineError(f"model {model!r} returned {type(network).__name__}, not an nn.Module")
    inputs, certain = _dry_inputs(spec)
    try:
        check_model_outputs(network, spec, inputs, owner=registry.describe("model", model))
    except ConfigError as error:
        if certain or not isinstance(error.__cause__, Exception):
            raise
        return f"model {model!r}: outputs checked when the run builds it (it does not run on zeros of dtype {inputs.dtype}: {error.__cause__})"
    check_cache.remember(key, count)
    return passed
