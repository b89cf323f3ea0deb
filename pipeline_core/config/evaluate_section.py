"""``[evaluate]``: the headline split and the metrics computed on every split."""

from __future__ import annotations

from typing import Annotated, Any

import pydantic
from pydantic import field_validator

from pipeline_core.components.options import STRICT
from pipeline_core.config.common import ComponentConfig, component, problem


class EvaluateSection(pydantic.BaseModel):
    """``[evaluate]``: the headline split and the metrics (empty: the defaults for the data's task)."""

    model_config = STRICT
    split: str = "test"
    metrics: list[Annotated[ComponentConfig, component("metric")]] = []
    plots: bool = True  # draw the registered plots (a sweep's trials do not: nobody looks at them)

    @field_validator("metrics", mode="before")
    @classmethod
    def _metric_tables(cls, value: Any) -> Any:
        if not isinstance(value, list):
            raise problem(f"expected a list of metric names or tables, got {value!r}")
        return [{"name": item} if isinstance(item, str) else item for item in value]  # a bare name is short for {name = ...}
