"""Per model-version inference statistics in the shape of Triton's statistics extension.

Durations are cumulative ``{"count", "ns"}`` pairs. ``inference_count`` counts rows (batch elements);
``execution_count`` counts model runs: a request that shared a batch of ``b`` rows with others adds
``rows / b`` of that run, so the sum over every request of a batch is exactly one run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..executor import ExecutionResult
from ..warmup import WarmupTimes

__all__ = ["VersionStatistics"]


@dataclass(slots=True)
class _Duration:
    count: int = 0
    ns: int = 0

    def add(self, ns: int) -> None:
        self.count += 1
        self.ns += ns

    def to_json(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass(slots=True)
class _BatchStats:
    executions: float = 0.0
    compute_input_ns: float = 0.0
    compute_infer_ns: float = 0.0
    compute_output_ns: float = 0.0

    def to_json(self, batch_size: int) -> dict[str, Any]:
        count = round(self.executions)
        return {
            "batch_size": batch_size,
            "compute_input": {"count": count, "ns": round(self.compute_input_ns)},
            "compute_infer": {"count": count, "ns": round(self.compute_infer_ns)},
            "compute_output": {"count": count, "ns": round(self.compute_output_ns)},
        }


@dataclass(slots=True)
class VersionStatistics:
    """Counters of one loaded model version; updated from the event loop only (no locking)."""

    name: str
    version: str
    success: _Duration = field(default_factory=_Duration)
    fail: _Duration = field(default_factory=_Duration)
    queue: _Duration = field(default_factory=_Duration)
    compute_input: _Duration = field(default_factory=_Duration)
    compute_infer: _Duration = field(default_factory=_Duration)
    compute_output: _Duration = field(default_factory=_Duration)
    cache_hit: _Duration = field(default_factory=_Duration)
    cache_miss: _Duration = field(default_factory=_Duration)
    inference_count: int = 0
    executions: float = 0.0
    last_inference_ms: int = 0
    batches: dict[int, _BatchStats] = field(default_factory=dict)
    warmup: WarmupTimes = field(default_factory=WarmupTimes)  # the executor's, shared

    def record_success(self, result: ExecutionResult, *, rows: int, request_ns: int) -> None:
        """One request answered; ``rows`` is its own batch size, ``request_ns`` its whole duration.

        As in Triton, an answer from the response cache counts in ``success`` and ``cache_hit`` only (not in
        ``inference_count``, ``execution_count``, the queue or the compute times); a miss also in
        ``cache_miss``."""
        self.success.add(request_ns)
        self.last_inference_ms = time.time_ns() // 1_000_000
        if result.cache == "hit":
            self.cache_hit.add(result.cache_ns)
            return
        if result.cache == "miss":
            self.cache_miss.add(result.cache_ns)
        self.queue.add(result.queue_ns)
        self.compute_input.add(result.compute_input_ns)
        self.compute_infer.add(result.compute_infer_ns)
        self.compute_output.add(result.compute_output_ns)
        self.inference_count += rows
        share = rows / max(result.batch_size, 1)
        self.executions += share
        batch = self.batches.get(result.batch_size)
        if batch is None:  # not setdefault: that would build a _BatchStats per request to throw away
            batch = self.batches[result.batch_size] = _BatchStats()
        batch.executions += share
        batch.compute_input_ns += result.compute_input_ns * share
        batch.compute_infer_ns += result.compute_infer_ns * share
        batch.compute_output_ns += result.compute_output_ns * share

    def record_failure(self, *, request_ns: int) -> None:
        """One request that reached the model and failed."""
        self.fail.add(request_ns)
        self.last_inference_ms = time.time_ns() // 1_000_000

    def to_json(self) -> dict[str, Any]:
        """Triton's ``model_stats`` entry for this version."""
        return {
            "name": self.name,
            "version": self.version,
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count,
            "execution_count": round(self.executions),
            "inference_stats": {
                "success": self.success.to_json(),
                "fail": self.fail.to_json(),
                "queue": self.queue.to_json(),
                "compute_input": self.compute_input.to_json(),
                "compute_infer": self.compute_infer.to_json(),
                "compute_output": self.compute_output.to_json(),
                "cache_hit": self.cache_hit.to_json(),
                "cache_miss": self.cache_miss.to_json(),
            },
            "response_stats": {},
            "batch_stats": [self.batches[size].to_json(size) for size in sorted(self.batches)],
            "memory_usage": [],
            # Triton has no such field: modelport's own (REST only; gRPC's ModelStatistics has no slot).
            "modelport_warmup": self.warmup.to_json(),
        }
