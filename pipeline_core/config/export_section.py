"""``[export]``: the formats and their options, the criterion every exported file is checked by, the
exported model's input and output names, and the optimized variants of the ONNX model
(``[export.optimize]``), each gated on the test split."""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal

import pydantic
from pydantic import Field, ValidationInfo, field_validator, model_validator

from pipeline_core.components.options import STRICT
from pipeline_core.config.common import ComponentConfig, Found, check_component, problem, problems, registry_of, required_table

DEFAULT_FORMATS = ("onnx", "torchscript", "torch_export")
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
