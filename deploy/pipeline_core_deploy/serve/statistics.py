"""Triton's statistics extension: per model, how many requests succeeded and failed and where their
time went (queue, compute input, compute infer, compute output), and how many model executions ran
at each batch size (``GET /v2/models/{name}/stats``, gRPC ``ModelStatistics``).

Why kept beside the Prometheus metrics rather than read from them: the extension's fields are
cumulative counts and nanoseconds per model version, which a dashboard reading ``tritonclient``'s
``get_inference_statistics`` expects exactly, while ``/metrics`` keeps histograms. Both are fed by the
same events (:class:`~pipeline_core_deploy.serve.batching.Observer` for executions, the data plane for
requests), so they agree: ``execution_count`` is the count of ``pipeline_serve_batch_size`` and
``inference_count`` its sum; ``success.count`` is the number of ``infer`` and ``predict`` requests
answered 200 (REST) or OK (gRPC).

Triton's meanings, kept here: ``success`` and ``fail`` count requests and the time each spent in the
server; ``queue`` and the three ``compute_*`` count the successful requests and the time each spent
there (a request batched with others is charged its whole batch's compute time); ``batch_stats`` counts
executions per batch size. Every duration is in nanoseconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

PHASES = ("compute_input", "compute_infer", "compute_output")


@dataclass
class Duration:
    """A count and the nanoseconds it took in all (Triton's ``StatisticDuration``)."""

    count: int = 0
    ns: int = 0

    def add(self, ns: int, count: int = 1) -> None:
        self.count += count
        self.ns += ns

    def as_json(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass
class BatchStatistics:
    """The executions of one batch size and their compute time."""

    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)


@dataclass
class ModelStatistics:
    """What one model version has done since it was loaded."""

    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)
    inference_count: int = 0  # rows run (Triton: inferences, one per batch item)
    execution_count: int = 0  # model executions (batches)
    last_inference_ms: int = 0  # milliseconds since the epoch of the last success
    batches: dict[int, BatchStatistics] = field(default_factory=dict)

    def request_done(self, ns: int, ok: bool) -> None:
        if ok:
            self.success.add(ns)
            self.last_inference_ms = time.time_ns() // 1_000_000
        else:
            self.fail.add(ns)

    def executed(
        self, rows: int, requests: int, queued_ns: int, input_ns: int, infer_ns: int, output_ns: int, calls: Sequence[int] | None = None
    ) -> None:
        """One model execution of ``rows`` rows for ``requests`` requests, which had waited ``queued_ns``
        in all before it began; ``calls`` are the rows of each onnxruntime call it made (one call of
        ``rows`` when not given). Each call is an execution of its size, charged its rows' share of the time."""
        sizes = list(calls) if calls else [rows]
        self.inference_count += rows
        self.execution_count += len(sizes)
        self.queue.add(queued_ns, requests)
        self.compute_input.add(input_ns * requests, requests)
        self.compute_infer.add(infer_ns * requests, requests)
        self.compute_output.add(output_ns * requests, requests)
        for size in sizes:
            per_size = self.batches.get(size)
            if per_size is None:
                per_size = self.batches[size] = BatchStatistics()
            share = size / rows if rows else 1.0
            per_size.compute_input.add(round(input_ns * share))
            per_size.compute_infer.add(round(infer_ns * share))
            per_size.compute_output.add(round(output_ns * share))

    def as_json(self, name: str, version: str) -> dict[str, Any]:
        """Triton's ``ModelStatistics`` in its JSON form (the gRPC message has the same fields)."""
        inference = {key: getattr(self, key).as_json() for key in ("success", "fail", "queue", *PHASES)}
        inference["cache_hit"] = inference["cache_miss"] = Duration().as_json()  # no response cache
        return {
            "name": name,
            "version": version,
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": inference,
            "batch_stats": [
                {"batch_size": size, **{key: getattr(stats, key).as_json() for key in PHASES}}
                for size, stats in sorted(self.batches.items())
            ],
        }


def merged(answer: dict[str, Any], others: list[dict[str, Any]]) -> dict[str, Any]:
    """``answer`` (one model version's :meth:`ModelStatistics.as_json`) with the same model version's
    figures from other worker processes added: counts and durations summed, batch sizes joined, the
    latest ``last_inference``."""
    total = json.loads(json.dumps(answer))  # a deep copy
    for other in others:
        total["last_inference"] = max(total["last_inference"], other["last_inference"])
        for key in ("inference_count", "execution_count"):
            total[key] += other[key]
        for key, duration in other["inference_stats"].items():
            mine = total["inference_stats"].setdefault(key, {"count": 0, "ns": 0})
            mine["count"], mine["ns"] = mine["count"] + duration["count"], mine["ns"] + duration["ns"]
        sizes = {entry["batch_size"]: entry for entry in total["batch_stats"]}
        for entry in other["batch_stats"]:
            mine = sizes.setdefault(entry["batch_size"], {"batch_size": entry["batch_size"], **{k: {"count": 0, "ns": 0} for k in PHASES}})
            for key in PHASES:
                mine[key] = {"count": mine[key]["count"] + entry[key]["count"], "ns": mine[key]["ns"] + entry[key]["ns"]}
        total["batch_stats"] = [sizes[size] for size in sorted(sizes)]
    return total
