"""ServerMetrics in-process: the outcome of every error class, the per-version recorder, the exposition of
the per-request series (exact text, bucket bounds, ``_created``, a scrape racing the writer), and a scrape
that still answers when the event loop does not."""

from __future__ import annotations

import asyncio
import math
import sys
import threading
import time
from collections.abc import Sequence

import prometheus_client
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
from modelport.server.executor import ExecutionResult
from modelport.server.observability.metrics import (
    BATCH_SIZE_BUCKETS,
    LATENCY_BUCKETS,
    Outcome,
    ServerMetrics,
    VersionState,
    WorkerState,
    outcome_of,
)
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


def _result(*, queue_s: float, compute_s: float) -> ExecutionResult:
    return ExecutionResult(
        outputs={},
        queue_ns=round(queue_s * 1e9),
        compute_input_ns=0,
        compute_infer_ns=round(compute_s * 1e9),
        compute_output_ns=0,
        batch_size=1,
    )


def _text(metrics: ServerMetrics, *families: str) -> str:
    """The Prometheus text lines of ``families``, less the ``_created`` ones (their values are clock time)."""
    kept = []
    for line in generate_latest(metrics.registry).decode().splitlines():
        name = line.split(" ")[2] if line.startswith("#") else line.split("{")[0].split(" ")[0]
        if not name.endswith("_created") and any(name.startswith(family) for family in families):
            kept.append(line + "\n")
    return "".join(kept)


def test_request_and_batch_series_are_written_as_prometheus_client_wrote_them() -> None:
    metrics = ServerMetrics(process_metrics=False)
    metrics.record_request(
        model="m", version="1", protocol="grpc", outcome=Outcome.SUCCESS, duration_s=0.003, inferences=2
    )
    metrics.record_request(
        model="m", version="1", protocol="grpc", outcome=Outcome.SUCCESS, duration_s=0.25, inferences=2
    )
    version = metrics.for_version("m", "1")
    for rows in (1, 3, 3, 2000):
        version.record_execution(rows)
    labels = 'model="m",outcome="success",protocol="grpc",version="1"'
    buckets = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2]  # cumulative, the last one +Inf
    bounds = [*(str(bound) for bound in LATENCY_BUCKETS), "+Inf"]
    assert (
        _text(metrics, "modelport_requests_total", "modelport_request_duration_seconds")
        == (
            "# HELP modelport_requests_total Inference requests by outcome.\n"
            "# TYPE modelport_requests_total counter\n"
            f"modelport_requests_total{{{labels}}} 2.0\n"
            + "".join(  # a known version's failure outcomes, at 0 before any failure (counter only)
                f'modelport_requests_total{{model="m",outcome="{outcome}",protocol="{protocol}",'
                'version="1"} 0.0\n'
                for protocol in ("http", "grpc")
                for outcome in ("invalid_input", "queue_full", "timeout", "server_error")
            )
            + "# HELP modelport_request_duration_seconds Time from a request entering the data plane to its"
            " answer (or error), all outcomes.\n"
            "# TYPE modelport_request_duration_seconds histogram\n"
            + "".join(
                f'modelport_request_duration_seconds_bucket{{le="{le}",{labels}}} {count}.0\n'
                for le, count in zip(bounds, buckets, strict=True)
            )
            + f"modelport_request_duration_seconds_count{{{labels}}} 2.0\n"
            f"modelport_request_duration_seconds_sum{{{labels}}} 0.253\n"
        )
    )
    labels = 'model="m",version="1"'
    assert _text(metrics, "modelport_executions", "modelport_batch_size") == (
        "# HELP modelport_executions_total Model executions (batches run; many requests can share one).\n"
        "# TYPE modelport_executions_total counter\n"
        f"modelport_executions_total{{{labels}}} 4.0\n"
        "# HELP modelport_batch_size Rows per executed batch.\n"
        "# TYPE modelport_batch_size histogram\n"
        f'modelport_batch_size_bucket{{le="1.0",{labels}}} 1.0\n'
        f'modelport_batch_size_bucket{{le="2.0",{labels}}} 1.0\n'
        f'modelport_batch_size_bucket{{le="4.0",{labels}}} 3.0\n'
        + "".join(
            f'modelport_batch_size_bucket{{le="{le}.0",{labels}}} 3.0\n'
            for le in (8, 16, 32, 64, 128, 256, 512, 1024)
        )
        + f'modelport_batch_size_bucket{{le="+Inf",{labels}}} 4.0\n'
        f"modelport_batch_size_count{{{labels}}} 4.0\n"
        f"modelport_batch_size_sum{{{labels}}} 2007.0\n"
    )


def _cumulative(
    metrics: ServerMetrics, histogram: str, labels: dict[str, str]
) -> tuple[dict[float, float], float, float]:
    """A histogram series' cumulative buckets by bound (``math.inf`` last), its count and its sum."""
    key = tuple(sorted(labels.items()))
    values = _values(metrics)
    buckets = {
        float(dict(sample_labels)["le"]): value
        for (name, sample_labels), value in values.items()
        if name == f"{histogram}_bucket" and tuple(kv for kv in sample_labels if kv[0] != "le") == key
    }
    return buckets, values[(f"{histogram}_count", key)], values[(f"{histogram}_sum", key)]


def _assert_one_per_bound(buckets: dict[float, float], bounds: Sequence[float]) -> None:
    """Each bound observed once exactly, then one value above the last: le=bound counts every value up to and
    including that bound (a value on a bound is in that bound's bucket, not the next)."""
    assert list(buckets) == [*bounds, math.inf]
    assert list(buckets.values()) == list(range(1, len(bounds) + 2))


def test_a_value_on_a_bucket_bound_is_counted_in_that_bucket() -> None:
    metrics = ServerMetrics(process_metrics=False)
    labels = {"model": "m", "version": "1"}
    above = LATENCY_BUCKETS[-1] * 2
    for duration in (*LATENCY_BUCKETS, above):
        metrics.record_request(
            model="m",
            version="1",
            protocol="http",
            outcome=Outcome.SUCCESS,
            duration_s=duration,
            result=_result(queue_s=duration, compute_s=duration),
        )
    version = metrics.for_version("m", "1")
    for rows in (*BATCH_SIZE_BUCKETS, BATCH_SIZE_BUCKETS[-1] + 1):
        version.record_execution(rows)

    request_labels = {**labels, "protocol": "http", "outcome": "success"}
    for histogram, series_labels in [
        ("modelport_request_duration_seconds", request_labels),
        ("modelport_queue_duration_seconds", labels),
        ("modelport_compute_duration_seconds", labels),
    ]:
        buckets, count, total = _cumulative(metrics, histogram, series_labels)
        _assert_one_per_bound(buckets, LATENCY_BUCKETS)
        assert count == len(LATENCY_BUCKETS) + 1
        assert total == pytest.approx(sum(LATENCY_BUCKETS) + above)
    buckets, count, total = _cumulative(metrics, "modelport_batch_size", labels)
    _assert_one_per_bound(buckets, BATCH_SIZE_BUCKETS)
    assert total == sum(BATCH_SIZE_BUCKETS) + BATCH_SIZE_BUCKETS[-1] + 1


def test_in_flight_counts_nested_requests_and_drops_a_failed_one() -> None:
    metrics = ServerMetrics(process_metrics=False)
    key = ("modelport_requests_in_flight", (("model", "m"), ("version", "1")))
    with metrics.in_flight("m", "1"):
        with metrics.in_flight("m", "1"):
            assert _values(metrics)[key] == 2
        assert _values(metrics)[key] == 1
    with pytest.raises(RuntimeError), metrics.in_flight("m", "1"):
        raise RuntimeError("the request failed")
    assert _values(metrics)[key] == 0


def test_created_samples_follow_the_librarys_switch() -> None:
    metrics = ServerMetrics(process_metrics=False)
    metrics.record_request(
        model="m",
        version="1",
        protocol="grpc",
        outcome=Outcome.SUCCESS,
        duration_s=0.1,
        result=_result(queue_s=0.01, compute_s=0.02),
    )
    metrics.for_version("m", "1").record_execution(2)
    created = {name for name, _ in _values(metrics) if name.endswith("_created")}
    assert {
        "modelport_requests_created",
        "modelport_request_duration_seconds_created",
        "modelport_inferences_created",
        "modelport_queue_duration_seconds_created",
        "modelport_compute_duration_seconds_created",
        "modelport_executions_created",
        "modelport_batch_size_created",
    } <= created
    assert all(
        time.time() - 60 < value <= time.time()
        for (name, _), value in _values(metrics).items()
        if name in created
    )
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in the library
    try:
        assert not any(name.endswith("_created") for name, _ in _values(metrics))
    finally:
        prometheus_client.enable_created_metrics()  # type: ignore[no-untyped-call]


def test_a_scrape_in_another_thread_while_the_series_are_written() -> None:
    """The writer keeps adding series and observations until the scraper has scraped a few times (or a
    deadline passes); every scrape must succeed, and the last one must count every request written."""
    metrics = ServerMetrics(process_metrics=False)
    deadline = time.monotonic() + 30
    written = scrapes = 0
    errors: list[BaseException] = []
    done = threading.Event()

    def write() -> None:
        nonlocal written
        try:
            while (written < 5_000 or scrapes < 10) and time.monotonic() < deadline:
                model = f"m{written % 40}"  # new series keep appearing while the first scrapes run
                with metrics.in_flight(model, "1"):
                    metrics.record_request(
                        model=model,
                        version="1",
                        protocol="grpc",
                        outcome=Outcome.SUCCESS if written % 3 else Outcome.TIMEOUT,
                        duration_s=written * 1e-5,
                        inferences=1,
                        result=_result(queue_s=1e-4, compute_s=1e-3),
                    )
                metrics.for_version(model, "1").record_execution(written % 9)
                written += 1
        finally:
            done.set()

    def scrape() -> None:
        nonlocal scrapes
        while not done.is_set() and time.monotonic() < deadline:
            try:
                generate_latest(metrics.registry)
            except BaseException as error:  # reported by the assertion below
                errors.append(error)
                return
            scrapes += 1

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, in the middle of writes
    try:
        threads = [threading.Thread(target=write, daemon=True), threading.Thread(target=scrape, daemon=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        sys.setswitchinterval(interval)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert scrapes >= 10 and written >= 5_000
    values = _values(metrics)
    assert sum(v for (name, _), v in values.items() if name == "modelport_requests_total") == written
    assert sum(v for (name, _), v in values.items() if name == "modelport_executions_total") == written
    assert not any(v for (name, _), v in values.items() if name == "modelport_requests_in_flight")
