"""``[pipeline]``: what the run is called, its seed, its stages (checked in order against what each
needs), its plugins, where it runs."""

from __future__ import annotations

from typing import Annotated, Literal

import pydantic
from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from pipeline_core.components.options import STRICT
from pipeline_core.components.registry import Registry
from pipeline_core.config.common import DEFAULT_STAGES, problem, problems, registry_of

__all__ = ["DEFAULT_STAGES", "PipelineSection", "stage_order_problems"]


def _device(value: str) -> str:
    head, _, index = value.partition(":")
    if value in ("auto", "cpu", "cuda", "mps") or (head == "cuda" and index.isdigit()):
        return value
    raise ValueError("expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")


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
