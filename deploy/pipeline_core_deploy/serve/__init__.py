"""``pipeline serve``: bundles over the Open Inference Protocol (KServe v2 REST, and gRPC).

dataplane.py (what every request means, whatever front end carries it), hot_routes.py (``…/infer``
and ``…/predict`` in plain ASGI), app.py (the other routes on Starlette, the access log),
grpc_routes.py (the gRPC front end; protos/ holds Triton's protocol definition), protocol.py
(tensors on the wire), batching.py (the dynamic batcher), models.py (the served models),
model_repository.py (loading and unloading while serving), statistics.py (Triton's statistics),
request_ids.py, access.py (TLS, bearer token, CORS), metrics.py (Prometheus), config.py (what to
serve and how to batch it), logs.py and cli.py (the command). Nothing here imports torch or
``pipeline_core``.
"""

#: the default limits on one request, which bound one request's memory (docs/deploy.md, "Limits and memory")
MAX_BODY_BYTES, MAX_REQUEST_ROWS = 8 * 1024 * 1024, 4096
