"""What the server answers, apart from how a request travels: :class:`DataPlane`, the one object
every front end calls (the Starlette routes of app.py and the plain-ASGI hot routes of
hot_routes.py).

Why: the Open Inference Protocol has a REST and a gRPC binding, and what a request means is the
same in both: which model it names, whether the server is ready, how many rows one request may
hold, what the model answers, and which rows lie outside the training range. A front end decodes
a request, calls a method here, and encodes what it returns; a gRPC front end would call the same
methods with what it decoded from protobuf. (MLServer's ``mlserver/handlers/dataplane.py`` has the
same shape.) The lifecycle is here too: :meth:`DataPlane.running` starts the inference threads and
every model's batcher, and the server is ready only while they run. So are the model repository
extension (:meth:`DataPlane.load`, :meth:`DataPlane.unload`, :meth:`DataPlane.repository_index`,
through a :class:`~pipeline_core_deploy.serve.model_repository.ModelLoader`) and the statistics
extension (:meth:`DataPlane.statistics`): both front ends serve them from here.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from pipeline_core_deploy import __version__, predict
from pipeline_core_deploy.serve import MAX_BODY_BYTES, MAX_REQUEST_ROWS
from pipeline_core_deploy.serve.batching import Overloaded, Retired
from pipeline_core_deploy.serve.metrics import Metrics
from pipeline_core_deploy.serve.model_repository import ModelLoader
from pipeline_core_deploy.serve.models import Repository, ServedModel
from pipeline_core_deploy.serve.protocol import InferRequest, ProtocolError, bad_request
from pipeline_core_deploy.serve.statistics import merged

SERVER_NAME = "pipeline-core-deploy"
#: the v2 response parameter listing the rows (from 0) that lie outside the training range
OUT_OF_RANGE_ROWS = "out_of_range_rows"
EXTENSIONS = ["binary_tensor_data", "model_configuration", "model_repository", "statistics"]
#: what else runs while the data plane does (the gRPC server): entered once the models serve, left before they stop
Companion = Callable[[], Any]
T = TypeVar("T")
#: how often a request follows its model to a replacement before it is answered 503 (loads in quick succession)
RETIRED_RETRIES = 3
#: what decodes an ``…/infer`` request for the model it names (a front end's decoder, bound to the request)
Decoder = Callable[[ServedModel], InferRequest]


@dataclass(frozen=True)
class ServerSettings:
    """What applies to the whole server rather than to one model."""

    max_body_bytes: int = MAX_BODY_BYTES
    #: rows one request may hold: with the body limit, what bounds one request's memory
    max_request_rows: int = MAX_REQUEST_ROWS
    inference_threads: int = 2  # executor threads that call onnxruntime
    access_log: bool = True
    #: the bearer token every route and RPC but the health probes needs (None: none); never printed
    token: str | None = field(default=None, repr=False)
    #: origins a browser may call the REST routes from (CORS; empty: off)
    cors_origins: tuple[str, ...] = ()


def _reads_rows_alike(new: ServedModel, old: ServedModel) -> bool:
    """Whether rows read for ``old`` mean the same to ``new``: the same feature names, input shape,
    type and image description."""
    a, b = new.bundle, old.bundle
    return (a.feature_names, a.input_shape, a.input_dtype, a.metadata.get("image"), a.columns) == \
        (b.feature_names, b.input_shape, b.input_dtype, b.metadata.get("image"), b.columns)


class DataPlane:
    """The server's answers to the protocol's requests, for any front end. Errors are raised, not
    answered: a front end turns them into its own error shape (``hot_routes.answer_to`` for REST)."""

    def __init__(self, repository: Repository, settings: ServerSettings, metrics: Metrics, loader: ModelLoader | None = None) -> None:
        self.repository, self.settings, self.metrics = repository, settings, metrics
        self.loader = loader
        self._ready = False
        self._executor: ThreadPoolExecutor | None = None
        #: async context managers run inside :meth:`running` (another front end, such as the gRPC server)
        self.companions: list[Companion] = []
        #: with --workers, how this worker agrees with the others (serve/worker_sync.py); None alone
        self.sync: Any = None

    # -- health and metadata: no model runs -----------------------------------------------------

    def live(self) -> bool:
        """Whether the server process answers at all (it does, whenever this runs)."""
        return True

    def ready(self) -> bool:
        """Whether requests can be served: true from the start of :meth:`running` until its end, so a
        load balancer sends nothing before the batchers run or after the graceful stop begins."""
        return self._ready

    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}

    def model(self, name: str, version: str | None = None) -> ServedModel:
        """The model a request names (the newest version without one), or a 404 listing what is served."""
        return self.repository.get(name, version)

    def model_metadata(self, model: ServedModel) -> dict[str, Any]:
        return model.metadata(self.repository.versions(model.name))

    def model_ready(self, model: ServedModel) -> bool:
        """Whether ``model`` can be served: every model is, exactly while the server is ready."""
        return self._ready

    def model_config(self, model: ServedModel) -> dict[str, Any]:
        return model.config()

    def metrics_text(self) -> tuple[bytes, str]:
        """The Prometheus exposition and its media type."""
        return self.metrics.render(), self.metrics.content_type

    # -- inference ------------------------------------------------------------------------------

    def checked_rows(self, model: ServedModel, array: np.ndarray, source: str) -> np.ndarray:
        """``array`` checked as ``predict.py`` checks a file (the same messages, after ``source``), and
        refused when it holds more rows than one request may (what bounds one request's memory)."""
        rows = model.check(array, source)
        if len(rows) > self.settings.max_request_rows:
            raise bad_request(f"{source} holds {len(rows)} rows, over this server's limit of {self.settings.max_request_rows} per request "
                              "(--max-request-rows); send them in several requests, or predict a file with `pipeline-deploy predict`")
        return rows

    async def infer(self, model: ServedModel, request: InferRequest | Decoder) -> tuple[InferRequest, dict[str, np.ndarray], dict[str, Any] | None]:
        """The decoded request, every output of ``model`` for it, and the response-level parameters
        (the rows outside the training range, when there are any). ``request`` may be a function that
        decodes the request for a model, so a request refused while decoding counts as a failure."""

        async def answer(model: ServedModel) -> tuple[InferRequest, dict[str, np.ndarray], dict[str, Any] | None]:
            decoded = request(model) if callable(request) else request
            source = f"input {model.input.name!r}"
            rows = self.checked_rows(model, decoded.array, source)
            outputs, outside = await model.infer(rows, source)
            return decoded, outputs, {OUT_OF_RANGE_ROWS: outside} if outside else None

        return await self._counted(model, answer)

    async def predict(self, model: ServedModel, array: np.ndarray, source: str = "request body") -> list[dict[str, Any]]:
        """One record per row of ``array``, as ``predict.py`` writes them in a JSON file (the label and
        its probabilities, or the values), with ``out_of_range`` naming the features of each row
        outside the training range. ``array`` was read for ``model`` (feature names put in its order,
        images decoded to its shape): a replacement that reads rows otherwise does not take it."""
        read_for = model

        async def answer(model: ServedModel) -> list[dict[str, Any]]:
            if model is not read_for and not _reads_rows_alike(model, read_for):
                raise Overloaded(f"model {model.name!r} version {model.version!r} was replaced while this request waited, by one that "
                                 "reads rows differently (feature names, shape or type); send the request again")
            rows = self.checked_rows(model, array, source)
            outputs, outside = await model.infer(rows, source)
            records = predict.predictions(model.bundle, outputs)
            if outside:
                names = model.out_of_range_names(rows)
                records = [{**record, predict.OUT_OF_RANGE: names[row]} if row in outside else record for row, record in enumerate(records)]
            return records

        return await self._counted(model, answer)

    async def _counted(self, model: ServedModel, answer: Callable[[ServedModel], Awaitable[T]]) -> T:
        """``answer(model)``, counted in the model's statistics as a success or a failure. A model
        unloaded or replaced since the request named it hands the request to what serves its name
        and version now (a replacement), or to the 404 of a model no longer served."""
        started = time.perf_counter_ns()
        try:
            for _ in range(RETIRED_RETRIES):
                try:
                    result = await answer(model)
                    break
                except Retired:
                    model = self.repository.get(model.name, model.version)
                    started = time.perf_counter_ns()
            else:
                raise Overloaded(f"model {model.name!r} version {model.version!r} was replaced {RETIRED_RETRIES} times while this "
                                 "request waited; retry it")
        except BaseException:
            model.statistics.request_done(time.perf_counter_ns() - started, ok=False)
            raise
        model.statistics.request_done(time.perf_counter_ns() - started, ok=True)
        return result

    # -- the statistics and model repository extensions -------------------------------------------

    def statistics(self, name: str | None = None, version: str | None = None) -> dict[str, Any]:
        """Triton's statistics of one model (the newest version, or ``version``), or of every model;
        with --workers, every worker's figures added together."""
        models = [self.model(name, version)] if name else list(self.repository)
        answers = [model.statistics.as_json(model.name, model.version) for model in models]
        if self.sync is not None:
            others = self.sync.others_statistics()
            answers = [merged(answer, [o for o in others if (o["name"], o["version"]) == (answer["name"], answer["version"])])
                       for answer in answers]
        return {"model_stats": answers}

    def _loader(self) -> ModelLoader:
        if self.loader is None:
            raise ProtocolError(400, "this server was started without the model repository extension")
        return self.loader

    def repository_index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        return self._loader().index(ready_only)

    async def load(self, name: str) -> None:
        """Load (or reload) ``name`` from where it was configured; the old versions serve until the new ones do."""
        if not self._ready:
            raise ProtocolError(503, "the server is not ready (starting or stopping); load the model once it is")
        await self._loader().load(name, self.attach)
        if self.sync is not None:
            await self.sync.broadcast("load", name)

    async def unload(self, name: str) -> None:
        await self._loader().unload(name)
        if self.sync is not None:
            await self.sync.broadcast("unload", name)

    def attach(self, model: ServedModel) -> None:
        assert self._executor is not None
        model.attach(self._executor, self.metrics.observer(model.name, model.version, model.statistics, model.call_sizes))
        assert model.batcher is not None
        model.batcher.start()

    # -- lifecycle ------------------------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The inference threads and every model's batcher, running (and the server ready) inside;
        on the way out the server stops being ready first, then each batcher finishes what it queued."""
        threads = max(self.settings.inference_threads, sum(m.batching.instances for m in self.repository))
        with ThreadPoolExecutor(threads, thread_name_prefix="inference") as self._executor:
            for model in self.repository:
                self.attach(model)
            try:
                async with AsyncExitStack() as stack:
                    for companion in self.companions:
                        await stack.enter_async_context(companion())
                    self._ready = True
                    yield
                    self._ready = False
            finally:
                self._ready = False
                if self.loader is not None:
                    await self.loader.finish()
                for model in self.repository:
                    if model.batcher is not None:
                        await model.batcher.stop()
