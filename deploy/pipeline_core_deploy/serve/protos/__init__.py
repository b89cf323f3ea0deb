"""The KServe v2 gRPC protocol's messages, as Triton defines them (``grpc_service.proto`` and the
``model_config.proto`` it imports, kept here unchanged with their licence), built at import time.

Why not protoc's generated ``_pb2`` modules: generated code is tied to the protobuf runtime it was
generated for (it checks the version on import), and ``tritonclient.grpc`` registers its own copy of
the same ``.proto`` files in protobuf's default pool, so a process holding both would clash. Here the
descriptors come from ``inference.binpb``, a ``FileDescriptorSet`` compiled once from the two files,
into a pool of our own; any protobuf runtime from 4.22 reads it. After editing a ``.proto`` file,
regenerate it (the deploy suite checks that it matches the ``.proto`` files when grpcio-tools is
installed)::

    python -m grpc_tools.protoc -I deploy/pipeline_core_deploy/serve/protos --include_imports \\
        --descriptor_set_out=deploy/pipeline_core_deploy/serve/protos/inference.binpb grpc_service.proto
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

SERVICE = "inference.GRPCInferenceService"
DESCRIPTOR_SET = "inference.binpb"


def _messages() -> dict[str, Any]:
    files = descriptor_pb2.FileDescriptorSet.FromString(resources.files(__package__).joinpath(DESCRIPTOR_SET).read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    return message_factory.GetMessages(list(files.file), pool=pool)


_CLASSES = _messages()


def message(name: str) -> Any:
    """The message class ``inference.<name>`` (``"ModelInferRequest"``, ``"ModelConfig"``, …)."""
    return _CLASSES[f"inference.{name}"]


def methods() -> dict[str, tuple[Any, Any, bool, bool]]:
    """Every RPC of the service: its request and response classes, and whether each streams."""
    pool_file = message("ModelInferRequest").DESCRIPTOR.file
    service = pool_file.services_by_name[SERVICE.rsplit(".", 1)[1]]
    found = {}
    for method in service.methods:
        found[method.name] = (_CLASSES[method.input_type.full_name], _CLASSES[method.output_type.full_name],
                              method.client_streaming, method.server_streaming)
    return found
