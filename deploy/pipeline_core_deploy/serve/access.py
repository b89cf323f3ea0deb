"""Who may use the server: an optional bearer token on every route and RPC but the health probes,
TLS for both front ends, and CORS for browsers (off unless origins are named).

The token is read from ``--token-file FILE`` or the environment variable ``PIPELINE_SERVE_TOKEN``,
never from the command line, where any user of the machine could read it in the process list. A
request without it, or with another, gets 401 (``WWW-Authenticate: Bearer``) on REST and
``UNAUTHENTICATED`` on gRPC; the health probes (``/v2/health/live``, ``/v2/health/ready``,
``ServerLive``, ``ServerReady`` and ``grpc.health.v1``) stay open, because orchestrators call them
without credentials. Tokens are compared in constant time. Over plain HTTP a token travels in clear
text: use it with TLS (``--ssl-certfile`` and ``--ssl-keyfile``) off the loopback address.
"""

from __future__ import annotations

import hmac
import os
import ssl
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import grpc
from grpc import aio
from starlette.types import ASGIApp, Receive, Scope, Send

from pipeline_core_deploy.predict import DeployError

TOKEN_ENV = "PIPELINE_SERVE_TOKEN"
#: the routes and RPCs anyone may call: what liveness and readiness probes call
OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
OPEN_RPCS = frozenset({"/inference.GRPCInferenceService/ServerLive", "/inference.GRPCInferenceService/ServerReady",
                       "/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})
#: what a browser may send and read when CORS is on
CORS_HEADERS = ["authorization", "content-type", "inference-header-content-length", "x-request-id"]


def read_token(token_file: Path | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The bearer token from ``token_file`` (surrounding whitespace removed), else from
    ``PIPELINE_SERVE_TOKEN``, else None (no token required). Raises :class:`DeployError` for a file
    that cannot be read, or a token that is empty or could not travel in a header."""
    if token_file is not None:
        try:
            token, where = token_file.read_text(encoding="utf-8").strip(), f"--token-file {token_file}"
        except (OSError, UnicodeDecodeError) as error:
            raise DeployError(f"--token-file {token_file}: cannot read it ({error})") from None
    elif TOKEN_ENV in environ:
        token, where = environ[TOKEN_ENV].strip(), TOKEN_ENV
    else:
        return None
    if not token:
        raise DeployError(f"{where} holds an empty token; put a long random token there (e.g. `python -c \"import secrets; "
                          f"print(secrets.token_urlsafe(32))\"`), or remove it to serve without one")
    if not (token.isascii() and token.isprintable()) or " " in token:
        raise DeployError(f"{where}: a token may hold only visible ASCII characters, without spaces (it travels in an HTTP header)")
    return token


def check_tls(certfile: Path | None, keyfile: Path | None) -> tuple[bytes, bytes] | None:
    """The certificate chain and key (PEM) when both are given and load, else None when neither is;
    a :class:`DeployError` for one without the other, or files that do not load as a pair."""
    if certfile is None and keyfile is None:
        return None
    if certfile is None or keyfile is None:
        given, missing = ("--ssl-certfile", "--ssl-keyfile") if keyfile is None else ("--ssl-keyfile", "--ssl-certfile")
        raise DeployError(f"{given} needs {missing} too: TLS takes a certificate and its private key")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile, keyfile)
        return certfile.read_bytes(), keyfile.read_bytes()
    except (OSError, ssl.SSLError) as error:
        raise DeployError(f"--ssl-certfile {certfile} and --ssl-keyfile {keyfile} do not load as a certificate and its key ({error})") from None


class TokenAuth:
    """Pure ASGI middleware: every request but the health probes needs ``Authorization: Bearer TOKEN``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self._expected = app, f"Bearer {token}".encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or self._authorized(scope["headers"]):
            await self.app(scope, receive, send)
            return
        from pipeline_core_deploy.serve.hot_routes import ENDPOINT_KEY, REQUEST_ID_KEY, error_answer, send_answer

        scope[ENDPOINT_KEY] = "unauthorized"
        await send_answer(send, error_answer(401, "this server needs a bearer token: send the header 'Authorization: Bearer TOKEN' "
                                                  "(the token the operator configured)", scope.get(REQUEST_ID_KEY),
                                             {"www-authenticate": "Bearer"}))

    def _authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        for key, value in headers:
            if key == b"authorization":
                return hmac.compare_digest(value, self._expected)
        return False


Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]


class TokenInterceptor(aio.ServerInterceptor):
    """The same rule for gRPC: every RPC but the health probes needs ``authorization: Bearer TOKEN`` metadata."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}"

    async def intercept_service(self, continuation: Continuation, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None or details.method in OPEN_RPCS or self._authorized(details.invocation_metadata):
            return handler
        return _refusal(handler)

    def _authorized(self, metadata: Any) -> bool:
        for key, value in metadata or ():
            if key == "authorization":
                return isinstance(value, str) and hmac.compare_digest(value.encode(), self._expected.encode())
        return False


_REFUSED = "this server needs a bearer token: send the metadata 'authorization: Bearer TOKEN'"


def _refusal(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` that answers ``UNAUTHENTICATED``."""

    async def refuse(request: Any, context: aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, _REFUSED)

    async def refuse_stream(request: Any, context: aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, _REFUSED)
        yield  # pragma: no cover - makes this an async generator, as streaming handlers are

    codecs = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse_stream, **codecs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse_stream, **codecs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse, **codecs)
    return grpc.unary_unary_rpc_method_handler(refuse, **codecs)
