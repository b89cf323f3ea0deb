"""Prometheus metrics for ``/metrics``, with prometheus-client.

Each server gets its own registry, so two apps in one process (tests) never collide. Labels are
bounded: a request for a model the server does not have is counted under ``model=""``, so a
client cannot grow the label set by inventing names. Requests of both front ends are counted
together, told apart by ``protocol`` (``http`` or ``grpc``); ``code`` is the HTTP status for one and
the gRPC status name (``OK``, ``INVALID_ARGUMENT``, …) for the other.

With ``--workers`` the supervisor sets ``PROMETHEUS_MULTIPROC_DIR`` before the workers start, so
prometheus-client keeps every value in files there, and a scrape answered by any worker merges all
of them (the queue depth gauge is summed over the workers alive).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

from pipeline_core_deploy.serve.batching import Observer
from pipeline_core_deploy.serve.statistics import ModelStatistics

disable_created_metrics()  # the *_created series only double the output
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Metrics:
    """The server's counters, histograms and gauges."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "pipeline_serve_requests", "Requests (HTTP and gRPC) by model, endpoint and status code",
            ("model", "version", "endpoint", "code", "protocol"), registry=self.registry,
        )
        self.latency = Histogram(
            "pipeline_serve_request_duration_seconds", "Time from request to response, by model and endpoint",
            ("model", "version", "endpoint", "protocol"), buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.batch_size = Histogram(
            "pipeline_serve_batch_size", "Rows per onnxruntime call", ("model", "version"), buckets=BATCH_BUCKETS, registry=self.registry,
        )
        self.inference = Histogram(
            "pipeline_serve_inference_duration_seconds", "Time of one onnxruntime call (one batch)",
            ("model", "version"), buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.queue_depth = Gauge(
            "pipeline_serve_queue_depth", "Requests waiting for a batch", ("model", "version"), registry=self.registry,
            multiprocess_mode="livesum",
        )
        self._children: dict[tuple[str, str, str, int | str, str], tuple[Counter, Histogram]] = {}

    def observe_request(self, model: str, version: str, endpoint: str, code: int | str, seconds: float, protocol: str = "http") -> None:
        key = (model, version, endpoint, code, protocol)
        children = self._children.get(key)
        if children is None:  # label lookups cost more than the update; the label sets are few and bounded
            children = self._children[key] = (self.requests.labels(model, version, endpoint, str(code), protocol),
                                              self.latency.labels(model, version, endpoint, protocol))
        children[0].inc()
        children[1].observe(seconds)

    def observer(
        self, model: str, version: str, statistics: ModelStatistics | None = None, call_sizes: Callable[[int], list[int]] | None = None
    ) -> Observer:
        """What one model's batcher reports to (and the model's statistics, for the statistics extension);
        ``call_sizes`` splits a batch's rows into the onnxruntime calls that ran them."""
        return _ModelObserver(self, model, version, statistics or ModelStatistics(), call_sizes or (lambda rows: [rows]))

    def render(self) -> bytes:
        if MULTIPROCESS_ENV in os.environ:  # --workers: every worker's values, merged from their files
            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)
            return generate_latest(merged)
        return generate_latest(self.registry)


class _ModelObserver(Observer):
    def __init__(self, metrics: Metrics, model: str, version: str, statistics: ModelStatistics, call_sizes: Callable[[int], list[int]]) -> None:
        self._call_sizes = call_sizes
        self._depth = metrics.queue_depth.labels(model, version)
        self._rows = metrics.batch_size.labels(model, version)
        self._seconds = metrics.inference.labels(model, version)
        self._statistics = statistics

    def queue_depth(self, requests: int) -> None:
        self._depth.set(requests)

    def executed(self, rows: int, requests: int, queued_ns: int, input_ns: int, infer_ns: int, output_ns: int) -> None:
        calls = self._call_sizes(rows)  # rows per onnxruntime call: 1 each for a model whose rows run alone
        for size in calls:
            self._rows.observe(size)
        self._seconds.observe(infer_ns / 1e9)
        self._statistics.executed(rows, requests, queued_ns, input_ns, infer_ns, output_ns, calls)
