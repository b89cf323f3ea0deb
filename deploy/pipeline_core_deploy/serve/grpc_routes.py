"""The gRPC front end: KServe v2's ``inference.GRPCInferenceService`` (Triton's definition, with its
repository and statistics extensions) and the standard ``grpc.health.v1.Health`` service, on their
own port, answered by the same :class:`~pipeline_core_deploy.serve.dataplane.DataPlane` as REST: the
same models, batching queues, limits, statistics and metrics, and the same messages.

Errors take gRPC's status codes: a bad request (REST's 400) is ``INVALID_ARGUMENT``, an unknown model
``NOT_FOUND``, a full queue or a server that is not ready ``UNAVAILABLE``, a bug ``INTERNAL`` with one
line (the traceback goes to the log). Every RPC returns its request id (the client's ``x-request-id``
metadata, or one made here) in the ``x-request-id`` trailing metadata, and is written in the access
log and counted in ``/metrics`` with ``protocol="grpc"``. The shared-memory, trace and log RPCs of
Triton's service are not served (``UNIMPLEMENTED``): a client on another machine cannot share memory
with this server anyway.

The server runs on the same event loop as the REST server (``grpc.aio``), so a request of either
kind joins the same batch. SIGTERM stops it with the REST side: new RPCs are refused, those in
flight finish (within the graceful timeout).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from pipeline_core_deploy import predict
from pipeline_core_deploy.serve import protos, request_ids
from pipeline_core_deploy.serve.access import TokenInterceptor
from pipeline_core_deploy.serve.column_inputs import grpc_columns
from pipeline_core_deploy.serve.dataplane import DataPlane
from pipeline_core_deploy.serve.hot_routes import error_status
from pipeline_core_deploy.serve.model_repository import no_parameters
from pipeline_core_deploy.serve.models import ServedModel
from pipeline_core_deploy.serve.protocol import DATATYPES, InferRequest, TensorSpec, bad_request, check_shape, datatype

log = logging.getLogger("pipeline_core_deploy.serve")
access_log = logging.getLogger("pipeline_core_deploy.access")

#: REST statuses as gRPC codes
CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND, 413: grpc.StatusCode.RESOURCE_EXHAUSTED,
         503: grpc.StatusCode.UNAVAILABLE, 500: grpc.StatusCode.INTERNAL}
#: which typed field of ``InferTensorContents`` carries each datatype (FP16 travels only as raw bytes)
CONTENTS = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
            "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
            "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents"}
SERVICE_NAME = protos.SERVICE
Rpc = Callable[[Any, aio.ServicerContext], Awaitable[Any]]


def decode_infer(request: Any, model_input: TensorSpec, outputs: list[TensorSpec], columns: list[TensorSpec] | None = None) -> InferRequest:
    """A ``ModelInferRequest`` checked against the model's input (or its ``columns`` inputs) and
    outputs, its tensors decoded from ``raw_input_contents`` or from the typed ``contents``: the REST
    side's checks and messages."""
    if columns is not None:
        return InferRequest(request.id or None, grpc_columns(request, columns), _wanted(request, outputs), set())
    names = [tensor.name for tensor in request.inputs]
    if names != [model_input.name]:
        raise bad_request(f"inputs {names} do not match the model's; it takes one input {model_input.describe()}")
    tensor, where = request.inputs[0], f"input {model_input.name!r}"
    if tensor.datatype != model_input.datatype:
        raise bad_request(f"{where}: datatype {tensor.datatype!r} does not match the model's; expected {model_input.datatype} "
                          f"(shape {list(model_input.shape)})")
    shape = list(tensor.shape)
    if any(d < 0 for d in shape):
        raise bad_request(f"{where}: 'shape' must be a list of non-negative integers, got {shape}")
    check_shape(shape, model_input, where)
    count, dtype = math.prod(shape), DATATYPES[model_input.datatype]
    field = CONTENTS.get(model_input.datatype)
    typed = getattr(tensor.contents, field) if field else ()
    if request.raw_input_contents:
        if len(request.raw_input_contents) != 1 or len(typed):
            raise bad_request(f"{where}: send the tensor once, either in raw_input_contents (one entry per input) or in contents, not both")
        raw = request.raw_input_contents[0]
        if len(raw) != count * dtype.itemsize:
            raise bad_request(f"{where}: raw_input_contents holds {len(raw)} bytes; shape {shape} of {model_input.datatype} needs {count * dtype.itemsize}")
        array = np.frombuffer(raw, dtype=dtype).reshape(shape)
    else:
        if field is None:
            raise bad_request(f"{where}: a {model_input.datatype} tensor travels in raw_input_contents only")
        if len(typed) != count:
            raise bad_request(f"{where}: contents.{field} holds {len(typed)} value(s) but shape {shape} needs {count}")
        array = np.asarray(typed, dtype=dtype).reshape(shape)
    return InferRequest(request.id or None, array, _wanted(request, outputs), set())


def _wanted(request: Any, outputs: list[TensorSpec]) -> list[str] | None:
    """The outputs a request asks for (None: every one); an unknown name is a bad request."""
    known = [o.name for o in outputs]
    wanted = [o.name for o in request.outputs] or None
    for name in wanted or ():
        if name not in known:
            raise bad_request(f"unknown output {name!r}; the model's outputs are {known}")
    return wanted


def encode_infer(response: Any, model: ServedModel, request: InferRequest, values: dict[str, np.ndarray],
                 parameters: dict[str, Any] | None) -> Any:
    """``values`` as a ``ModelInferResponse``, every output as raw little-endian bytes (as Triton
    answers); the rows outside the training range as the ``out_of_range_rows`` parameter (a JSON list)."""
    response.model_name, response.model_version = model.name, model.version
    if request.id:
        response.id = request.id
    for name in request.outputs if request.outputs is not None else list(values):
        value = values[name]
        tensor = response.outputs.add()
        tensor.name, tensor.datatype = name, datatype(value.dtype)
        tensor.shape.extend(value.shape)
        response.raw_output_contents.append(np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")).tobytes())
    for key, value in (parameters or {}).items():
        response.parameters[key].string_param = json.dumps(value)
    return response


class InferenceService:
    """Every RPC of ``GRPCInferenceService`` the server answers, each a coroutine over ``plane``."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane
        self.messages = {name: (request, response) for name, (request, response, _, _) in protos.methods().items()}

    def handler(self) -> grpc.GenericRpcHandler:
        """The service's generic handler: every RPC this class defines, wrapped in :meth:`_answered`."""
        handlers = {}
        for name, (request, response) in self.messages.items():
            method = getattr(self, name, None)
            if method is None:
                continue  # shared memory, trace and log settings: UNIMPLEMENTED
            if name == "ModelStreamInfer":
                handlers[name] = grpc.stream_stream_rpc_method_handler(
                    method, request_deserializer=request.FromString, response_serializer=response.SerializeToString)
            else:
                handlers[name] = grpc.unary_unary_rpc_method_handler(
                    self._answered(name, method), request_deserializer=request.FromString, response_serializer=response.SerializeToString)
        return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)

    def _answered(self, name: str, method: Rpc) -> Rpc:
        """``method`` with the request id, the access log, the metrics, and errors as status codes."""
        metrics, path = self.plane.metrics, f"/{SERVICE_NAME}/{name}"
        endpoint = _ENDPOINTS.get(name, name)
        logging_on = self.plane.settings.access_log

        async def answered(request: Any, context: aio.ServicerContext) -> Any:
            started = time.perf_counter()
            request_id = request_ids.taken(_metadata(context, request_ids.HEADER))
            trailer = ((request_ids.HEADER, request_id),)
            model = getattr(request, "model_name", None) or getattr(request, "name", "")
            code = grpc.StatusCode.OK
            try:
                response = await method(request, context)
                context.set_trailing_metadata(trailer)
                return response
            except Exception as error:
                status = error_status(error)
                code = CODES.get(status, grpc.StatusCode.INTERNAL)
                if status == 500:
                    log.error("internal error on %s (request %s)", path, request_id, exc_info=error)
                message = f"internal error: {type(error).__name__}" if status == 500 else str(error)
                await context.abort(code, f"{message} (request id {request_id})", trailer)
            finally:
                seconds = time.perf_counter() - started
                served = self.plane.repository.get_quietly(model, getattr(request, "model_version", "") or None) if model else None
                label = (served.name, served.version) if served is not None else ("", "")
                metrics.observe_request(label[0], label[1], endpoint, code.name, seconds, "grpc")
                if logging_on:
                    access_log.info('%s "GRPC %s" %s %.2fms id=%s', context.peer(), path, code.name, seconds * 1000, request_id)

        return answered

    def _model(self, request: Any) -> ServedModel:
        return self.plane.model(request.name, request.version or None)

    async def ServerLive(self, request: Any, context: aio.ServicerContext) -> Any:
        return self.messages["ServerLive"][1](live=self.plane.live())

    async def ServerReady(self, request: Any, context: aio.ServicerContext) -> Any:
        return self.messages["ServerReady"][1](ready=self.plane.ready())

    async def ModelReady(self, request: Any, context: aio.ServicerContext) -> Any:
        served = self.plane.repository.get_quietly(request.name, request.version or None)
        return self.messages["ModelReady"][1](ready=served is not None and self.plane.model_ready(served))

    async def ServerMetadata(self, request: Any, context: aio.ServicerContext) -> Any:
        return json_format.ParseDict(self.plane.server_metadata(), self.messages["ServerMetadata"][1]())

    async def ModelMetadata(self, request: Any, context: aio.ServicerContext) -> Any:
        metadata = self.plane.model_metadata(self._model(request))
        return json_format.ParseDict({key: metadata[key] for key in ("name", "versions", "platform", "inputs", "outputs")},
                                     self.messages["ModelMetadata"][1]())

    async def ModelConfig(self, request: Any, context: aio.ServicerContext) -> Any:
        config = self.plane.model_config(self._model(request))
        return self.messages["ModelConfig"][1](config=json_format.ParseDict(config, protos.message("ModelConfig")()))

    async def ModelStatistics(self, request: Any, context: aio.ServicerContext) -> Any:
        statistics = self.plane.statistics(request.name or None, request.version or None)
        return json_format.ParseDict(statistics, self.messages["ModelStatistics"][1]())

    async def RepositoryIndex(self, request: Any, context: aio.ServicerContext) -> Any:
        return json_format.ParseDict({"models": self.plane.repository_index(request.ready)}, self.messages["RepositoryIndex"][1]())

    async def RepositoryModelLoad(self, request: Any, context: aio.ServicerContext) -> Any:
        no_parameters(dict(request.parameters))
        await self.plane.load(request.model_name)
        return self.messages["RepositoryModelLoad"][1]()

    async def RepositoryModelUnload(self, request: Any, context: aio.ServicerContext) -> Any:
        no_parameters(dict(request.parameters), frozenset({"unload_dependents"}))
        await self.plane.unload(request.model_name)
        return self.messages["RepositoryModelUnload"][1]()

    async def ModelInfer(self, request: Any, context: aio.ServicerContext) -> Any:
        return await self._infer(request)

    async def _infer(self, request: Any) -> Any:
        model = self.plane.model(request.model_name, request.model_version or None)
        decoded, outputs, parameters = await self.plane.infer(model, lambda model: decode_infer(request, model.input, model.outputs, model.column_inputs))
        return encode_infer(self.messages["ModelInfer"][1](), model, decoded, outputs, parameters)

    async def ModelStreamInfer(self, requests: AsyncIterator[Any], context: aio.ServicerContext) -> AsyncIterator[Any]:
        """Triton's streaming inference: one response per request, in order; a request that fails
        gets its message in ``error_message`` and the stream goes on."""
        stream_response = self.messages["ModelStreamInfer"][1]
        async for request in requests:
            started, code = time.perf_counter(), "OK"
            try:
                yield stream_response(infer_response=await self._infer(request))
            except Exception as error:
                status = error_status(error)
                code = CODES.get(status, grpc.StatusCode.INTERNAL).name
                if status == 500:
                    log.error("internal error on ModelStreamInfer", exc_info=error)
                yield stream_response(error_message=f"internal error: {type(error).__name__}" if status == 500 else str(error))
            finally:
                served = self.plane.repository.get_quietly(request.model_name, request.model_version or None)
                label = (served.name, served.version) if served is not None else ("", "")
                self.plane.metrics.observe_request(label[0], label[1], "infer", code, time.perf_counter() - started, "grpc")


#: RPC names as the endpoint label of the metrics (the REST side's names)
_ENDPOINTS = {"ModelInfer": "infer", "ServerLive": "health", "ServerReady": "health", "ModelReady": "model_ready",
              "ServerMetadata": "server_metadata", "ModelMetadata": "model_metadata", "ModelConfig": "model_config",
              "ModelStatistics": "statistics", "RepositoryIndex": "repository_index", "RepositoryModelLoad": "repository_load",
              "RepositoryModelUnload": "repository_unload"}


def _metadata(context: aio.ServicerContext, key: str) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name == key:
            return value if isinstance(value, str) else None
    return None


class GrpcServer:
    """The gRPC server of one data plane, bound to its port when made (so a port in use is said
    before the server starts) and running while :meth:`serving` is entered."""

    def __init__(self, plane: DataPlane, host: str, port: int, grace_seconds: float = 30.0, tls: tuple[bytes, bytes] | None = None,
                 shared_port: bool = False) -> None:
        self.plane, self.grace_seconds = plane, grace_seconds
        limit = plane.settings.max_body_bytes
        token = plane.settings.token
        # so_reuseport 0: a port another process holds is an error here, not two servers sharing it; the
        # workers of one server (--workers) share theirs, which the supervisor checked was free
        self.server = aio.server(interceptors=[TokenInterceptor(token)] if token is not None else None,
                                 options=[("grpc.so_reuseport", int(shared_port)), ("grpc.max_receive_message_length", limit),
                                          ("grpc.max_send_message_length", -1)])
        self.server.add_generic_rpc_handlers((InferenceService(plane).handler(),))
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            if tls is None:
                self.port = self.server.add_insecure_port(address)
            else:  # (certificate chain, key), as access.check_tls read them
                self.port = self.server.add_secure_port(address, grpc.ssl_server_credentials([(tls[1], tls[0])]))
        except RuntimeError as error:
            raise predict.DeployError(f"cannot listen for gRPC on {host} port {port} ({error}); another process may listen there: "
                                      "choose another --grpc-port, or stop that process") from None

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        """Serving inside (health SERVING for the server and for the inference service); on the way
        out, health says NOT_SERVING, new RPCs are refused and those in flight finish."""
        await self.server.start()
        for service in ("", SERVICE_NAME):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        log.info("gRPC (%s and grpc.health.v1) on port %d", SERVICE_NAME, self.port)
        try:
            yield
        finally:
            await self.health.enter_graceful_shutdown()
            await self.server.stop(self.grace_seconds)
