"""The search space as Optuna sees it: a trial's values drawn for every ``[sweep]`` parameter, and
the ``--set`` items that put them into the pipeline file.

Optuna keeps categorical choices that are numbers, strings or booleans; a list or a table (hidden
sizes, a whole optimizer) becomes its one-line TOML text, which also labels it in the report.
"""

from __future__ import annotations

from typing import Any

import optuna

from pipeline_core.config.sweep_section import (
    CategoricalParameter,
    FloatParameter,
    IntParameter,
    Parameter,
    SweepSection,
    inline_toml,
)

Scalar = bool | int | float | str


def labels(parameter: CategoricalParameter) -> list[Scalar]:
    """What Optuna stores for each choice: the choice itself, or its TOML text."""
    return [choice if isinstance(choice, (bool, int, float, str)) else inline_toml(choice) for choice in parameter.choices]


def suggest(trial: optuna.Trial, sweep: SweepSection) -> dict[str, Any]:
    """The trial's value of every parameter, by dotted key."""
    return {key: _suggest(trial, key, parameter) for key, parameter in sweep.parameters.items()}


def _suggest(trial: optuna.Trial, key: str, parameter: Parameter) -> Any:
    if isinstance(parameter, FloatParameter):
        return trial.suggest_float(key, parameter.low, parameter.high, step=parameter.step, log=parameter.log)
    if isinstance(parameter, IntParameter):
        return trial.suggest_int(key, parameter.low, parameter.high, step=parameter.step, log=parameter.log)
    stored = labels(parameter)
    return parameter.choices[stored.index(trial.suggest_categorical(key, stored))]


def values_of(sweep: SweepSection, params: dict[str, Any]) -> dict[str, Any]:
    """A finished trial's stored ``params`` as pipeline values (choices' labels mapped back)."""
    values = {}
    for key, stored in params.items():
        parameter = sweep.parameters.get(key)
        values[key] = parameter.choices[labels(parameter).index(stored)] if isinstance(parameter, CategoricalParameter) else stored
    return values


def overrides(values: dict[str, Any]) -> tuple[str, ...]:
    """``--set`` items that put ``values`` into the pipeline file."""
    return tuple(f"{key}={inline_toml(value)}" for key, value in values.items())


def grid(sweep: SweepSection) -> dict[str, list[Any]]:
    """The grid sampler's search space: every value of every parameter, as Optuna stores them."""
    return {
        key: labels(parameter) if isinstance(parameter, CategoricalParameter) else parameter.grid() or []
        for key, parameter in sweep.parameters.items()
    }
