"""What every section of the pipeline file shares: problems phrased for a person, and a component's
table checked against the registry.

Each table of the file has its schema in a module of its own, named for it (``pipeline_section``,
``data_section``, ``train_section``, ``evaluate_section``, ``export_section``, ``sweep_section``): a
pydantic model used as it is (the trainer takes the validated :class:`TrainSection`, the export
stage the :class:`ExportSection`; nothing copies their fields into look-alike classes). A component
table (``[data]``, ``[train.optimizer]``, an exporter, a stage's options) is checked against the
registry that the validation context carries (``model_validate(raw, context={"registry": registry})``),
and every problem is raised as a pydantic error whose message is already phrased for a person
(:func:`problem`), so all of them are gathered in one :class:`pydantic.ValidationError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
from pydantic import PlainValidator, ValidationInfo
from pydantic_core import InitErrorDetails, PydanticCustomError

from pipeline_core.components.options import to_plain
from pipeline_core.components.registry import Registry

#: the stages of a pipeline whose ``[pipeline]`` names none
DEFAULT_STAGES = ("load_data", "build_model", "train", "evaluate", "export")
#: history columns where a larger value is better (``mode = "auto"`` of early stopping, a sweep's direction)
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
    if name is None and len(defaults := registry.defaults(kind)) == 1:
        name = defaults[0].name  # options without a name (`--set train.optimizer.lr=0.1`) are the registered default's
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


def stages_in(info: ValidationInfo) -> list[str]:
    """The stage list of the file being validated (the default while ``[pipeline] stages`` is unread or invalid)."""
    return (info.context or {}).get("stages", list(DEFAULT_STAGES))
