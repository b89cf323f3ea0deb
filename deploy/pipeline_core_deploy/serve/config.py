"""Which bundles to serve and how to batch each: command-line arguments and an optional TOML file.

On the command line a bundle is ``PATH`` or ``NAME[:VERSION]=PATH``. A file (``--config``) sets
defaults and per-model options in Triton's terms::

    [defaults]                  # every model, unless its own table says otherwise
    max_batch_size = 64
    max_queue_delay_us = 200
    verify_key = "keys/team.pub"       # serve only bundles signed by this key (relative to this file)

    [[models]]
    bundle = "artifacts/iris/latest"   # relative to this file
    name = "iris"                      # default: the bundle's pipeline name
    version = "2"                      # default: metadata, else the folder's name if it is a number, else 1
    variant = "int8_dynamic"           # one of the bundle's optimized variants (default: model.onnx)
    max_batch_size = 16
    range_check = "refuse"             # rows outside the training range: "flag" (default) or "refuse" (HTTP 400)
    range_margin = 0.25                # how far outside, as a fraction of the range (default 0.5)

Precedence, weakest first: built-in defaults, the file's ``[defaults]``, the command line's flags
(``--verify-key``, ``--variant`` and ``--range-check`` among them), a model's own table.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline_core_deploy.predict import RANGE_CHECKS, RANGE_MARGIN, DeployError
from pipeline_core_deploy.serve.batching import BatchingConfig
from pipeline_core_deploy.serve.models import ModelSpec

BATCHING_KEYS = {f.name: f.type for f in dataclasses.fields(BatchingConfig)}
MODEL_KEYS = {"bundle", "name", "version", "variant"}
KEY_OPTION = "verify_key"
RANGE_KEYS = ("range_check", "range_margin")
_NAMED = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)(?::(?P<version>[A-Za-z0-9_.-]+))?=(?P<path>.+)$")


def parse_bundle_argument(argument: str) -> ModelSpec:
    """``PATH`` or ``NAME[:VERSION]=PATH`` (a path that exists as written always wins)."""
    match = _NAMED.match(argument)
    if match is None or Path(argument).exists():
        return ModelSpec(Path(argument))
    return ModelSpec(Path(match["path"]), match["name"], match["version"])


def _batching(table: Mapping[str, Any], where: str, base: BatchingConfig) -> BatchingConfig:
    values = {}
    for key, value in table.items():
        if key in MODEL_KEYS or key == KEY_OPTION or key in RANGE_KEYS:
            continue
        if key not in BATCHING_KEYS:
            raise DeployError(f"{where}: unknown key {key!r}; valid keys: {', '.join([*sorted(MODEL_KEYS), *BATCHING_KEYS, KEY_OPTION, *RANGE_KEYS])}")
        expected = bool if key == "dynamic_batching" else int
        if type(value) is not expected:
            raise DeployError(f"{where}: {key} must be {expected.__name__}, got {value!r} ({type(value).__name__})")
        values[key] = value
    try:
        return dataclasses.replace(base, **values)
    except ValueError as error:
        raise DeployError(f"{where}: {error}") from None


def _range(table: Mapping[str, Any], where: str, base: tuple[str, float]) -> tuple[str, float]:
    """``range_check`` ("flag" or "refuse") and ``range_margin`` (a number, at least 0) of a table, else ``base``'s."""
    check, margin = table.get("range_check", base[0]), table.get("range_margin", base[1])
    if check not in RANGE_CHECKS:
        raise DeployError(f"{where}: range_check must be one of {', '.join(map(repr, RANGE_CHECKS))}, got {check!r}")
    if type(margin) not in (int, float) or not margin >= 0 or margin == float("inf"):
        raise DeployError(f"{where}: range_margin must be a number of at least 0 (a fraction of each feature's training range), got {margin!r}")
    return check, float(margin)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeployError(f"configuration file not found: {path}") from None
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise DeployError(f"{path}: {error}") from None
    unknown = set(document) - {"defaults", "models"}
    if unknown:
        raise DeployError(f"{path}: unknown table(s) {sorted(unknown)}; expected [defaults] and [[models]]")
    return document


def _key(table: Mapping[str, Any], where: str, config_file: Path | None, default: Path | None) -> Path | None:
    """``verify_key`` of a table in the file (relative to the file), else ``default``."""
    if KEY_OPTION not in table:
        return default
    value = table[KEY_OPTION]
    if not isinstance(value, str) or not value:
        raise DeployError(f"{where}: {KEY_OPTION} must be the path of a public key file, got {value!r}")
    path = Path(value).expanduser()
    return path if path.is_absolute() or config_file is None else config_file.parent / path


def model_specs(bundles: Sequence[str], config_file: Path | None = None, flags: Mapping[str, Any] | None = None,
                verify_key: Path | None = None, variant: str | None = None, repository: Path | None = None) -> list[ModelSpec]:
    """Every bundle to serve with its batching, its range check and the key its signature must verify
    with: from the file's ``[[models]]`` and the arguments (``flags`` holds the batching and range options
    of the command line, None where not given). With a model ``repository``, none is needed."""
    document = _read_file(config_file) if config_file is not None else {}
    template = default_spec(document, config_file, flags, verify_key, variant)
    specs = [dataclasses.replace(template, path=spec.path, name=spec.name, version=spec.version)
             for spec in map(parse_bundle_argument, bundles)]
    models = document.get("models", [])
    if not isinstance(models, list):
        raise DeployError(f"{config_file}: 'models' must be an array of tables ([[models]])")
    for number, table in enumerate(models, start=1):
        where = f"{config_file}: [[models]] entry {number}"
        if not isinstance(table, dict) or not isinstance(table.get("bundle"), str):
            raise DeployError(f"{where}: needs bundle = \"PATH\" (relative to the file)")
        for key in ("name", "version", "variant"):
            if key in table and not isinstance(table[key], str | int):
                raise DeployError(f"{where}: {key} must be a string, got {table[key]!r}")
        path = Path(table["bundle"]).expanduser()
        assert config_file is not None
        specs.append(ModelSpec(
            path if path.is_absolute() else config_file.parent / path,
            str(table["name"]) if "name" in table else None,
            str(table["version"]) if "version" in table else None,
            _batching(table, where, template.batching),
            _key(table, where, config_file, template.verify_key),
            str(table["variant"]) if "variant" in table else variant,
            *_range(table, where, (template.range_check, template.range_margin)),
        ))
    if not specs and repository is None:
        raise DeployError("no bundle to serve: name one or more BUNDLE folders, [[models]] in --config, or --model-repository DIR")
    return specs


def default_spec(document: Mapping[str, Any], config_file: Path | None = None, flags: Mapping[str, Any] | None = None,
                 verify_key: Path | None = None, variant: str | None = None) -> ModelSpec:
    """What a model gets when nothing names it (a bundle argument, or a folder of the model
    repository, one found at start or loaded later): the built-in defaults, then the file's
    ``[defaults]``, then the command line's flags."""
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    batching = _batching(document.get("defaults", {}), f"{config_file}: [defaults]", BatchingConfig())
    batching = _batching({k: v for k, v in given.items() if k not in RANGE_KEYS}, "command line", batching)
    ranges = _range(document.get("defaults", {}), f"{config_file}: [defaults]", ("flag", RANGE_MARGIN))
    ranges = _range({k: v for k, v in given.items() if k in RANGE_KEYS}, "command line", ranges)
    key = verify_key or _key(document.get("defaults", {}), f"{config_file}: [defaults]", config_file, None)
    return ModelSpec(Path(), batching=batching, verify_key=key, variant=variant, range_check=ranges[0], range_margin=ranges[1])


def template(config_file: Path | None = None, flags: Mapping[str, Any] | None = None, verify_key: Path | None = None,
             variant: str | None = None) -> ModelSpec:
    """:func:`default_spec` of the configuration file and the command line: what a model folder added
    to the model repository later is loaded with."""
    return default_spec(_read_file(config_file) if config_file is not None else {}, config_file, flags, verify_key, variant)
