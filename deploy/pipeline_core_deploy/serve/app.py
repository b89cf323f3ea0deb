"""The HTTP routes: the Open Inference Protocol (KServe v2 REST), a rows-in, labels-out
convenience endpoint, and ``/metrics``.

Every answer to a bad request is a 4xx with ``{"error": message}`` (the protocol's error shape);
the message is the one ``predict.py`` gives for the same rows. An unexpected failure is logged with
its traceback on the server and answered with a one-line 500, never a traceback. The two routes
that carry the load (``…/infer``, ``…/predict``) are defined here but answered in plain ASGI by
``hot_routes``; the rest go through Starlette.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline_core_deploy import __version__, predict
from pipeline_core_deploy.serve import MAX_BODY_BYTES, MAX_REQUEST_ROWS
from pipeline_core_deploy.serve.hot_routes import ENDPOINT_KEY, MODEL_KEY, Answer, HotRoutes, answer_to, route_error
from pipeline_core_deploy.serve.metrics import Metrics
from pipeline_core_deploy.serve.models import Repository, ServedModel
from pipeline_core_deploy.serve.protocol import (
    HEADER_LENGTH,
    bad_request,
    decode_infer,
    dumps,
    encode_infer,
    loads,
    parse_body,
)

access_log = logging.getLogger("pipeline_core_deploy.access")

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


def _response(answer: Answer) -> Response:
    return Response(answer.body, status_code=answer.status, media_type=answer.media_type, headers=answer.headers)


StarletteHandler = Callable[[Request], Awaitable[Response]]


def _endpoint(name: str) -> Callable[[StarletteHandler], StarletteHandler]:
    """Name the route for the metrics, and turn every error into the protocol's error answer."""

    def wrap(handler: StarletteHandler) -> StarletteHandler:
        async def endpoint(request: Request) -> Response:
            request.scope[ENDPOINT_KEY] = name
            try:
                return await handler(request)
            except Exception as error:
                return _response(answer_to(error, request.method, request.url.path))

        endpoint.__name__ = handler.__name__
        return endpoint

    return wrap


def _image_rows(body: bytes, model: ServedModel) -> np.ndarray:
    """A request body holding one PNG or JPEG file, as the model's one input row."""
    if not body:
        raise bad_request("the request body is empty: expected a PNG or JPEG image")
    return predict.decode_image(body, model.bundle, "request body")[None]


def _holds_images(data: Any) -> bool:
    """Whether a parsed predict body carries base64 images (``[{"b64": ...}, ...]``, maybe under
    ``inputs`` or ``instances``) rather than rows."""
    items = data.get("inputs", data.get("instances")) if isinstance(data, dict) else data
    return isinstance(items, list) and bool(items) and isinstance(items[0], dict) and "b64" in items[0]


def create_app(repository: Repository, settings: ServerSettings | None = None, metrics: Metrics | None = None) -> ASGIApp:
    """The ASGI application serving ``repository``: the routes inside the access-log middleware."""
    settings = settings or ServerSettings()
    metrics = metrics or Metrics()
    state = {"ready": False}

    def model_of(request: Request) -> ServedModel:
        params = request.path_params
        model = repository.get(params["name"], params.get("version"))
        request.scope[MODEL_KEY] = (model.name, model.version)
        return model

    @_endpoint("server_metadata")
    async def server_metadata(request: Request) -> Response:
        return JSONResponse({"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS})

    @_endpoint("health")
    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    @_endpoint("health")
    async def ready(request: Request) -> Response:
        return JSONResponse({"ready": state["ready"]}, status_code=200 if state["ready"] else 503)

    @_endpoint("model_metadata")
    async def model_metadata(request: Request) -> Response:
        model = model_of(request)
        return JSONResponse(model.metadata(repository.versions(model.name)))

    @_endpoint("model_ready")
    async def model_ready(request: Request) -> Response:
        model = model_of(request)
        return JSONResponse({"name": model.name, "version": model.version, "ready": state["ready"]}, status_code=200 if state["ready"] else 503)

    @_endpoint("model_config")
    async def model_config(request: Request) -> Response:
        return JSONResponse(model_of(request).config())

    def checked_rows(model: ServedModel, array: np.ndarray, source: str) -> np.ndarray:
        rows = model.check(array, source)
        if len(rows) > settings.max_request_rows:
            raise bad_request(f"{source} holds {len(rows)} rows, over this server's limit of {settings.max_request_rows} per request "
                              "(--max-request-rows); send them in several requests, or predict a file with `pipeline-deploy predict`")
        return rows

    async def infer(model: ServedModel, headers: dict[str, str], body: bytes) -> Answer:
        document, binary = parse_body(body, headers.get(HEADER_LENGTH.lower()))
        decoded = decode_infer(document, binary, model.input, model.outputs)
        source = f"input {model.input.name!r}"
        rows = checked_rows(model, decoded.array, source)
        outputs, outside = await model.infer(rows, source)
        content, header_length = encode_infer(model.name, model.version, decoded, outputs, {OUT_OF_RANGE_ROWS: outside} if outside else None)
        if header_length is None:
            return Answer(content)
        return Answer(content, "application/octet-stream", {HEADER_LENGTH: str(header_length)})

    async def predict_rows(model: ServedModel, headers: dict[str, str], body: bytes) -> Answer:
        loop = asyncio.get_running_loop()
        if headers.get("content-type", "").startswith("image/"):  # one PNG or JPEG file as the body
            rows = await loop.run_in_executor(None, _image_rows, body, model)
        else:
            try:
                data = loads(body)
            except (ValueError, UnicodeDecodeError) as error:
                raise bad_request(f"the request body is not valid JSON: {error}") from None
            if _holds_images(data):  # {"b64": ...} items: decoding runs off the event loop
                rows = await loop.run_in_executor(None, predict.rows_from_json, data, model.bundle, "request body")
            else:
                rows = predict.rows_from_json(data, model.bundle, "request body")
        rows = checked_rows(model, rows, "request body")
        outputs, outside = await model.infer(rows, "request body")
        records = predict.predictions(model.bundle, outputs)
        if outside:
            names = model.out_of_range_names(rows)
            records = [{**record, predict.OUT_OF_RANGE: names[row]} if row in outside else record for row, record in enumerate(records)]
        return Answer(dumps({"model_name": model.name, "model_version": model.version, "predictions": records}))

    @_endpoint("metrics")
    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        threads = max(settings.inference_threads, sum(m.batching.instances for m in repository))
        with ThreadPoolExecutor(threads, thread_name_prefix="inference") as executor:
            for model in repository:
                model.attach(executor, metrics.observer(model.name, model.version))
                assert model.batcher is not None
                model.batcher.start()
            state["ready"] = True
            try:
                yield
            finally:
                state["ready"] = False
                for model in repository:
                    if model.batcher is not None:
                        await model.batcher.stop()

    model_path, version_path = "/v2/models/{name}", "/v2/models/{name}/versions/{version}"
    routes = [
        Route("/v2", server_metadata),
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/metrics", metrics_endpoint),
    ]
    for prefix in (model_path, version_path):
        routes += [Route(prefix, model_metadata), Route(f"{prefix}/ready", model_ready), Route(f"{prefix}/config", model_config)]

    async def no_route(request: Request, error: Exception) -> Response:  # unknown paths and methods: the protocol's error shape too
        status = error.status_code if isinstance(error, HTTPException) else 500
        return _response(route_error(request.method, request.url.path, status, getattr(error, "detail", "error")))

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: no_route})
    hot = HotRoutes({"infer": infer, "predict": predict_rows}, repository.get, settings.max_body_bytes, fallback=app)
    return AccessLog(hot, metrics, settings.access_log)


class AccessLog:
    """Pure ASGI middleware: one log line and one metrics sample per request, with the model and
    endpoint the handler resolved (unknown models count as ``model=""``)."""

    def __init__(self, app: ASGIApp, metrics: Metrics, enabled: bool) -> None:
        self.app, self.metrics, self.enabled = app, metrics, enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            seconds = time.perf_counter() - started
            model, version = scope.get(MODEL_KEY, ("", ""))
            self.metrics.observe_request(model, version, scope.get(ENDPOINT_KEY, "other"), status, seconds)
            if self.enabled:
                client = scope.get("client") or ("-", 0)
                access_log.info('%s:%s "%s %s HTTP/%s" %d %.2fms', client[0], client[1], scope["method"], scope["path"],
                                scope.get("http_version", "1.1"), status, seconds * 1000)
