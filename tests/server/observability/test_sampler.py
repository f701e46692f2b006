"""The console's sampler: rates and quantiles from the metrics the server records, bounded in memory."""

from __future__ import annotations

import pytest
from modelport.server.executor import ExecutorStatus, WorkerStatus
from modelport.server.observability.metrics import LATENCY_BUCKETS, Outcome, ServerMetrics
from modelport.server.observability.sampler import LiveSampler, quantile

_STATUS = ExecutorStatus(
    min_workers=1,
    max_workers=2,
    threads=1,
    workers=[WorkerStatus(id=1, pid=4242, state="READY", started_at=90.0, batches=7)],
    queue_depth=3,
    queue_capacity=100,
    batches_in_flight=1,
    failure=None,
)


def _record(metrics: ServerMetrics, seconds: float, times: int, outcome: Outcome = Outcome.SUCCESS) -> None:
    for _ in range(times):
        metrics.record_request(
            model="m", version="1", protocol="http", outcome=outcome, duration_s=seconds, inferences=1
        )


def _bucket(value: float) -> tuple[float, float]:
    """The (lower, upper] latency bucket ``value`` falls in."""
    upper = next(b for b in LATENCY_BUCKETS if value <= b)
    index = LATENCY_BUCKETS.index(upper)
    return (LATENCY_BUCKETS[index - 1] if index else 0.0), upper


def test_quantile_interpolates_within_the_bucket() -> None:
    counts = [0.0] * (len(LATENCY_BUCKETS) + 1)
    counts[1] = 10  # (0.0001, 0.00025]
    assert quantile(0.5, counts) == pytest.approx(0.0001 + 0.00015 * 0.5)
    assert quantile(0.5, [0.0] * len(counts)) is None
    counts[-1] = 1000  # almost everything beyond the last bound
    assert quantile(0.99, counts) == LATENCY_BUCKETS[-1]


def test_rate_and_quantiles_come_from_the_recorded_requests() -> None:
    metrics = ServerMetrics(process_metrics=False)
    sampler = LiveSampler(metrics, lambda: [("m", "1", _STATUS)])
    _record(metrics, 0.5, 50)  # before the first tick: the baseline, not in any sample
    sampler.tick(now=100.0)
    _record(metrics, 0.003, 100)
    _record(metrics, 2.0, 10)
    _record(metrics, 0.003, 10, Outcome.INVALID_INPUT)
    sampler.tick(now=102.0)
    (entry,) = sampler.snapshot()["versions"]
    samples = entry["samples"]
    assert samples["t"] == [102.0]
    assert samples["rate"] == [pytest.approx(120 / 2.0)]
    assert samples["errors"] == [pytest.approx(10 / 2.0)]
    low, high = _bucket(0.003)
    assert low * 1000 <= samples["p50_ms"][0] <= high * 1000
    low, high = _bucket(2.0)
    assert low * 1000 <= samples["p99_ms"][0] <= high * 1000
    assert samples["queue"] == [3]
    assert entry["queue_depth"] == 3 and entry["queue_capacity"] == 100
    (worker,) = entry["workers"]
    assert worker["pid"] == 4242 and worker["state"] == "ready" and worker["batches"] == 7


def test_an_idle_interval_has_no_latency_and_the_window_is_bounded() -> None:
    metrics = ServerMetrics(process_metrics=False)
    sampler = LiveSampler(metrics, lambda: [("m", "1", _STATUS)], interval_s=2.0, window_s=20.0)
    for tick in range(30):
        sampler.tick(now=1000.0 + 2 * tick)
    samples = sampler.snapshot()["versions"][0]["samples"]
    assert len(samples["t"]) == sampler.capacity == 10
    assert samples["rate"] == [0.0] * 10 and samples["p50_ms"] == [None] * 10
    assert sampler.snapshot(since=samples["t"][-2])["versions"][0]["samples"]["t"] == [samples["t"][-1]]


def test_a_version_that_stops_serving_loses_its_series() -> None:
    metrics = ServerMetrics(process_metrics=False)
    serving = [("m", "1", _STATUS), ("n", "1", _STATUS)]
    sampler = LiveSampler(metrics, lambda: serving)
    sampler.tick(now=1.0)
    sampler.tick(now=3.0)
    serving.pop()
    sampler.tick(now=5.0)
    assert [v["model"] for v in sampler.snapshot()["versions"]] == ["m"]
