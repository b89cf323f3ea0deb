"""The HTTP front end: the Open Inference Protocol (KServe v2 REST) with Triton's model repository
and statistics extensions, a rows-in, labels-out convenience endpoint, and ``/metrics``, each
answered by the server's :class:`~pipeline_core_deploy.serve.dataplane.DataPlane`.

Every answer to a bad request is a 4xx with ``{"error": message}`` (the protocol's error shape);
the message is the one ``predict.py`` gives for the same rows. An unexpected failure is logged with
its traceback on the server and answered with a one-line 500, never a traceback. The two routes
that carry the load (``…/infer``, ``…/predict``) are answered in plain ASGI by ``hot_routes``; the
rest go through Starlette (:class:`StarletteRoutes`), and :func:`create_app` puts the two together
inside the access log.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline_core_deploy.serve import request_ids
from pipeline_core_deploy.serve.access import CORS_HEADERS, TokenAuth
from pipeline_core_deploy.serve.dataplane import DataPlane, ServerSettings
from pipeline_core_deploy.serve.hot_routes import (
    ENDPOINT_KEY,
    MODEL_KEY,
    REQUEST_ID_KEY,
    Answer,
    HotRoutes,
    answer_to,
    route_error,
)
from pipeline_core_deploy.serve.metrics import Metrics
from pipeline_core_deploy.serve.model_repository import ModelLoader, no_parameters
from pipeline_core_deploy.serve.models import Repository, ServedModel
from pipeline_core_deploy.serve.protocol import bad_request, json_object

access_log = logging.getLogger("pipeline_core_deploy.access")

__all__ = ["AccessLog", "ServerSettings", "StarletteRoutes", "create_app"]


def _response(answer: Answer) -> Response:
    return Response(answer.body, status_code=answer.status, media_type=answer.media_type, headers=answer.headers)


StarletteHandler = Callable[[Request], Awaitable[Response]]


def _endpoint(name: str, handler: StarletteHandler) -> StarletteHandler:
    """Name the route for the metrics, and turn every error into the protocol's error answer."""

    async def endpoint(request: Request) -> Response:
        request.scope[ENDPOINT_KEY] = name
        try:
            return await handler(request)
        except Exception as error:
            return _response(answer_to(error, request.method, request.url.path, request.scope.get(REQUEST_ID_KEY)))

    endpoint.__name__ = handler.__name__
    return endpoint


def _readiness(ready: bool) -> int:
    return 200 if ready else 503


class StarletteRoutes:
    """Every route but the two hot ones, each a method that asks ``plane`` and answers in JSON."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    def routes(self) -> list[Route]:
        """The server's routes, and each model's under ``/v2/models/{name}`` and ``…/versions/{version}``."""
        routes = [
            Route("/v2", _endpoint("server_metadata", self.server_metadata)),
            Route("/v2/health/live", _endpoint("health", self.live)),
            Route("/v2/health/ready", _endpoint("health", self.ready)),
            Route("/metrics", _endpoint("metrics", self.metrics)),
            Route("/openapi.json", _endpoint("openapi", self.openapi)),
            Route("/v2/models/stats", _endpoint("statistics", self.statistics)),
            Route("/v2/repository/index", _endpoint("repository_index", self.repository_index), methods=["POST"]),
            Route("/v2/repository/models/{name}/load", _endpoint("repository_load", self.load), methods=["POST"]),
            Route("/v2/repository/models/{name}/unload", _endpoint("repository_unload", self.unload), methods=["POST"]),
        ]
        for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
            routes += [Route(prefix, _endpoint("model_metadata", self.model_metadata)),
                       Route(f"{prefix}/ready", _endpoint("model_ready", self.model_ready)),
                       Route(f"{prefix}/config", _endpoint("model_config", self.model_config)),
                       Route(f"{prefix}/stats", _endpoint("statistics", self.statistics))]
        return routes

    def _model(self, request: Request) -> ServedModel:
        """The model the path names, recorded in the scope for the access log and the metrics."""
        params = request.path_params
        model = self.plane.model(params["name"], params.get("version"))
        request.scope[MODEL_KEY] = (model.name, model.version)
        return model

    async def server_metadata(self, request: Request) -> Response:
        return JSONResponse(self.plane.server_metadata())

    async def live(self, request: Request) -> Response:
        return JSONResponse({"live": self.plane.live()})

    async def ready(self, request: Request) -> Response:
        ready = self.plane.ready()
        return JSONResponse({"ready": ready}, status_code=_readiness(ready))

    async def model_metadata(self, request: Request) -> Response:
        return JSONResponse(self.plane.model_metadata(self._model(request)))

    async def model_ready(self, request: Request) -> Response:
        model = self._model(request)
        ready = self.plane.model_ready(model)
        return JSONResponse({"name": model.name, "version": model.version, "ready": ready}, status_code=_readiness(ready))

    async def model_config(self, request: Request) -> Response:
        return JSONResponse(self.plane.model_config(self._model(request)))

    async def statistics(self, request: Request) -> Response:
        params = request.path_params
        if "name" in params:
            request.scope[MODEL_KEY] = (params["name"], params.get("version", ""))
        return JSONResponse(self.plane.statistics(params.get("name"), params.get("version")))

    async def repository_index(self, request: Request) -> Response:
        body = await _json_body(request)
        ready = body.get("ready", False)
        if not isinstance(ready, bool):
            raise bad_request(f"'ready' must be true or false, got {ready!r}")
        return JSONResponse(self.plane.repository_index(ready))

    async def load(self, request: Request) -> Response:
        no_parameters((await _json_body(request)).get("parameters"))
        await self.plane.load(request.path_params["name"])
        return JSONResponse({})

    async def unload(self, request: Request) -> Response:
        no_parameters((await _json_body(request)).get("parameters"), frozenset({"unload_dependents"}))
        await self.plane.unload(request.path_params["name"])
        return JSONResponse({})

    async def openapi(self, request: Request) -> Response:
        """The OpenAPI document of these routes (serve/openapi.json, kept beside the code and tested against it)."""
        return Response(openapi_document(), media_type="application/json")

    async def metrics(self, request: Request) -> Response:
        body, media_type = self.plane.metrics_text()
        return Response(body, media_type=media_type)

    @staticmethod
    async def no_route(request: Request, error: Exception) -> Response:
        """Unknown paths and methods: the protocol's error shape too."""
        status = error.status_code if isinstance(error, HTTPException) else 500
        return _response(route_error(request.method, request.url.path, status, getattr(error, "detail", "error"),
                                     request_id=request.scope.get(REQUEST_ID_KEY)))


@functools.cache
def openapi_document() -> bytes:
    return resources.files("pipeline_core_deploy.serve").joinpath("openapi.json").read_bytes()


async def _json_body(request: Request) -> dict[str, Any]:
    """An optional JSON object body (the repository extension's requests may be empty)."""
    body = await request.body()
    return json_object(body) if body.strip() else {}


def create_app(repository: Repository | DataPlane, settings: ServerSettings | None = None, metrics: Metrics | None = None,
               loader: ModelLoader | None = None) -> ASGIApp:
    """The ASGI application serving ``repository`` (or an existing data plane, which another front end
    shares): the hot routes, then Starlette for the rest (and the lifespan, which runs the data
    plane), inside the access-log middleware."""
    if isinstance(repository, DataPlane):
        plane = repository
    else:
        plane = DataPlane(repository, settings or ServerSettings(), metrics or Metrics(), loader)
    app = Starlette(routes=StarletteRoutes(plane).routes(), lifespan=lambda app: plane.running(),
                    exception_handlers={HTTPException: StarletteRoutes.no_route})
    served: ASGIApp = HotRoutes(plane, fallback=app)
    if plane.settings.token is not None:
        served = TokenAuth(served, plane.settings.token)
    if plane.settings.cors_origins:  # outside the token check: a browser's preflight carries no credentials
        served = CORSMiddleware(served, allow_origins=list(plane.settings.cors_origins), allow_methods=["GET", "POST"],
                                allow_headers=CORS_HEADERS, expose_headers=["x-request-id", "inference-header-content-length"])
    return AccessLog(served, plane.metrics, plane.settings.access_log)


class AccessLog:
    """Pure ASGI middleware: one log line and one metrics sample per request, with the model and
    endpoint the handler resolved (unknown models count as ``model=""``), and the request's id
    (:mod:`~pipeline_core_deploy.serve.request_ids`): taken or made, returned, logged."""

    def __init__(self, app: ASGIApp, metrics: Metrics, enabled: bool) -> None:
        self.app, self.metrics, self.enabled = app, metrics, enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        given = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                given = value.decode("latin-1")
        request_id = scope[REQUEST_ID_KEY] = request_ids.taken(given)

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            seconds = time.perf_counter() - started
            model, version = scope.get(MODEL_KEY, ("", ""))
            self.metrics.observe_request(model, version, scope.get(ENDPOINT_KEY, "other"), status, seconds)
            if self.enabled:
                client = scope.get("client") or ("-", 0)
                access_log.info('%s:%s "%s %s HTTP/%s" %d %.2fms id=%s', client[0], client[1], scope["method"], scope["path"],
                                scope.get("http_version", "1.1"), status, seconds * 1000, request_id)
