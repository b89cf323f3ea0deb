"""``pipeline serve``: bundles over the Open Inference Protocol (KServe v2 REST).

protocol.py (tensors on the wire), batching.py (the dynamic batcher), models.py (the model
repository), metrics.py (Prometheus), app.py (the Starlette routes), config.py (what to serve and
how to batch it) and cli.py (the command). Nothing here imports torch or ``pipeline_core``.
"""

#: the default limits on one request, which bound one request's memory (docs/deploy.md, "Limits and memory")
MAX_BODY_BYTES, MAX_REQUEST_ROWS = 8 * 1024 * 1024, 4096
