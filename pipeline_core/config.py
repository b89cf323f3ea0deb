"""TOML → a validated, typed pipeline config.

Everything is checked before any data is loaded: the host's own sections against their schemas,
every component ``name`` against the registry, and every component's options against its typed
signature. All problems are gathered and reported together, each with the file, the line where
possible, the dotted key path, what was expected, and the closest valid name.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import AfterValidator, Field

from pipeline_core.errors import ConfigError
from pipeline_core.options import STRICT, Problem, Schema, suggest, to_plain
from pipeline_core.registry import Registry
from pipeline_core.toml_lines import key_lines, line_of

DEFAULT_STAGES = ("load_data", "build_model", "train", "evaluate", "export")
#: The section a built-in stage reads; a stage in the list makes its section required.
STAGE_SECTIONS = {"load_data": "data", "build_model": "model", "train": "train"}
SECTIONS = ("pipeline", "data", "model", "train", "evaluate", "export", "stages")


def _device(value: str) -> str:
    head, _, index = value.partition(":")
    if value in ("auto", "cpu", "cuda", "mps") or (head == "cuda" and index.isdigit()):
        return value
    raise ValueError("expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")


@dataclass(frozen=True)
class ComponentConfig:
    """A component chosen in the TOML file: its kind, its name and its validated options."""

    kind: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)

    def as_table(self) -> dict[str, Any]:
        return {"name": self.name, **to_plain(self.options)}


class PipelineSection(pydantic.BaseModel):
    model_config = STRICT
    name: str = ""
    description: str = ""
    seed: int = 0
    stages: list[str] = list(DEFAULT_STAGES)
    plugins: list[str] = []
    disable_plugins: list[str] = []  # built-in or entry-point plugins to leave out of this pipeline
    device: Annotated[str, AfterValidator(_device)] = "cpu"
    threads: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"


class EarlyStoppingSection(pydantic.BaseModel):
    model_config = STRICT
    monitor: str = "val_loss"
    mode: Literal["auto", "min", "max"] = "auto"  # auto: max for accuracy, f1, precision, recall, r2
    patience: Annotated[int, Field(ge=1)] = 10
    min_delta: Annotated[float, Field(ge=0)] = 0.0
    restore_best: bool = True


class TrainSection(pydantic.BaseModel):
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
    # a checkpoint every N epochs (0: none by count), and whenever this many seconds passed since the
    # last one; always one at the end. Short runs of fast epochs pay for one checkpoint, long runs lose
    # at most a minute of work.
    strategy: Literal["single", "ddp"] = "single"  # ddp: DistributedDataParallel over several processes
    nproc_per_node: Annotated[int, Field(ge=1)] = 1  # processes `pipeline run` starts on this node for ddp
    sync_batchnorm: bool = False  # ddp on CUDA: BatchNorm statistics over the global batch (SyncBatchNorm)
    checkpoint_every: Annotated[int, Field(ge=0)] = 0
    checkpoint_seconds: Annotated[float, Field(gt=0)] = 60.0
    keep_checkpoints: Annotated[int, Field(ge=1)] = 2
    optimizer: ComponentConfig
    loss: ComponentConfig
    scheduler: ComponentConfig | None = None
    early_stopping: EarlyStoppingSection | None = None


class EvaluateSection(pydantic.BaseModel):
    model_config = STRICT
    split: str = "test"
    metrics: list[ComponentConfig]


Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]*$")]
DEFAULT_FORMATS = ("onnx", "torchscript", "torch_export")


class ExportSection(pydantic.BaseModel):
    model_config = STRICT
    formats: list[ComponentConfig]
    # |export - eager| <= atol + rtol*|eager| + noise_factor*noise (pipeline_core.verification)
    atol: Annotated[float, Field(ge=0)] = 1e-6
    rtol: Annotated[float, Field(ge=0)] = 1e-6
    noise_factor: Annotated[float, Field(ge=0)] = 4.0
    check_batch_sizes: list[Annotated[int, Field(ge=1)]] = [1, 2, 7]
    dynamic_batch: bool = True
    probabilities: bool = True
    input_name: Name = "input"
    output_name: Name | Literal[""] = ""  # empty: "logits" for classifiers, "prediction" for regression


@dataclass(frozen=True)
class PipelineConfig:
    """A validated pipeline: typed sections, chosen components, and where it came from."""

    source: Path
    pipeline: PipelineSection
    data: ComponentConfig | None
    model: ComponentConfig | None
    train: TrainSection | None
    evaluate: EvaluateSection
    export: ExportSection
    stage_options: dict[str, dict[str, Any]]
    overrides: tuple[str, ...] = ()
    base_dir: Path | None = None  # where relative paths in the file start; default: the file's folder

    @property
    def root(self) -> Path:
        """The folder relative paths in this config are resolved from."""
        return self.base_dir if self.base_dir is not None else self.source.parent

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
        return table


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
        node = table
        for depth, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                prefix = ".".join(path[: depth + 1])
                raise ConfigError(f"--set {item!r}: {prefix} is a value, not a table, so it has no key {path[depth + 1]!r}")
            node = child
        node[path[-1]] = value


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


class _Checker:
    """Collects problems with their full key paths while the sections are validated."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.problems: list[Problem] = []

    def add(self, path: tuple[str | int, ...], message: str) -> None:
        self.problems.append(Problem(path, message))

    def component(
        self, kind: str, table: Any, path: tuple[str | int, ...], options_path: tuple[str | int, ...] | None = None
    ) -> ComponentConfig:
        """A component table ``{name = ..., option = ...}`` checked against the registry."""
        placeholder = ComponentConfig(kind, "?")
        if not isinstance(table, dict):
            self.add(path, f"expected a table with a 'name' and the {kind}'s options, got {table!r}")
            return placeholder
        options = dict(table)
        name = options.pop("name", None)
        if name is None:
            available = ", ".join(self.registry.names(kind))
            self.add(path, f"missing 'name': which {kind}? (available: {available})")
            return placeholder
        if not isinstance(name, str) or name not in self.registry.components[kind]:
            self.add(path + ("name",), self.registry.unknown_message(kind, str(name)))
            return placeholder
        component = self.registry.get(kind, name)
        values, problems = component.options.validate(options)
        for problem in problems:
            self.add((options_path or path) + problem.path, f"{problem.message} [{kind} {name!r}]")
        for message in component.problems(values) if not problems else []:
            self.add(options_path or path, f"{message} [{kind} {name!r}]")
        return ComponentConfig(kind, name, values)

    def section(self, schema: Schema, values: dict[str, Any], path: tuple[str, ...]) -> Any:
        validated, problems = schema.validate_model(values)
        for problem in problems:
            self.add(path + problem.path, problem.message)
        return validated


def _table(raw: dict[str, Any], key: str, checker: _Checker) -> dict[str, Any] | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        checker.add((key,), f"expected a table [{key}], got {value!r}")
        return None
    return dict(value)


def validate(
    raw: dict[str, Any],
    registry: Registry,
    source: Path,
    text: str = "",
    overrides: tuple[str, ...] = (),
    base_dir: Path | None = None,
) -> PipelineConfig:
    """The typed config, or a :class:`ConfigError` listing every problem with file, line and key."""
    check = _Checker(registry)
    for key in raw:
        if key not in SECTIONS:
            hint = suggest(key, SECTIONS)
            check.add((key,), f"unknown section{'; ' + hint if hint else ''} (valid sections: {', '.join(SECTIONS)})")

    pipeline_raw = _table(raw, "pipeline", check) or {}
    pipeline_raw.setdefault("name", source.stem)
    pipeline = check.section(Schema(PipelineSection), pipeline_raw, ("pipeline",))
    stages = pipeline.stages if pipeline else list(DEFAULT_STAGES)
    for index, stage in enumerate(stages):
        if stage not in registry.components["stage"]:
            check.add(("pipeline", "stages", index), registry.unknown_message("stage", stage))

    def required_component(section: str, kind: str, stage: str) -> ComponentConfig | None:
        if section in raw:
            return check.component(kind, raw[section], (section,))
        if stage in stages:
            check.add((section,), f"missing section [{section}] (stage {stage!r} needs it; choose one of: "
                      f"{', '.join(registry.names(kind))})")
        return None

    data = required_component("data", "dataset", "load_data")
    model = required_component("model", "model", "build_model")

    train = None
    train_raw = _table(raw, "train", check)
    if train_raw is not None:
        for key in ("optimizer", "loss", "scheduler"):
            if key in train_raw:
                train_raw[key] = check.component(key, train_raw[key], ("train", key))
            elif key != "scheduler":
                check.add(("train", key), f"missing table [train.{key}] (name one of: {', '.join(registry.names(key))})")
                train_raw[key] = ComponentConfig(key, "?")
        train = check.section(Schema(TrainSection), train_raw, ("train",))
    elif "train" in stages:
        check.add(("train",), "missing section [train] (stage 'train' needs epochs, batch_size, optimizer and loss)")

    evaluate_raw = _table(raw, "evaluate", check) or {}
    metrics = evaluate_raw.get("metrics", [])  # empty: the defaults for the data's task
    if not isinstance(metrics, list):
        check.add(("evaluate", "metrics"), f"expected a list of metric names or tables, got {metrics!r}")
        metrics = []
    evaluate_raw["metrics"] = [  # a bare name is short for {name = ...}
        check.component("metric", {"name": m} if isinstance(m, str) else m, ("evaluate", "metrics", i))
        for i, m in enumerate(metrics)
    ]
    evaluate = check.section(Schema(EvaluateSection), evaluate_raw, ("evaluate",))

    export_raw = _table(raw, "export", check) or {}
    exporter_options = {k: export_raw.pop(k) for k in list(export_raw) if isinstance(export_raw[k], dict)}
    for name in exporter_options:
        if name not in registry.components["exporter"]:
            check.add(("export", name), registry.unknown_message("exporter", name))
    formats = export_raw.get("formats", list(DEFAULT_FORMATS))
    if not isinstance(formats, list) or not all(isinstance(f, str) for f in formats):
        check.add(("export", "formats"), f"expected a list of exporter names, got {formats!r}")
        formats = []
    export_raw["formats"] = [
        check.component("exporter", {**exporter_options.get(f, {}), "name": f}, ("export", "formats", i), ("export", f))
        for i, f in enumerate(formats)
    ]
    export = check.section(Schema(ExportSection), export_raw, ("export",))

    stage_options: dict[str, dict[str, Any]] = {}
    stages_raw = _table(raw, "stages", check) or {}
    for name, options in stages_raw.items():
        if name not in registry.components["stage"]:
            check.add(("stages", name), registry.unknown_message("stage", name))
        elif not isinstance(options, dict):
            check.add(("stages", name), f"expected a table of options for stage {name!r}, got {options!r}")
        else:
            stage_options[name] = options
    for name in stages:
        if name in registry.components["stage"]:
            stage = check.component("stage", {**stage_options.get(name, {}), "name": name}, ("stages", name))
            if stage.options:
                stage_options[name] = stage.options

    if check.problems:
        overridden = {parse_override(item)[0] for item in overrides}
        raise ConfigError(_format(check.problems, source, text, overridden))
    return PipelineConfig(source, pipeline, data, model, train, evaluate, export, stage_options, overrides, base_dir)


def dotted(path: tuple[str | int, ...]) -> str:
    """``("evaluate", "metrics", 1, "name")`` → ``evaluate.metrics[1].name``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _format(problems: list[Problem], source: Path, text: str, overridden: set[tuple[str, ...]]) -> list[str]:
    lines = key_lines(text)
    messages = []
    for problem in problems:
        keys = tuple(str(p) for p in problem.path if not isinstance(p, int))
        if any(keys[: len(o)] == o for o in overridden):
            where = f"--set {dotted(problem.path)}"
        else:
            line = line_of(lines, problem.path)
            where = f"{source}:{line}: {dotted(problem.path)}" if line else f"{source}: {dotted(problem.path)}"
        messages.append(f"{where}: {problem.message}")
    return messages
