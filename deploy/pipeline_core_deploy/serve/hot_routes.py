"""The two routes that carry the load, ``…/infer`` and ``…/predict``, answered in plain ASGI.

Why not through Starlette like the other routes: on a small model the framework's per-request
work (middleware stack, regular-expression routing, ``Request`` and ``Response`` objects, three
nested ``send`` wrappers) cost about a quarter of the event loop's time per request, and the event
loop thread is what bounds a server's requests per second. Here a request is matched by splitting
its path, its few headers are read from the scope in one pass, and the answer is two ASGI messages.
Every other path and the lifespan go to the Starlette application unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from pipeline_core_deploy import predict
from pipeline_core_deploy.serve.batching import Overloaded
from pipeline_core_deploy.serve.protocol import ProtocolError, bad_request, dumps

log = logging.getLogger("pipeline_core_deploy.serve")

#: the request headers the hot routes read (lower case, as ASGI gives them)
WANTED_HEADERS = frozenset({"content-length", "content-encoding", "content-type", "inference-header-content-length"})
#: scope keys the routes fill in, for the access log and the metrics
MODEL_KEY, ENDPOINT_KEY = "pipeline.model", "pipeline.endpoint"


@dataclass(frozen=True)
class Answer:
    """What a route answers: status, body, media type, and any extra headers."""

    body: bytes
    media_type: str = "application/json"
    headers: dict[str, str] | None = None
    status: int = 200


def error_answer(status: int, message: str) -> Answer:
    """The protocol's error shape: ``{"error": message}``."""
    return Answer(dumps({"error": message}), status=status)


def route_error(method: str, path: str, status: int, detail: str, headers: dict[str, str] | None = None) -> Answer:
    """The answer to a path or method no route takes (404, 405), pointing at what exists."""
    message = f"{method} {path}: {detail}; see GET /v2 and /v2/models/{{name}}"
    return Answer(dumps({"error": message}), headers=headers, status=status)


def answer_to(error: Exception, method: str, path: str) -> Answer:
    """The answer to a request that raised ``error``: 4xx or 503 with the message for the client's
    mistakes and for overload, a one-line 500 (the traceback goes to the log) for a bug."""
    if isinstance(error, ProtocolError):
        return error_answer(error.status, str(error))
    if isinstance(error, predict.DeployError):
        return error_answer(400, str(error))
    if isinstance(error, Overloaded):
        return error_answer(503, str(error))
    log.error("internal error on %s %s", method, path, exc_info=error)
    return error_answer(500, f"internal error: {type(error).__name__}")


#: a model route: the resolved model, the headers in ``WANTED_HEADERS``, and the body
Handler = Callable[[Any, dict[str, str], bytes], Awaitable[Answer]]
#: the model a name and an optional version name (raises ProtocolError 404 for an unknown one)
Resolve = Callable[[str, "str | None"], Any]


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


class HotRoutes:
    """Pure ASGI: ``POST`` to a model's ``infer`` or ``predict`` runs its handler here; everything
    else (other paths, the lifespan) goes to ``fallback``."""

    def __init__(self, handlers: dict[str, Handler], resolve: Resolve, body_limit: int, fallback: ASGIApp) -> None:
        self.handlers, self.resolve, self.body_limit, self.fallback = handlers, resolve, body_limit, fallback
        self.actions = frozenset(handlers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = match(scope["path"], self.actions) if scope["type"] == "http" else None
        if target is None:
            await self.fallback(scope, receive, send)
            return
        name, version, action = target
        scope[ENDPOINT_KEY] = action
        if scope["method"] != "POST":
            await send_answer(send, route_error(scope["method"], scope["path"], 405, "Method Not Allowed", {"allow": "POST"}))
            return
        try:
            model = self.resolve(name, version)
            scope[MODEL_KEY] = (model.name, model.version)
            headers = request_headers(scope)
            answer = await self.handlers[action](model, headers, await read_body(receive, headers, self.body_limit))
        except ClientGone:
            return
        except Exception as error:
            answer = answer_to(error, scope["method"], scope["path"])
        await send_answer(send, answer)
