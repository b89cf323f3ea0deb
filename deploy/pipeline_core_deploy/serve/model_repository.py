"""Triton's model repository extension: list what the server can serve, load (or reload) a model,
unload one, while the server runs (``/v2/repository/index``, ``…/models/{name}/load``, ``…/unload``
and their gRPC twins).

A model is loaded from where it was configured: the bundles the command line and ``--config`` named
under that name, or, with ``--model-repository DIR``, the folder ``DIR/NAME``: a bundle itself (or a
run folder holding ``bundle/``), or Triton's layout, one bundle per numbered version folder
(``DIR/iris/1``, ``DIR/iris/2``). A folder added to DIR after the start is served once it is loaded.

A load verifies every bundle again (the signature too, with a key), opens it off the event loop, and
starts its batcher; only then do the new versions replace the old ones, in one step. The old
versions take no new request but finish every one they have queued or running
(:meth:`~pipeline_core_deploy.serve.batching.Batcher.retire`). A load that fails leaves the old
versions serving and says why (the index keeps the reason). Unloading works the same way: requests
in flight finish, new ones hear that the model is not loaded.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline_core_deploy import predict
from pipeline_core_deploy.common import BUNDLE_DIR, MANIFEST, METADATA, MODEL
from pipeline_core_deploy.serve.models import ModelSpec, Repository, ServedModel, by_version, open_models
from pipeline_core_deploy.serve.protocol import ProtocolError, bad_request

READY, UNAVAILABLE = "READY", "UNAVAILABLE"


def _model_path(folder: Path) -> Path | None:
    """What serves from ``folder``: the folder when it is a bundle (or a run folder holding one; also
    one whose manifest is gone, which opening then refuses), its ``model.onnx`` when that is a plain
    ONNX file with nothing of a bundle beside it (served unverified), else None."""
    if any((folder / name).is_file() for name in (MANIFEST, METADATA)) or (folder / BUNDLE_DIR / MANIFEST).is_file():
        return folder
    return folder / MODEL if (folder / MODEL).is_file() else None


def folder_specs(directory: Path, name: str, template: ModelSpec) -> list[ModelSpec]:
    """The models of ``name`` in the model repository ``directory``: ``DIR/NAME`` itself, or its
    numbered version folders. Raises :class:`predict.DeployError` when there is none."""
    folder = directory / name
    found = _model_path(folder)
    if found is not None:
        return [dataclasses.replace(template, path=found, name=name)]
    versions = sorted((sub for sub in folder.iterdir() if sub.is_dir() and sub.name.isdigit() and _model_path(sub)),
                      key=lambda sub: int(sub.name)) if folder.is_dir() else []
    if not versions:
        raise predict.DeployError(f"{folder}: not a model folder; expected a bundle (holding {MANIFEST}), a plain {MODEL}, or numbered "
                                  f"version folders holding either ({folder}/1/{MANIFEST})")
    return [dataclasses.replace(template, path=_model_path(sub) or sub, name=name, version=sub.name) for sub in versions]


def scan(directory: Path, template: ModelSpec) -> list[ModelSpec]:
    """Every model folder of ``directory`` (hidden folders and plain files are skipped)."""
    if not directory.is_dir():
        raise predict.DeployError(f"--model-repository {directory}: not a folder; expected a folder holding one folder per model")
    specs = []
    for folder in sorted(directory.iterdir()):
        if folder.is_dir() and not folder.name.startswith("."):
            specs += folder_specs(directory, folder.name, template)
    return specs


class ModelLoader:
    """Loads and unloads models of a running server. ``attach`` starts a new model's batcher on the
    server's inference threads; ``open_in_thread`` runs a blocking call off the event loop."""

    def __init__(self, repository: Repository, configured: list[ModelSpec], directory: Path | None, template: ModelSpec,
                 device: str = "cpu", threads: int = 1) -> None:
        self.repository, self.directory, self.template = repository, directory, template
        self.device, self.threads = device, threads
        #: the specs the command line and --config gave each name (DIR's folders are looked at anew each load)
        self._configured: dict[str, list[ModelSpec]] = {}
        for model in repository:
            if any(model.spec is spec for spec in configured):
                self._configured.setdefault(model.name, []).append(model.spec)
        self._reasons: dict[str, str] = {}  # why a name is not (or not freshly) served
        self._locks: dict[str, asyncio.Lock] = {}
        self._retiring: set[asyncio.Task[None]] = set()

    def specs(self, name: str) -> list[ModelSpec]:
        """Where ``name`` loads from, or a 400 naming where it was looked for."""
        if name in self._configured:
            return self._configured[name]
        if self.directory is not None and (self.directory / name).exists() and "/" not in name and not name.startswith("."):
            return folder_specs(self.directory, name, self.template)
        where = f"nor a folder of --model-repository {self.directory}" if self.directory is not None else "and the server has no --model-repository"
        raise bad_request(f"cannot load model {name!r}: no bundle was configured under that name, {where}; "
                          f"the server knows {self.known_names()}")

    def known_names(self) -> list[str]:
        names = set(self._configured) | set(self.repository.names())
        if self.directory is not None and self.directory.is_dir():
            names |= {f.name for f in self.directory.iterdir() if f.is_dir() and not f.name.startswith(".")}
        return sorted(names)

    async def load(self, name: str, attach: Callable[[ServedModel], None]) -> list[ServedModel]:
        """Load (or reload) every version of ``name``; the old versions retire once the new ones serve.
        A failure raises a 400 that says why, and the old versions go on serving."""
        async with self._locks.setdefault(name, asyncio.Lock()):
            try:
                specs = self.specs(name)
                loop = asyncio.get_running_loop()
                models = await loop.run_in_executor(None, open_models, specs, self.device, self.threads)
                for model in models:
                    if model.name != name:
                        raise predict.DeployError(f"{model.bundle.folder} serves as {model.name!r}, not {name!r}")
                by_version(models)
            except (predict.DeployError, OSError) as error:
                serving = " (the versions loaded before go on serving)" if self.repository.versions(name) else ""
                self._reasons[name] = f"the last load failed: {error}"
                raise bad_request(f"failed to load model {name!r}: {error}{serving}") from None
            for model in models:
                attach(model)
            self._retire(self.repository.replace(name, models))
            self._reasons.pop(name, None)
            return models

    async def unload(self, name: str) -> None:
        """Stop serving ``name``: requests already queued or running finish, later ones get 404."""
        async with self._locks.setdefault(name, asyncio.Lock()):
            old = self.repository.remove(name)
            if not old:
                raise bad_request(f"model {name!r} is not loaded; loaded: {self.repository.names()}")
            self._reasons[name] = "unloaded"
            self._retire(old)

    def _retire(self, models: list[ServedModel]) -> None:
        for model in models:
            if model.batcher is not None:
                task = asyncio.get_running_loop().create_task(model.batcher.retire())
                self._retiring.add(task)
                task.add_done_callback(self._retiring.discard)

    async def finish(self) -> None:
        """Wait for the retiring versions to finish their requests (at the server's stop)."""
        await asyncio.gather(*self._retiring, return_exceptions=True)

    def index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        """Triton's repository index: every version served (READY) and every other known name
        (UNAVAILABLE, with the reason)."""
        entries = []
        for name in self.known_names():
            versions = self.repository.versions(name)
            reason = self._reasons.get(name, "" if versions else "not loaded")
            if versions:
                entries += [{"name": name, "version": version, "state": READY, "reason": reason} for version in versions]
            elif not ready_only:
                entries.append({"name": name, "version": "", "state": UNAVAILABLE, "reason": reason})
        return entries


def no_parameters(parameters: Any, allowed: frozenset[str] = frozenset()) -> None:
    """Triton's load takes a ``config`` or ``file:`` override in ``parameters``; this server loads a
    bundle only as it was verified, so any such parameter is refused rather than ignored."""
    if parameters in (None, {}):
        return
    if not isinstance(parameters, dict):
        raise bad_request(f"'parameters' must be an object, got {type(parameters).__name__}")
    unknown = sorted(set(parameters) - allowed)
    if unknown:
        raise ProtocolError(400, f"parameters {unknown} are not supported: a model is loaded only from its verified bundle, "
                                 "as configured; change the bundle (and re-sign it) instead")
