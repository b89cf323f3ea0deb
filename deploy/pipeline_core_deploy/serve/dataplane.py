"""What the server answers, apart from how a request travels: :class:`DataPlane`, the one object
every front end calls (the Starlette routes of app.py and the plain-ASGI hot routes of
hot_routes.py).

Why: the Open Inference Protocol has a REST and a gRPC binding, and what a request means is the
same in both: which model it names, whether the server is ready, how many rows one request may
hold, what the model answers, and which rows lie outside the training range. A front end decodes
a request, calls a method here, and encodes what it returns; a gRPC front end would call the same
methods with what it decoded from protobuf. (MLServer's ``mlserver/handlers/dataplane.py`` has the
same shape.) The lifecycle is here too: :meth:`DataPlane.running` starts the inference threads and
every model's batcher, and the server is ready only while they run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline_core_deploy import __version__, predict
from pipeline_core_deploy.serve import MAX_BODY_BYTES, MAX_REQUEST_ROWS
from pipeline_core_deploy.serve.metrics import Metrics
from pipeline_core_deploy.serve.models import Repository, ServedModel
from pipeline_core_deploy.serve.protocol import InferRequest, bad_request

SERVER_NAME = "pipeline-core-deploy"
#: the v2 response parameter listing the rows (from 0) that lie outside the training range
OUT_OF_RANGE_ROWS = "out_of_range_rows"
EXTENSIONS = ["binary_tensor_data", "model_configuration"]


@dataclass(frozen=True)
class ServerSettings:
    """What applies to the whole server rather than to one model."""

    max_body_bytes: int = MAX_BODY_BYTES
    #: rows one request may hold: with the body limit, what bounds one request's memory
    max_request_rows: int = MAX_REQUEST_ROWS
    inference_threads: int = 2  # executor threads that call onnxruntime
    access_log: bool = True


class DataPlane:
    """The server's answers to the protocol's requests, for any front end. Errors are raised, not
    answered: a front end turns them into its own error shape (``hot_routes.answer_to`` for REST)."""

    def __init__(self, repository: Repository, settings: ServerSettings, metrics: Metrics) -> None:
        self.repository, self.settings, self.metrics = repository, settings, metrics
        self._ready = False

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

    async def infer(self, model: ServedModel, request: InferRequest) -> tuple[dict[str, np.ndarray], dict[str, Any] | None]:
        """Every output of ``model`` for a decoded ``…/infer`` request, and the response-level
        parameters (the rows outside the training range, when there are any)."""
        source = f"input {model.input.name!r}"
        rows = self.checked_rows(model, request.array, source)
        outputs, outside = await model.infer(rows, source)
        return outputs, {OUT_OF_RANGE_ROWS: outside} if outside else None

    async def predict(self, model: ServedModel, array: np.ndarray, source: str = "request body") -> list[dict[str, Any]]:
        """One record per row of ``array``, as ``predict.py`` writes them in a JSON file (the label and
        its probabilities, or the values), with ``out_of_range`` naming the features of each row
        outside the training range."""
        rows = self.checked_rows(model, array, source)
        outputs, outside = await model.infer(rows, source)
        records = predict.predictions(model.bundle, outputs)
        if outside:
            names = model.out_of_range_names(rows)
            records = [{**record, predict.OUT_OF_RANGE: names[row]} if row in outside else record for row, record in enumerate(records)]
        return records

    # -- lifecycle ------------------------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The inference threads and every model's batcher, running (and the server ready) inside;
        on the way out the server stops being ready first, then each batcher finishes what it queued."""
        threads = max(self.settings.inference_threads, sum(m.batching.instances for m in self.repository))
        with ThreadPoolExecutor(threads, thread_name_prefix="inference") as executor:
            for model in self.repository:
                model.attach(executor, self.metrics.observer(model.name, model.version))
                assert model.batcher is not None
                model.batcher.start()
            self._ready = True
            try:
                yield
            finally:
                self._ready = False
                for model in self.repository:
                    if model.batcher is not None:
                        await model.batcher.stop()
