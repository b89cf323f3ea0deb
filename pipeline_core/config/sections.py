"""The sections of a pipeline file as pydantic schemas: one schema per concept, used as it is.

The trainer takes the validated :class:`TrainSection` and the export stage the :class:`ExportSection`;
nothing copies their fields into look-alike classes. A component table (``[data]``,
``[train.optimizer]``, an exporter, a stage's options) is checked against the registry that the
validation context carries (``model_validate(raw, context={"registry": registry})``), and every
problem is raised as a pydantic error whose message is already phrased for a person
(:func:`problem`), so all of them are gathered in one :class:`pydantic.ValidationError`.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import AfterValidator, Field, PlainValidator, ValidationInfo, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from pipeline_core.components.options import STRICT, to_plain
from pipeline_core.components.registry import Registry

DEFAULT_STAGES = ("load_data", "build_model", "train", "evaluate", "export")
DEFAULT_FORMATS = ("onnx", "torchscript", "torch_export")
#: history columns where a larger value is better (``mode = "auto"`` of early stopping)
MAXIMIZED = ("accuracy", "f1", "precision", "recall", "r2")
#: the error type of a problem phrased here; ``ctx["path"]``, when present, is where it is in the file
PROBLEM = "pipeline_problem"

Path_ = tuple[str | int, ...]


def problem(message: str, path: Path_ | None = None) -> PydanticCustomError:
    """One problem, already phrased; ``path`` (from the file's root) overrides where pydantic found it."""
    context: dict[str, Any] = {"message": message}
    if path is not None:
        context["path"] = path
    return PydanticCustomError(PROBLEM, "{message}", context)


def problems(found: Iterable[tuple[Path_, PydanticCustomError]], value: Any) -> pydantic.ValidationError:
    """Several problems at once, at paths relative to the value being validated."""
    details = [InitErrorDetails(type=error, loc=loc, input=value) for loc, error in found]
    return pydantic.ValidationError.from_exception_data("pipeline file", details)


@dataclass(frozen=True)
class ComponentConfig:
    """A component chosen in the pipeline file: its kind, its name and its validated options."""

    kind: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)

    def as_table(self) -> dict[str, Any]:
        return {"name": self.name, **to_plain(self.options)}

    def resolved_options(self, root: Path) -> dict[str, Any]:
        """The options as the component is called with them: an option annotated ``pathlib.Path``
        that is relative starts at ``root`` (the pipeline file's folder), wherever the command runs."""
        return {name: root / value if isinstance(value, Path) and not value.is_absolute() else value for name, value in self.options.items()}


def registry_of(info: ValidationInfo) -> Registry:
    context = info.context or {}
    if "registry" not in context:
        raise problem("components are validated against a registry: pass context={'registry': ...}")
    return context["registry"]


Found = list[tuple[Path_, PydanticCustomError]]


def check_component(
    kind: str, table: Any, registry: Registry, options_path: Path_ | None = None
) -> tuple[ComponentConfig | None, Found]:
    """A component table ``{name = ..., option = ...}`` checked against the registry and the
    component's own options schema: the config, or ``None`` and every problem found (at paths
    relative to the table). ``options_path`` (from the file's root) is where the options stand when
    that is not beside the name: an exporter's ``[export.<format>]`` table."""
    if not isinstance(table, dict):
        return None, [((), problem(f"expected a table with a 'name' and the {kind}'s options, got {table!r}"))]
    options = dict(table)
    name = options.pop("name", None)
    if name is None:
        return None, [((), problem(f"missing 'name': which {kind}? (available: {', '.join(registry.names(kind))})"))]
    if not isinstance(name, str) or name not in registry.components[kind]:
        return None, [(("name",), problem(registry.unknown_message(kind, str(name))))]
    chosen = registry.get(kind, name)
    values, found = chosen.options.validate(options)
    messages = [(item.path, item.message) for item in found] or [((), message) for message in chosen.problems(values)]
    if not messages:
        return ComponentConfig(kind, name, values), []
    tag = f"[{kind} {name!r}]"
    return None, [
        (path, problem(f"{message} {tag}", None if options_path is None else options_path + path)) for path, message in messages
    ]


def component(kind: str, missing: str = "", needed_by: str = "") -> PlainValidator:
    """Validates a component field (default ``None``, validated) against the registry in the
    validation context. Absent, it is an error saying ``missing`` (``{names}``: the registered
    ones), if the stage ``needed_by`` runs (any stage, when empty); without ``missing`` it is
    optional. A :class:`ComponentConfig` passes as it is (a section built in code)."""

    def check(value: Any, info: ValidationInfo) -> ComponentConfig | None:
        if isinstance(value, ComponentConfig):
            return value
        registry = registry_of(info)
        if value is None:
            if missing and (not needed_by or needed_by in stages_in(info)):
                raise problem(missing.format(names=", ".join(registry.names(kind))))
            return None
        config, found = check_component(kind, value, registry)
        if config is None:
            raise problems(found, value)
        return config

    return PlainValidator(check)


def required_table(section: str, value: Any) -> Any:
    """``value`` if it is a table; ``[section] = 3`` is an error."""
    if not isinstance(value, dict):
        raise problem(f"expected a table [{section}], got {value!r}")
    return value


def _device(value: str) -> str:
    head, _, index = value.partition(":")
    if value in ("auto", "cpu", "cuda", "mps") or (head == "cuda" and index.isdigit()):
        return value
    raise ValueError("expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")


def stages_in(info: ValidationInfo) -> list[str]:
    """The stage list of the file being validated (the default while ``[pipeline] stages`` is unread or invalid)."""
    return (info.context or {}).get("stages", list(DEFAULT_STAGES))


class PipelineSection(pydantic.BaseModel):
    """``[pipeline]``: what the run is called, its seed, its stages, its plugins, where it runs."""

    model_config = STRICT
    name: str = ""
    description: str = ""
    seed: int = 0
    stages: list[str] = list(DEFAULT_STAGES)
    plugins: list[str] = []
    disable_plugins: list[str] = []  # built-in or entry-point plugins to leave out of this pipeline
    device: Annotated[str, AfterValidator(_device)] = "cpu"
    threads: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    base_dir: str | None = None  # where relative paths in the file start, relative to the file (default: its folder)

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, stages: list[str], info: ValidationInfo) -> list[str]:
        registry = registry_of(info)
        if info.context is not None:
            info.context["stages"] = stages  # the other sections depend on what the file runs
        if not stages:
            raise problem(f"no stages: a pipeline runs at least one (the default: {', '.join(DEFAULT_STAGES)})")
        unknown = [(i, problem(registry.unknown_message("stage", s))) for i, s in enumerate(stages) if s not in registry.components["stage"]]
        if unknown:
            raise problems([((index,), error) for index, error in unknown], stages)
        misplaced = stage_order_problems(stages, registry)
        if misplaced:
            raise problems([((index,), problem(message)) for index, message in misplaced], stages)
        return stages


def stage_order_problems(stages: list[str], registry: Registry) -> list[tuple[int, str]]:
    """Each stage whose ``needs`` no stage before it ``provides`` (by index), with the stages that
    would: ``train`` before ``build_model`` can never run. A stage that declares nothing is not checked."""
    found: list[tuple[int, str]] = []
    provided: set[str] = set()
    for index, name in enumerate(stages):
        stage = registry.get("stage", name)
        missing = [need for need in stage.needs if need not in provided]
        if missing:
            fixes = []
            for need in missing:
                providers = [other for other in registry.names("stage") if need in registry.get("stage", other).provides]
                fixes.append(" or ".join(map(repr, providers)) if providers else f"a stage that provides {need!r} (none is registered)")
            found.append((index, f"stage {name!r} needs {' and '.join(map(repr, missing))}, which no stage before it "
                                 f"provides: put {' and '.join(fixes)} before it"))
        provided.update(stage.provides)
    return found


class EarlyStoppingSection(pydantic.BaseModel):
    """``[train.early_stopping]``: stop when ``monitor`` (a history column) has not improved by more
    than ``min_delta`` for ``patience`` epochs; optionally put the best epoch's weights back."""

    model_config = STRICT
    monitor: str = "val_loss"
    mode: Literal["auto", "min", "max"] = "auto"  # auto: max for accuracy, f1, precision, recall, r2
    patience: Annotated[int, Field(ge=1)] = 10
    min_delta: Annotated[float, Field(ge=0)] = 0.0
    restore_best: bool = True

    @property
    def direction(self) -> Literal["min", "max"]:
        """``mode`` with ``auto`` resolved from the monitored column's name."""
        if self.mode != "auto":
            return self.mode
        return "max" if any(name in self.monitor for name in MAXIMIZED) else "min"

    def improved(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        return value < best - self.min_delta if self.direction == "min" else value > best + self.min_delta


class TrainSection(pydantic.BaseModel):
    """``[train]``: how the loop iterates and steps, what it optimizes, how it checkpoints and stops.
    The trainer takes this section as it is."""

    model_config = STRICT
    epochs: Annotated[int, Field(ge=1)]
    batch_size: Annotated[int, Field(ge=1)] | Literal["full"]
    shuffle: bool = True
    drop_last: bool = False
    accumulate_batches: Annotated[int, Field(ge=1)] = 1
    clip_grad_norm: Annotated[float, Field(gt=0)] | None = None
    precision: Literal["32", "bf16", "fp16"] = "32"
    compile: bool = False
    compile_backend: str = "inductor"
    strategy: Literal["single", "ddp"] = "single"  # ddp: DistributedDataParallel over several processes
    nproc_per_node: Annotated[int, Field(ge=1)] = 1  # processes `pipeline run` starts on this node for ddp
    sync_batchnorm: bool = False  # ddp on CUDA: BatchNorm statistics over the global batch (SyncBatchNorm)
    # a checkpoint every N epochs (0: none by count), and whenever this many seconds passed since the
    # last one; always one at the end. Short runs of fast epochs pay for one checkpoint, long runs lose
    # at most a minute of work.
    checkpoint_every: Annotated[int, Field(ge=0)] = 0
    checkpoint_seconds: Annotated[float, Field(gt=0)] = 60.0
    keep_checkpoints: Annotated[int, Field(ge=1)] = 2
    optimizer: Annotated[ComponentConfig, component("optimizer", "missing table [train.optimizer] (name one of: {names})")] = Field(
        None, validate_default=True
    )
    loss: Annotated[ComponentConfig, component("loss", "missing table [train.loss] (name one of: {names})")] = Field(
        None, validate_default=True
    )
    scheduler: Annotated[ComponentConfig | None, component("scheduler")] = None
    early_stopping: EarlyStoppingSection | None = None

    def batch_bounds(self, rows: int) -> tuple[int, int]:
        """The batch size for a split of ``rows`` rows (``"full"``: all of them) and the row where the
        last batch ends (``drop_last`` drops a short tail)."""
        size = rows if self.batch_size == "full" else self.batch_size
        return size, rows - rows % size if self.drop_last and rows > size else rows

    def steps_per_epoch(self, rows: int) -> int:
        """Optimizer steps an epoch takes over ``rows`` rows."""
        size, end = self.batch_bounds(rows)
        return math.ceil(math.ceil(end / size) / self.accumulate_batches)


class EvaluateSection(pydantic.BaseModel):
    """``[evaluate]``: the headline split and the metrics (empty: the defaults for the data's task)."""

    model_config = STRICT
    split: str = "test"
    metrics: list[Annotated[ComponentConfig, component("metric")]] = []

    @field_validator("metrics", mode="before")
    @classmethod
    def _metric_tables(cls, value: Any) -> Any:
        if not isinstance(value, list):
            raise problem(f"expected a list of metric names or tables, got {value!r}")
        return [{"name": item} if isinstance(item, str) else item for item in value]  # a bare name is short for {name = ...}


Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]*$")]
PROBABILITIES = "probabilities"
#: the optimized variants of the ONNX model ``[export.optimize] variants`` may name
Variant = Literal["optimized", "int8_dynamic", "int8_static", "fp16"]
VARIANTS: tuple[str, ...] = typing.get_args(Variant)
#: the key under ``[export]`` that holds the variants; every other sub-table is an exporter's options
OPTIMIZE = "optimize"


class VariantGate(pydantic.BaseModel):
    """The accuracy gate every variant passes on the whole test split before it ships, against the
    float32 ONNX model: a classifier may lose at most ``max_accuracy_drop`` points of accuracy (0.5:
    half a percentage point); a regressor's outputs may differ from float32's by at most
    ``max_relative_error`` of their spread (RMS difference / standard deviation of float32's outputs,
    per output column). A variant that fails is left out of the bundle with the reason, or fails the
    run when ``required``."""

    model_config = STRICT
    required: bool = False
    max_accuracy_drop: Annotated[float, Field(ge=0)] = 0.5
    max_relative_error: Annotated[float, Field(ge=0)] = 0.01


class OptimizedVariant(VariantGate):
    """``[export.optimize.optimized]``: onnxruntime's offline graph optimization at ``level``
    (``all`` adds layout changes tied to this machine's CPU; onnxruntime advises ``extended`` offline)."""

    level: Literal["basic", "extended", "all"] = "extended"


class Int8DynamicVariant(VariantGate):
    """``[export.optimize.int8_dynamic]``: int8 weights, activations quantized at run time."""

    weight_type: Literal["int8", "uint8"] = "int8"
    per_channel: bool = False
    preprocess: bool = True  # onnxruntime's quant_pre_process (shape inference, graph optimization) first


class Int8StaticVariant(VariantGate):
    """``[export.optimize.int8_static]``: int8 weights and activations (QDQ format), activation ranges
    calibrated on ``calibration_rows`` rows of the training split (never the test split)."""

    calibration_method: Literal["minmax", "entropy", "percentile"] = "minmax"
    calibration_rows: Annotated[int, Field(ge=1)] = 512
    per_channel: bool = False
    preprocess: bool = True


class Fp16Variant(VariantGate):
    """``[export.optimize.fp16]``: float16 weights and arithmetic, float32 inputs and outputs kept."""


class OptimizeSection(pydantic.BaseModel):
    """``[export.optimize]``: which variants of ``model.onnx`` to build, gate and ship, each with its
    options in ``[export.optimize.<variant>]``."""

    model_config = STRICT
    variants: list[Variant] = []
    optimized: OptimizedVariant = OptimizedVariant()
    int8_dynamic: Int8DynamicVariant = Int8DynamicVariant()
    int8_static: Int8StaticVariant = Int8StaticVariant()
    fp16: Fp16Variant = Fp16Variant()

    @field_validator("variants")
    @classmethod
    def _once_each(cls, variants: list[str]) -> list[str]:
        repeated = sorted({name for name in variants if variants.count(name) > 1})
        if repeated:
            raise problem(f"{', '.join(map(repr, repeated))} listed more than once")
        return variants

    def options(self, variant: str) -> VariantGate:
        """The options of ``variant`` (one of :data:`VARIANTS`)."""
        return getattr(self, variant)


class ExportSection(pydantic.BaseModel):
    """``[export]``: the formats (each with its options in ``[export.<format>]``), the criterion every
    exported file is checked by, the names of the exported model's input and outputs, and the
    optimized variants of the ONNX model (``[export.optimize]``)."""

    model_config = STRICT
    formats: list[ComponentConfig] = Field(list(DEFAULT_FORMATS), validate_default=True)
    # |export - eager| <= atol + rtol*|eager| + noise_factor*noise (pipeline_core.export.verification)
    atol: Annotated[float, Field(ge=0)] = 1e-6
    rtol: Annotated[float, Field(ge=0)] = 1e-6
    noise_factor: Annotated[float, Field(ge=0)] = 4.0
    check_batch_sizes: list[Annotated[int, Field(ge=1)]] = [1, 2, 7]
    dynamic_batch: bool = True
    probabilities: bool = True
    input_name: Name = "input"
    output_name: Name | Literal[""] = ""  # empty: "logits" for classifiers, "prediction" for regression
    optimize: OptimizeSection | None = None  # variants of model.onnx, each gated on the test split

    @property
    def variants(self) -> list[str]:
        """The variants ``[export.optimize]`` asks for (none without that table)."""
        return list(self.optimize.variants) if self.optimize else []

    @field_validator("optimize", mode="before")
    @classmethod
    def _optimize_table(cls, value: Any) -> Any:
        return value if value is None else required_table(f"export.{OPTIMIZE}", value)

    @model_validator(mode="before")
    @classmethod
    def _exporter_tables(cls, raw: Any, info: ValidationInfo) -> Any:
        """``[export.<format>]`` tables hold each exporter's options; they are read with the formats."""
        if isinstance(raw, dict) and info.context is not None:
            raw = dict(raw)
            tables = [key for key in raw if isinstance(raw[key], dict) and key != OPTIMIZE]
            info.context["exporter_tables"] = {key: raw.pop(key) for key in tables}
        return raw

    @field_validator("formats", mode="plain")
    @classmethod
    def _formats(cls, formats: Any, info: ValidationInfo) -> list[ComponentConfig]:
        if isinstance(formats, list) and all(isinstance(f, ComponentConfig) for f in formats):
            return formats  # a section built in code
        registry = registry_of(info)
        tables: dict[str, Any] = (info.context or {}).get("exporter_tables", {})
        found: Found = [((), problem(registry.unknown_message("exporter", name), ("export", name)))
                        for name in tables if name not in registry.components["exporter"]]
        if not isinstance(formats, list) or not all(isinstance(f, str) for f in formats):
            found.append(((), problem(f"expected a list of exporter names, got {formats!r}")))
            formats = []
        chosen = []
        for index, name in enumerate(formats):
            config, errors = check_component("exporter", {**tables.get(name, {}), "name": name}, registry, ("export", name))
            chosen.append(config)
            found += [((index, *path), error) for path, error in errors]
        if found:
            raise problems(found, formats)
        return chosen

    @model_validator(mode="after")
    def _variants_need_a_batch_axis(self) -> ExportSection:
        if self.variants and not self.dynamic_batch:
            raise problem(
                "variants are checked on the whole test split and timed at batch 1 and 1024, which needs "
                "export.dynamic_batch = true", ("export", OPTIMIZE, "variants"),
            )
        return self

    def output_names(self, task: str) -> tuple[str, ...]:
        """The exported model's outputs: the raw one (``logits`` or ``prediction`` unless named) and,
        for classifiers with ``probabilities``, ``probabilities``."""
        raw = self.output_name or ("prediction" if task == "regression" else "logits")
        return (raw, PROBABILITIES) if self.probabilities and task != "regression" else (raw,)
