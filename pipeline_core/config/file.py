"""TOML → a validated, typed pipeline config.

Everything is checked before any data is loaded, by one pydantic model, :class:`PipelineConfig`,
validated with the registry in its context: the host's own sections against their schemas, every
component ``name`` against the registry, and every component's options against its typed signature.
All problems are gathered and reported together, each with the file, the line where possible, the
dotted key path, what was expected, and the closest valid name.
"""

from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any

import pydantic
from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from pipeline_core.components.options import STRICT, Problem, Schema, narrowest, suggest, to_plain
from pipeline_core.components.registry import Registry
from pipeline_core.config.common import (
    PROBLEM,
    ComponentConfig,
    Found,
    check_component,
    component,
    problem,
    problems,
    registry_of,
    required_table,
    stages_in,
)
from pipeline_core.config.data_section import DataComponent, dataset_component
from pipeline_core.config.evaluate_section import EvaluateSection
from pipeline_core.config.export_section import ExportSection
from pipeline_core.config.pipeline_section import PipelineSection
from pipeline_core.config.sweep_section import SweepSection, check_against_file
from pipeline_core.config.toml_lines import key_lines, line_of
from pipeline_core.config.train_section import TrainSection
from pipeline_core.errors import ConfigError

#: ``[data]`` and ``[model]``: components, required when the stage that reads them runs
DATA = dataset_component("missing section [data] (stage 'load_data' needs it; choose one of: {names})", "load_data")
MODEL = component("model", "missing section [model] (stage 'build_model' needs it; choose one of: {names})", "build_model")


class PipelineConfig(pydantic.BaseModel):
    """A validated pipeline file: typed sections, chosen components, and where it came from.

    ``PipelineConfig.model_validate(table, context={"registry": registry})`` validates a parsed file
    (:func:`validate` adds file names, lines and ``--set`` blame to the messages)."""

    model_config = STRICT
    pipeline: PipelineSection = Field(default_factory=dict, validate_default=True)  # type: ignore[arg-type]
    data: Annotated[DataComponent | None, DATA] = Field(None, validate_default=True)
    model: Annotated[ComponentConfig | None, MODEL] = Field(None, validate_default=True)
    train: TrainSection | None = Field(None, validate_default=True)
    evaluate: EvaluateSection = Field(default_factory=dict, validate_default=True)  # type: ignore[arg-type]
    export: ExportSection = Field(default_factory=dict, validate_default=True)  # type: ignore[arg-type]
    stage_options: dict[str, dict[str, Any]] = Field(default_factory=dict, validation_alias="stages", validate_default=True)
    sweep: SweepSection | None = None  # `pipeline sweep` searches it; not part of a run's resolved config
    trackers: dict[str, ComponentConfig] = Field(default_factory=dict, validate_default=True)

    _source: Path = PrivateAttr(Path("pipeline.toml"))
    _overrides: tuple[str, ...] = PrivateAttr(())
    _base_dir: Path | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _keep_table(cls, value: Any, info: ValidationInfo) -> Any:
        """The file as read: [sweep] parameters are checked by setting their values into it."""
        if isinstance(value, dict) and info.context is not None:
            info.context["table"] = value
        return value

    @model_validator(mode="after")
    def _sweep_against_file(self, info: ValidationInfo) -> PipelineConfig:
        """Every value a [sweep] parameter may take must pass as ``--set`` would; the objective must
        be a validation metric; the data must have a validation split."""
        if self.sweep is None:
            return self
        context = info.context or {}
        table = context.get("table", {})
        metrics = [metric.name for metric in self.evaluate.metrics] or registry_of(info).names("metric")
        found = check_against_file(
            self.sweep, lambda path, value: _problems_with(table, path, value, context), self.pipeline.stages, metrics,
            self.data.options if self.data else None, lambda path: _holds(table, path),
        )
        train = self.train
        if train is not None and self.sweep.report_every % train.validate_every:
            found.append((("sweep", "report_every"), problem(
                f"the pruner is told the objective every {self.sweep.report_every} epochs, but train.validate_every = "
                f"{train.validate_every} scores the validation split only every {train.validate_every}: make report_every "
                "a multiple of validate_every"
            )))
        if found:
            raise problems(found, table)
        return self

    @field_validator("pipeline", mode="before")
    @classmethod
    def _pipeline_table(cls, value: Any, info: ValidationInfo) -> Any:
        value = required_table("pipeline", value)
        return {"name": (info.context or {}).get("default_name", ""), **value}

    @field_validator("train", mode="before")
    @classmethod
    def _train_table(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and "train" in stages_in(info):
            raise problem("missing section [train] (stage 'train' needs epochs, batch_size, optimizer and loss)")
        return value if value is None else required_table("train", value)

    @field_validator("evaluate", "export", mode="before")
    @classmethod
    def _tables(cls, value: Any, info: ValidationInfo) -> Any:
        return required_table(str(info.field_name), value)

    @field_validator("stage_options", mode="plain")
    @classmethod
    def _stage_options(cls, value: Any, info: ValidationInfo) -> dict[str, dict[str, Any]]:
        """``[stages.<name>]`` tables: the options of every listed stage, checked against its signature."""
        registry = registry_of(info)
        value = required_table("stages", value)
        found: Found = []
        options: dict[str, dict[str, Any]] = {}
        for name, table in value.items():
            if name not in registry.components["stage"]:
                found.append(((name,), problem(registry.unknown_message("stage", name))))
            elif not isinstance(table, dict):
                found.append(((name,), problem(f"expected a table of options for stage {name!r}, got {table!r}")))
            else:
                options[name] = table
        for name in stages_in(info):
            if name in registry.components["stage"]:
                stage, errors = check_component("stage", {**options.get(name, {}), "name": name}, registry)
                found += [((name, *path), error) for path, error in errors]
                if stage is not None and stage.options:
                    options[name] = stage.options
        if found:
            raise problems(found, value)
        return options

    @field_validator("trackers", mode="plain")
    @classmethod
    def _trackers(cls, value: Any, info: ValidationInfo) -> dict[str, ComponentConfig]:
        """``[trackers.<name>]`` tables: each switches a registered tracker on, with its options
        checked against the tracker's signature."""
        registry = registry_of(info)
        value = required_table("trackers", value)
        found: Found = []
        chosen: dict[str, ComponentConfig] = {}
        for name, table in value.items():
            if isinstance(table, ComponentConfig):
                chosen[name] = table
            elif name not in registry.components["tracker"]:
                found.append(((name,), problem(registry.unknown_message("tracker", name))))
            elif not isinstance(table, dict):
                found.append(((name,), problem(f"expected a table of options for tracker {name!r}, got {table!r}")))
            elif "name" in table:
                found.append(((name, "name"), problem(f"a tracker is named by its table, [trackers.{name}]: drop 'name'")))
            else:
                tracker, errors = check_component("tracker", {**table, "name": name}, registry)
                found += [((name, *path), error) for path, error in errors]
                if tracker is not None:
                    chosen[name] = tracker
        if found:
            raise problems(found, value)
        return chosen

    @property
    def source(self) -> Path:
        """The pipeline file this config was read from."""
        return self._source

    @property
    def overrides(self) -> tuple[str, ...]:
        """The ``--set KEY=VALUE`` items applied to the file."""
        return self._overrides

    @property
    def base_dir(self) -> Path | None:
        """Where relative paths in the file start, when not the file's folder (a run folder's config)."""
        return self._base_dir

    @property
    def root(self) -> Path:
        """The folder relative paths in this config are resolved from."""
        return self._base_dir if self._base_dir is not None else declared_root(self._source, self.pipeline.base_dir)

    @property
    def name(self) -> str:
        return self.pipeline.name

    def sha256(self) -> str:
        """A hash of the resolved config: two runs with the same hash were configured identically."""
        canonical = json.dumps(self.resolved(), sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def resolved(self) -> dict[str, Any]:
        """The whole config with every default filled in: what ``config.toml`` in a run folder holds."""
        table: dict[str, Any] = {"pipeline": to_plain(self.pipeline)}
        if self.data:
            table["data"] = self.data.as_table()
        if self.model:
            table["model"] = self.model.as_table()
        if self.train:
            components = {key: getattr(self.train, key) for key in ("optimizer", "loss", "scheduler")}
            train = to_plain(self.train.model_copy(update=dict.fromkeys(components)))
            table["train"] = {**train, **{key: c.as_table() for key, c in components.items() if c is not None}}
        evaluate = to_plain(self.evaluate.model_copy(update={"metrics": None}))
        table["evaluate"] = {**evaluate, "metrics": [m.as_table() for m in self.evaluate.metrics]}
        export = to_plain(self.export.model_copy(update={"formats": None}))
        export["formats"] = [f.name for f in self.export.formats]
        export.update({f.name: to_plain(f.options) for f in self.export.formats if f.options})
        table["export"] = export
        if self.stage_options:
            table["stages"] = to_plain(self.stage_options)
        if self.trackers:
            table["trackers"] = {name: to_plain(tracker.options) for name, tracker in self.trackers.items()}
        return table


SECTIONS = ("pipeline", "data", "model", "train", "evaluate", "export", "stages", "sweep", "trackers")


def _holds(table: dict[str, Any], path: tuple[str | int, ...]) -> bool:
    node: Any = table
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _problems_with(table: dict[str, Any], path: tuple[str, ...], value: Any, context: dict[str, Any]) -> list[str]:
    """The problems of the file (without [sweep]) with ``value`` set at ``path``, as ``--set`` sets it."""
    changed = copy.deepcopy({key: item for key, item in table.items() if key != "sweep"})
    try:
        set_value(changed, path, value)
        PipelineConfig.model_validate(
            changed, strict=True, context={"registry": context["registry"], "default_name": context.get("default_name", "")}
        )
    except ConfigError as error:
        return error.problems
    except pydantic.ValidationError as error:
        return [f"{dotted(item.path)}: {item.message}" for item in _problems(error)]
    return []


# ---------------------------------------------------------------------------------------------
# Reading the file and applying overrides


def read_toml(path: Path) -> tuple[dict[str, Any], str]:
    """The parsed table and the text, or a :class:`ConfigError` saying what is wrong with the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such pipeline file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the pipeline file: {error}") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None


def parse_override(item: str) -> tuple[tuple[str, ...], Any]:
    """``train.epochs=10`` → (("train", "epochs"), 10). The value is read as TOML (so ``10`` is an
    int, ``"10"`` a string, ``[64, 32]`` a list); a bare word that is not TOML is taken as a string."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    path = tuple(part.strip() for part in key.split("."))
    if not sep or not key or not all(path):
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE with a dotted key, e.g. train.epochs=10")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return path, value


def apply_overrides(table: dict[str, Any], overrides: tuple[str, ...]) -> None:
    """Set each ``KEY=VALUE`` into ``table`` (in place)."""
    for item in overrides:
        path, value = parse_override(item)
        try:
            set_value(table, path, value)
        except ConfigError as error:
            raise ConfigError(f"--set {item!r}: {error}") from None


def set_value(table: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Put ``value`` at the dotted key ``path`` of ``table`` (in place), making tables on the way."""
    node = table
    for depth, part in enumerate(path[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(path[: depth + 1])} is a value, not a table, so it has no key {path[depth + 1]!r}")
        node = child
    node[path[-1]] = value


def declared_root(source: Path, base_dir: Any) -> Path:
    """Where relative paths of the file ``source`` start: its ``[pipeline] base_dir`` (relative to
    the file's folder), else that folder."""
    return source.parent / base_dir if isinstance(base_dir, str) and base_dir else source.parent


def plugin_references(table: dict[str, Any], source: Path, key: str = "plugins") -> list[str]:
    """``[pipeline] plugins`` (or ``disable_plugins``), read before the registry exists: they decide
    which plugins fill it."""
    plugins = table.get("pipeline", {}).get(key, []) if isinstance(table.get("pipeline"), dict) else []
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        what = "module names or .py paths" if key == "plugins" else "plugin names"
        raise ConfigError(f"{source}: pipeline.{key}: expected a list of {what}, got {plugins!r}")
    return plugins


# ---------------------------------------------------------------------------------------------
# Validation


def validate(
    raw: dict[str, Any],
    registry: Registry,
    source: Path,
    text: str = "",
    overrides: tuple[str, ...] = (),
    base_dir: Path | None = None,
) -> PipelineConfig:
    """The typed config, or a :class:`ConfigError` listing every problem with file, line and key."""
    context = {"registry": registry, "default_name": source.stem}
    try:
        config = PipelineConfig.model_validate(raw, strict=True, context=context)
    except pydantic.ValidationError as error:
        overridden = {parse_override(item)[0] for item in overrides}
        raise ConfigError(_format(_problems(error), source, text, overridden)) from None
    config._source, config._overrides, config._base_dir = source, overrides, base_dir
    return config


_SCHEMA = Schema(PipelineConfig)


def _problems(error: pydantic.ValidationError) -> list[Problem]:
    """Each pydantic error as a problem phrased for a person; unknown sections first."""
    sections, found = [], []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        if item["type"] == PROBLEM:
            found.append(Problem(tuple(item["ctx"].get("path", loc)), item["ctx"]["message"]))
        elif item["type"] == "extra_forbidden" and len(loc) == 1:
            hint = suggest(str(loc[0]), SECTIONS)
            sections.append(Problem(loc, f"unknown section{'; ' + hint if hint else ''} (valid sections: {', '.join(SECTIONS)})"))
        else:
            found.append(_SCHEMA.phrase(item))
    return narrowest(sections + found)


def dotted(path: tuple[str | int, ...]) -> str:
    """``("evaluate", "metrics", 1, "name")`` → ``evaluate.metrics[1].name``."""
    out = ""
    for part in path:
        name = f'"{part}"' if isinstance(part, str) and "." in part else str(part)  # a [sweep] parameter's key
        out += f"[{part}]" if isinstance(part, int) else (f".{name}" if out else name)
    return out


def _format(found: list[Problem], source: Path, text: str, overridden: set[tuple[str, ...]]) -> list[str]:
    """``file:line: dotted.key: message``, or ``--set dotted.key: message`` where an override put the value."""
    lines = key_lines(text)
    messages = []
    for item in found:
        keys = tuple(str(p) for p in item.path if not isinstance(p, int))
        if any(keys[: len(o)] == o for o in overridden):
            where = f"--set {dotted(item.path)}"
        else:
            line = line_of(lines, item.path)
            where = f"{source}:{line}: {dotted(item.path)}" if line else f"{source}: {dotted(item.path)}"
        messages.append(f"{where}: {item.message}")
    return messages

