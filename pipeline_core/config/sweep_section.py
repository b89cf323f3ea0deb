"""The ``[sweep]`` section: what a hyperparameter search optimizes, for how long, how Optuna samples
and prunes, and the parameters it varies, named by the same dotted keys as ``--set``.

Torch- and Optuna-free: ``pipeline validate`` checks a sweep without importing either. The section's
own shape is checked here; :func:`check_against_file` then checks it against the rest of the file
(every value a parameter may take must pass validation as ``--set KEY=VALUE`` would, the objective
must be a metric of the validation split), so a bad search space stops before any trial runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

import pydantic
from pydantic import Field, field_validator, model_validator

from pipeline_core.components.options import STRICT, Schema, suggest
from pipeline_core.config.common import MAXIMIZED, Found, Path_, problem, problems

#: Where a parameter stands in the file: ``sweep.parameters."train.optimizer.lr"``
PARAMETERS = ("sweep", "parameters")
#: Keys a parameter may not vary: the plugins decide which components exist before anything is validated
FIXED_KEYS = {("pipeline", "plugins"): "plugins load before the file is validated", ("pipeline", "disable_plugins"): "plugins load before the file is validated"}


def inline_toml(value: Any, digits: int | None = None) -> str:
    """``value`` as a one-line TOML value: what a ``--set KEY=VALUE`` item holds, or with ``digits``
    significant digits for floats, what a report shows."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and digits is not None:
        return f"{value:.{digits}g}"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(inline_toml(item, digits) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {inline_toml(v, digits)}" for k, v in value.items()) + "}"
    raise TypeError(f"{type(value).__name__} is not a TOML value")


class FloatParameter(pydantic.BaseModel):
    """A real number in [low, high], on a log scale with ``log`` (Optuna's ``suggest_float``)."""

    model_config = STRICT
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: Annotated[float, Field(gt=0)] | None = None

    def problems(self) -> list[tuple[Path_, str]]:
        found: list[tuple[Path_, str]] = []
        if not self.low < self.high:
            found.append((("high",), f"high ({self.high!r}) must be above low ({self.low!r})"))
        if self.log and self.low <= 0:
            found.append((("low",), f"a log scale needs low > 0, got {self.low!r}"))
        if self.log and self.step is not None:
            found.append((("step",), "a log scale takes no step (Optuna draws log-uniformly)"))
        return found

    def ends(self) -> list[tuple[Path_, Any]]:
        """The values to check against the key's schema: both ends of the range."""
        return [(("low",), float(self.low)), (("high",), float(self.high))]

    def grid(self) -> list[Any] | None:
        if self.step is None:
            return None
        count = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        return [self.low + index * self.step for index in range(count)]


class IntParameter(pydantic.BaseModel):
    """An integer in [low, high] every ``step`` (Optuna's ``suggest_int``)."""

    model_config = STRICT
    type: Literal["int"]
    low: int
    high: int
    step: Annotated[int, Field(ge=1)] = 1
    log: bool = False

    def problems(self) -> list[tuple[Path_, str]]:
        found: list[tuple[Path_, str]] = []
        if not self.low < self.high:
            found.append((("high",), f"high ({self.high}) must be above low ({self.low})"))
        if self.log and self.low < 1:
            found.append((("low",), f"a log scale needs low >= 1, got {self.low}"))
        if self.log and self.step != 1:
            found.append((("step",), "a log scale takes step = 1 (Optuna draws log-uniformly)"))
        return found

    def ends(self) -> list[tuple[Path_, Any]]:
        return [(("low",), self.low), (("high",), self.high)]

    def grid(self) -> list[Any] | None:
        return list(range(self.low, self.high + 1, self.step))


class CategoricalParameter(pydantic.BaseModel):
    """One of ``choices``: any TOML values, lists (hidden sizes) and tables (a whole component) too."""

    model_config = STRICT
    type: Literal["categorical"]
    choices: Annotated[list[Any], Field(min_length=1)]

    def problems(self) -> list[tuple[Path_, str]]:
        labels = [inline_toml(choice) for choice in self.choices]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        return [(("choices",), f"{', '.join(repeated)} listed more than once")] if repeated else []

    def ends(self) -> list[tuple[Path_, Any]]:
        return [(("choices", index), choice) for index, choice in enumerate(self.choices)]

    def grid(self) -> list[Any] | None:
        return list(self.choices)


Parameter = FloatParameter | IntParameter | CategoricalParameter
PARAMETER_TYPES: dict[str, type[pydantic.BaseModel]] = {"float": FloatParameter, "int": IntParameter, "categorical": CategoricalParameter}

Seed = Annotated[int, Field(ge=0)] | None


class TpeSampler(pydantic.BaseModel):
    """Optuna's TPESampler: random for ``startup_trials``, then a model of the good and bad trials.
    Running trials count as bad (``constant_liar``), so parallel workers spread out."""

    model_config = STRICT
    name: Literal["tpe"]
    seed: Seed = None
    startup_trials: Annotated[int, Field(ge=0)] = 10
    multivariate: bool = False


class RandomSampler(pydantic.BaseModel):
    """Optuna's RandomSampler: independent uniform draws."""

    model_config = STRICT
    name: Literal["random"]
    seed: Seed = None


class GridSampler(pydantic.BaseModel):
    """Optuna's GridSampler: every combination once (floats need a ``step``)."""

    model_config = STRICT
    name: Literal["grid"]
    seed: Seed = None


class CmaEsSampler(pydantic.BaseModel):
    """Optuna's CmaEsSampler (the ``cmaes`` package) for numeric parameters; categorical ones are
    drawn at random."""

    model_config = STRICT
    name: Literal["cmaes"]
    seed: Seed = None
    startup_trials: Annotated[int, Field(ge=0)] = 1
    sigma0: Annotated[float, Field(gt=0)] | None = None


class MedianPruner(pydantic.BaseModel):
    """Optuna's MedianPruner: stop a trial whose reported value is worse than the median of the
    finished trials at the same epoch (after ``startup_trials`` finished and ``warmup_epochs``)."""

    model_config = STRICT
    name: Literal["median"]
    startup_trials: Annotated[int, Field(ge=0)] = 5
    warmup_epochs: Annotated[int, Field(ge=0)] = 0


class SuccessiveHalvingPruner(pydantic.BaseModel):
    """Optuna's SuccessiveHalvingPruner (asynchronous successive halving); resources are epochs."""

    model_config = STRICT
    name: Literal["successive_halving"]
    min_epochs: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    reduction_factor: Annotated[int, Field(ge=2)] = 4
    min_early_stopping_rate: Annotated[int, Field(ge=0)] = 0


class HyperbandPruner(pydantic.BaseModel):
    """Optuna's HyperbandPruner: several successive-halving brackets; resources are epochs."""

    model_config = STRICT
    name: Literal["hyperband"]
    min_epochs: Annotated[int, Field(ge=1)] = 1
    max_epochs: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    reduction_factor: Annotated[int, Field(ge=2)] = 3


class NoPruner(pydantic.BaseModel):
    """Every trial runs to its last epoch."""

    model_config = STRICT
    name: Literal["none"]


SamplerConfig = TpeSampler | RandomSampler | GridSampler | CmaEsSampler
PrunerConfig = MedianPruner | SuccessiveHalvingPruner | HyperbandPruner | NoPruner
SAMPLERS: dict[str, type[pydantic.BaseModel]] = {"tpe": TpeSampler, "random": RandomSampler, "grid": GridSampler, "cmaes": CmaEsSampler}
PRUNERS: dict[str, type[pydantic.BaseModel]] = {
    "median": MedianPruner, "successive_halving": SuccessiveHalvingPruner, "hyperband": HyperbandPruner, "none": NoPruner,
}


def _named(kind: str, value: Any, choices: dict[str, type[pydantic.BaseModel]]) -> Any:
    """``"tpe"`` or ``{name = "tpe", seed = 0}`` validated by the named model; problems at their keys."""
    table = {"name": value} if isinstance(value, str) else value
    if not isinstance(table, dict):
        raise problem(f"expected a {kind} name or a table with 'name' and its options, got {value!r}")
    name = table.get("name")
    if name not in choices:
        hint = suggest(str(name), choices)
        raise problems([(("name",) if isinstance(value, dict) else (), problem(
            f"unknown {kind} {name!r}{'; ' + hint if hint else ''} (choose one of: {', '.join(choices)})"))], value)
    validated, found = Schema(choices[name]).validate_model(table)
    if validated is None:
        raise problems([(item.path, problem(f"{item.message} [{kind} {name!r}]")) for item in found], value)
    return validated


class SweepSection(pydantic.BaseModel):
    """``[sweep]``: the objective (a validation metric), the budget, the sampler and pruner, and the
    parameters, keyed by the dotted keys ``--set`` takes."""

    model_config = STRICT
    objective: str
    direction: Literal["auto", "maximize", "minimize"] = "auto"  # auto: maximize accuracy, f1, precision, recall, r2
    trials: Annotated[int, Field(ge=1)] | None = None  # finished trials the study should hold (across every worker and restart)
    timeout: Annotated[float, Field(gt=0)] | None = None  # seconds from a command's start after which it starts no new trial
    sampler: SamplerConfig = Field("tpe", validate_default=True)  # type: ignore[assignment]
    pruner: PrunerConfig = Field("median", validate_default=True)  # type: ignore[assignment]
    report_every: Annotated[int, Field(ge=1)] = 1  # epochs between values reported to the pruner
    heartbeat_seconds: Annotated[int, Field(ge=1)] = 10  # a running trial's heartbeat; RDB storages only (--storage sqlite:///, postgresql://)
    grace_seconds: Annotated[int, Field(ge=1)] = 30  # RDB storages only: without a heartbeat this long, a trial is failed and tried again
    retries: Annotated[int, Field(ge=0)] = 1  # times a trial whose worker died is tried again
    parameters: dict[str, Parameter]

    @field_validator("sampler", mode="plain")
    @classmethod
    def _sampler(cls, value: Any) -> SamplerConfig:
        return _named("sampler", value, SAMPLERS)

    @field_validator("pruner", mode="plain")
    @classmethod
    def _pruner(cls, value: Any) -> PrunerConfig:
        return _named("pruner", value, PRUNERS)

    @field_validator("parameters", mode="plain")
    @classmethod
    def _parameters(cls, value: Any) -> dict[str, Parameter]:
        if not isinstance(value, dict) or not value:
            raise problem('expected a table of parameters, e.g. "train.optimizer.lr" = { type = "float", low = 1e-3, high = 1.0, log = true }')
        chosen: dict[str, Parameter] = {}
        found: Found = []
        for key, spec in value.items():
            kind = spec.get("type") if isinstance(spec, dict) else None
            if kind not in PARAMETER_TYPES:
                what = f"unknown type {kind!r}" if isinstance(spec, dict) and "type" in spec else "missing 'type'"
                hint = suggest(str(kind), PARAMETER_TYPES) if kind is not None else ""
                where = (key, "type") if isinstance(spec, dict) and "type" in spec else (key,)
                found.append((where, problem(f"{what}{'; ' + hint if hint else ''} (a parameter is a table with type = "
                                             f"{' | '.join(map(repr, PARAMETER_TYPES))} and its range or choices)")))
                continue
            validated, errors = Schema(PARAMETER_TYPES[kind]).validate_model(spec)
            if validated is None:
                found += [((key, *item.path), problem(item.message)) for item in errors]
                continue
            parameter: Parameter = validated  # type: ignore[assignment]
            found += [((key, *path), problem(message)) for path, message in parameter.problems()]
            chosen[key] = parameter
        if found:
            raise problems(found, value)
        return chosen

    @model_validator(mode="after")
    def _budget(self) -> SweepSection:
        found: Found = []
        if self.trials is None and self.timeout is None and self.sampler.name != "grid":
            found.append(((), problem("say how long to search: trials = N (finished trials in the study) and/or timeout = SECONDS")))
        if self.grace_seconds <= self.heartbeat_seconds:
            found.append((("grace_seconds",), problem(
                f"grace_seconds ({self.grace_seconds}) must exceed heartbeat_seconds ({self.heartbeat_seconds}), or live trials would be failed")))
        if self.sampler.name == "grid":
            found += [(("parameters", key, "step"), problem("the grid sampler needs a step for a float parameter (or make it categorical)"))
                      for key, parameter in self.parameters.items() if parameter.grid() is None]
        if found:
            raise problems(found, self)
        return self

    @property
    def metric(self) -> str:
        """The metric the objective names: ``val_accuracy`` → ``accuracy``."""
        return self.objective.removeprefix("val_")

    @property
    def resolved_direction(self) -> Literal["maximize", "minimize"]:
        """``direction`` with ``auto`` resolved from the metric's name, as early stopping does."""
        if self.direction != "auto":
            return self.direction
        return "maximize" if any(name in self.metric for name in MAXIMIZED) else "minimize"

    def grid_size(self) -> int:
        """How many trials the grid sampler has: every combination of every parameter's values."""
        return math.prod(len(parameter.grid() or []) for parameter in self.parameters.values())


#: ``check(path, value)`` → the problems of the file with ``value`` at the dotted key ``path``, each
#: already phrased ``dotted.key: message`` (an empty list: the value is accepted)
Check = Callable[[tuple[str, ...], Any], list[str]]


def check_against_file(
    sweep: SweepSection, check: Check, stages: list[str], metrics: list[str], data_options: dict[str, Any] | None, in_file: Callable[[Path_], bool]
) -> Found:
    """The problems of ``sweep`` against the rest of the file, at absolute paths.

    Every value a parameter may take (both ends of a range, every choice) is set into the file and
    validated with ``check``, as ``--set`` would be: a key that does not exist, or a value its
    schema refuses, is found here rather than in a trial. ``stages`` and ``metrics`` (the metric
    names ``[evaluate]`` scores; every registered one when it names none) decide whether the objective
    is a validation metric; ``data_options`` (the dataset's validated options) whether the data has
    a validation split; ``in_file(path)`` whether a key is written in the file (for its line)."""
    found: Found = []
    missing = [stage for stage in ("train", "evaluate") if stage not in stages]
    if missing:
        found.append((("pipeline", "stages"), problem(
            f"a sweep needs the stage(s) {', '.join(map(repr, missing))}: each trial is trained, then scored on the validation split")))
    found += _objective_problems(sweep, metrics)
    found += _validation_split_problems(sweep, data_options, in_file)
    for key, parameter in sweep.parameters.items():
        found += _parameter_problems(key, parameter, check)
    return found


def _objective_problems(sweep: SweepSection, metrics: list[str]) -> Found:
    columns = [f"val_{name}" for name in metrics]
    if sweep.objective in columns:
        return []
    split, _, name = sweep.objective.partition("_")
    hint = suggest(sweep.objective, columns) or (f"did you mean 'val_{name}'?" if f"val_{name}" in columns else "")
    why = (
        f"{sweep.objective!r} is scored on the {split} split; trials are scored on the validation split only "
        "(the test split is used once, on the best trial)" if split in ("test", "train") and name else
        f"{sweep.objective!r} is not a validation metric of this pipeline"
    )
    return [(("sweep", "objective"), problem(f"{why}{'; ' + hint if hint else ''} (choose one of: {', '.join(columns)})"))]


def _validation_split_problems(sweep: SweepSection, data_options: dict[str, Any] | None, in_file: Callable[[Path_], bool]) -> Found:
    """A dataset with a ``val_size`` option makes a validation split only when it is above 0."""
    if data_options is None or "val_size" not in data_options:
        return []
    searched = sweep.parameters.get("data.val_size")
    message = "a sweep scores each trial on the validation split, and val_size = 0 makes none; set data.val_size (e.g. 0.2)"
    if searched is not None:
        zero = any(value == 0 for _, value in searched.ends()) or (not isinstance(searched, CategoricalParameter) and searched.low <= 0)
        return [((*PARAMETERS, "data.val_size"), problem(message.replace("set data.val_size", "keep it above 0")))] if zero else []
    if data_options["val_size"] == 0:
        return [(("data", "val_size") if in_file(("data", "val_size")) else ("data",), problem(message))]
    return []


def _parameter_problems(key: str, parameter: Parameter, check: Check) -> Found:
    path = tuple(part.strip() for part in key.split("."))
    where = (*PARAMETERS, key)
    if not all(path):
        return [(where, problem(f"{key!r} is not a dotted key such as train.optimizer.lr"))]
    if path[0] == "sweep":
        return [(where, problem("a parameter cannot change the [sweep] table"))]
    if path in FIXED_KEYS:
        return [(where, problem(f"{key} cannot be a parameter: {FIXED_KEYS[path]}"))]
    results = [(at, value, check(path, value)) for at, value in parameter.ends()]
    if all(messages for _, _, messages in results) and len({tuple(messages) for _, _, messages in results}) == 1:
        return [(where, problem(message)) for message in results[0][2]]  # the key itself is wrong, whatever the value
    return [
        ((*where, *at), problem(f"{inline_toml(value)} is refused: {message}"))
        for at, value, messages in results for message in messages
    ]
