"""ServerMetrics in-process: the outcome of every error class, the per-version recorder, and a scrape that
still answers when the event loop does not."""

from __future__ import annotations

import asyncio
import time

import pytest
from modelport.server.errors import (
    DeadlineExceeded,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    ModelportError,
    PayloadTooLarge,
    QueueFull,
    ServerUnavailable,
    Unsupported,
)
from modelport.server.metrics import Outcome, ServerMetrics, VersionState, WorkerState, outcome_of
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families


def _values(metrics: ServerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (None, Outcome.SUCCESS),
        (InvalidInput("x"), Outcome.INVALID_INPUT),
        (ModelNotFound("x"), Outcome.INVALID_INPUT),
        (PayloadTooLarge("x"), Outcome.INVALID_INPUT),
        (Unsupported("x"), Outcome.INVALID_INPUT),
        (QueueFull("x"), Outcome.QUEUE_FULL),
        (DeadlineExceeded("x"), Outcome.TIMEOUT),
        (ModelNotReady("x"), Outcome.SERVER_ERROR),
        (ServerUnavailable("x"), Outcome.SERVER_ERROR),
        (ModelportError("x"), Outcome.SERVER_ERROR),
        (RuntimeError("x"), Outcome.SERVER_ERROR),
    ],
)
def test_outcome_of_every_error_class(error: BaseException | None, outcome: Outcome) -> None:
    assert outcome_of(error) is outcome


def test_version_metrics_count_batches_restarts_and_scaling() -> None:
    metrics = ServerMetrics(process_metrics=False)
    version = metrics.for_version("m", "2")
    for rows in (1, 3, 8):
        version.record_execution(rows)
    version.record_worker_restart()
    version.record_autoscale("up")
    version.record_autoscale("up")
    version.record_autoscale("down")
    values = _values(metrics)
    labels = (("model", "m"), ("version", "2"))
    assert values[("modelport_executions_total", labels)] == 3
    assert values[("modelport_batch_size_count", labels)] == 3
    assert values[("modelport_batch_size_sum", labels)] == 12
    assert values[("modelport_batch_size_bucket", (("le", "2.0"), *labels))] == 1
    assert values[("modelport_worker_restarts_total", labels)] == 1
    assert values[("modelport_autoscale_decisions_total", (("direction", "up"), *labels))] == 2
    assert values[("modelport_autoscale_decisions_total", (("direction", "down"), *labels))] == 1


def test_live_state_is_read_on_the_loop_and_a_stuck_loop_only_drops_those_series() -> None:
    metrics = ServerMetrics(process_metrics=False)
    metrics.record_model_load("m", "1", duration_s=0.3, ok=True)
    state = [VersionState("m", "1", 5, [WorkerState("1", 0, "busy"), WorkerState("2", 0, "ready")])]

    async def scrape_while_running() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        metrics.watch(asyncio.get_running_loop(), lambda: state)
        return await asyncio.to_thread(_values, metrics)  # scrapes run in the listener's thread

    values = asyncio.run(scrape_while_running())
    assert values[("modelport_queue_depth", (("model", "m"), ("version", "1")))] == 5
    assert values[("modelport_workers", (("model", "m"), ("state", "busy"), ("version", "1")))] == 1

    never_runs = asyncio.new_event_loop()
    try:
        metrics.watch(never_runs, lambda: state)
        started = time.monotonic()
        values = _values(metrics)
        assert time.monotonic() - started < 5
    finally:
        never_runs.close()
    assert not any(name == "modelport_queue_depth" for name, _ in values)
    assert values[("modelport_model_loads_total", (("model", "m"), ("version", "1")))] == 1
