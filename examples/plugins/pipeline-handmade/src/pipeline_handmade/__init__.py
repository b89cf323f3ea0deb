"""pipeline-handmade: an example third-party plugin for pipeline-core (see README.md)."""

from __future__ import annotations

from pipeline_core import Register, hookimpl
from pipeline_handmade.circles import circles
from pipeline_handmade.focal import focal
from pipeline_handmade.relu import handmade_mlp
from pipeline_handmade.timing import after_stage, before_stage

__all__ = ["after_stage", "before_stage", "register_datasets", "register_losses", "register_models"]


@hookimpl
def register_datasets(register: Register) -> None:
    register("circles", circles)


@hookimpl
def register_models(register: Register) -> None:
    register("handmade_mlp", handmade_mlp)


@hookimpl
def register_losses(register: Register) -> None:
    register("focal", focal)
