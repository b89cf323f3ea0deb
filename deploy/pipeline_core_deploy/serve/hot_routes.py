"""The two routes that carry the load, ``…/infer`` and ``…/predict``, answered in plain ASGI: their
REST binding (the body in, the answer out) around :class:`~pipeline_core_deploy.serve.dataplane.DataPlane`.

Why not through Starlette like the other routes: on a small model the framework's per-request
work (middleware stack, regular-expression routing, ``Request`` and ``Response`` objects, three
nested ``send`` wrappers) cost about a quarter of the event loop's time per request, and the event
loop thread is what bounds a server's requests per second. Here a request is matched by splitting
its path, its few headers are read from the scope in one pass, and the answer is two ASGI messages.
Every other path and the lifespan go to the Starlette application unchanged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.types import ASGIApp, Receive, Scope, Send

from pipeline_core_deploy import predict
from pipeline_core_deploy.serve.batching import Overloaded
from pipeline_core_deploy.serve.dataplane import DataPlane
from pipeline_core_deploy.serve.models import ServedModel
from pipeline_core_deploy.serve.protocol import (
    HEADER_LENGTH,
    ProtocolError,
    bad_request,
    decode_infer,
    dumps,
    encode_infer,
    loads,
    parse_body,
)

log = logging.getLogger("pipeline_core_deploy.serve")

#: the request headers the hot routes read (lower case, as ASGI gives them)
WANTED_HEADERS = frozenset({"content-length", "content-encoding", "content-type", "inference-header-content-length"})
#: scope keys the routes fill in, for the access log and the metrics; the access log fills in the request id
MODEL_KEY, ENDPOINT_KEY, REQUEST_ID_KEY = "pipeline.model", "pipeline.endpoint", "pipeline.request_id"


@dataclass(frozen=True)
class Answer:
    """What a route answers: status, body, media type, and any extra headers."""

    body: bytes
    media_type: str = "application/json"
    headers: dict[str, str] | None = None
    status: int = 200


def error_answer(status: int, message: str, request_id: str | None = None, headers: dict[str, str] | None = None) -> Answer:
    """The protocol's error shape, ``{"error": message}``, with the request's id."""
    body = {"error": message} if request_id is None else {"error": message, "request_id": request_id}
    return Answer(dumps(body), headers=headers, status=status)


def route_error(method: str, path: str, status: int, detail: str, headers: dict[str, str] | None = None,
                request_id: str | None = None) -> Answer:
    """The answer to a path or method no route takes (404, 405), pointing at what exists."""
    return error_answer(status, f"{method} {path}: {detail}; see GET /v2 and /v2/models/{{name}}", request_id, headers)


def error_status(error: Exception) -> int:
    """The HTTP status a request that raised ``error`` gets: 4xx for the client's mistakes, 503 for
    overload, 500 for a bug (both front ends use it; gRPC maps it to its own codes)."""
    if isinstance(error, ProtocolError):
        return error.status
    if isinstance(error, predict.DeployError):
        return 400
    if isinstance(error, Overloaded):
        return 503
    return 500


def answer_to(error: Exception, method: str, path: str, request_id: str | None = None) -> Answer:
    """The answer to a request that raised ``error``: its message with the status of
    :func:`error_status`, or a one-line 500 for a bug (the traceback goes to the log)."""
    status = error_status(error)
    if status != 500:
        return error_answer(status, str(error), request_id)
    log.error("internal error on %s %s (request %s)", method, path, request_id, exc_info=error)
    return error_answer(500, f"internal error: {type(error).__name__}", request_id)


#: a model route: the resolved model, the headers in ``WANTED_HEADERS``, and the body
Handler = Callable[[ServedModel, dict[str, str], bytes], Awaitable[Answer]]


def match(path: str, actions: frozenset[str]) -> tuple[str, str | None, str] | None:
    """``(name, version, action)`` for ``/v2/models/{name}[/versions/{version}]/{action}``, else None.

    Path segments are matched as Starlette's ``{name}`` matches them: any non-empty text without ``/``;
    a trailing ``/`` is accepted (Starlette would answer it with a redirect to the same route)."""
    parts = path.removesuffix("/").split("/")
    if len(parts) == 5 and parts[0] == "" and parts[1] == "v2" and parts[2] == "models" and parts[3] and parts[4] in actions:
        return parts[3], None, parts[4]
    if (len(parts) == 7 and parts[0] == "" and parts[1] == "v2" and parts[2] == "models" and parts[3]
            and parts[4] == "versions" and parts[5] and parts[6] in actions):
        return parts[3], parts[5], parts[6]
    return None


def request_headers(scope: Scope) -> dict[str, str]:
    """The headers in ``WANTED_HEADERS``, decoded as HTTP decodes them (latin-1); the last one wins."""
    found = {}
    for key, value in scope["headers"]:
        name = key.decode("latin-1")
        if name in WANTED_HEADERS:
            found[name] = value.decode("latin-1")
    return found


class ClientGone(Exception):
    """The client closed the connection before its request body arrived: nobody to answer."""


async def read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    """The request body, refused as soon as it is known to be over ``limit`` bytes."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise bad_request(f"the request body has {declared} bytes, over this server's limit of {limit} (--max-body-bytes)")
    encoding = headers.get("content-encoding", "identity")
    if encoding != "identity":
        raise bad_request(f"Content-Encoding {encoding!r} is not supported; send the body uncompressed")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise bad_request(f"the request body is over this server's limit of {limit} bytes (--max-body-bytes)")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_answer(send: Send, answer: Answer) -> None:
    headers = [(b"content-type", answer.media_type.encode("latin-1")), (b"content-length", str(len(answer.body)).encode("latin-1"))]
    if answer.headers:
        headers += [(key.lower().encode("latin-1"), value.encode("latin-1")) for key, value in answer.headers.items()]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


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


class HotRoutes:
    """Pure ASGI: ``POST`` to a model's ``infer`` or ``predict`` is decoded here, answered by
    ``plane``, and encoded here; everything else (other paths, the lifespan) goes to ``fallback``."""

    def __init__(self, plane: DataPlane, fallback: ASGIApp) -> None:
        self.plane, self.fallback = plane, fallback
        self.body_limit = plane.settings.max_body_bytes
        self.handlers: dict[str, Handler] = {"infer": self.answer_infer, "predict": self.answer_predict}
        self.actions = frozenset(self.handlers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = match(scope["path"], self.actions) if scope["type"] == "http" else None
        if target is None:
            await self.fallback(scope, receive, send)
            return
        name, version, action = target
        scope[ENDPOINT_KEY] = action
        if scope["method"] != "POST":
            await send_answer(send, route_error(scope["method"], scope["path"], 405, "Method Not Allowed", {"allow": "POST"},
                                                scope.get(REQUEST_ID_KEY)))
            return
        try:
            model = self.plane.model(name, version)
            scope[MODEL_KEY] = (model.name, model.version)
            headers = request_headers(scope)
            answer = await self.handlers[action](model, headers, await read_body(receive, headers, self.body_limit))
        except ClientGone:
            return
        except Exception as error:
            answer = answer_to(error, scope["method"], scope["path"], scope.get(REQUEST_ID_KEY))
        await send_answer(send, answer)

    async def answer_infer(self, model: ServedModel, headers: dict[str, str], body: bytes) -> Answer:
        """``…/infer``: a v2 request (JSON, or JSON then binary tensor data) in, the v2 response out."""
        header = headers.get(HEADER_LENGTH.lower())
        decoded, outputs, parameters = await self.plane.infer(model, lambda model: decode_infer(*parse_body(body, header), model.input, model.outputs, model.column_inputs))
        content, header_length = encode_infer(model.name, model.version, decoded, outputs, parameters)
        if header_length is None:
            return Answer(content)
        return Answer(content, "application/octet-stream", {HEADER_LENGTH: str(header_length)})

    async def answer_predict(self, model: ServedModel, headers: dict[str, str], body: bytes) -> Answer:
        """``…/predict``: rows as JSON (or one PNG/JPEG file, or base64 images in JSON) in, one record
        per row out. Images are decoded off the event loop, on the default executor."""
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
        records = await self.plane.predict(model, rows, "request body")
        return Answer(dumps({"model_name": model.name, "model_version": model.version, "predictions": records}))
