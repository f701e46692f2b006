"""``/metrics`` of the real server: exact counter and histogram deltas for known traffic over REST and gRPC,
the statistics extension agreeing with them, load counters, worker gauges and OpenMetrics negotiation."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc as grpc_module
import httpx
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from modelport.server.workers.instances import INSTANCE_KINDS
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.helpers.onnx_models import identity_model, write_config, write_corrupt_model, write_model
from tests.helpers.scrape import Scrape, scrape
from tests.helpers.server_process import ServerProcess, start_server
from tests.helpers.tensors import grpc_ones, http_ones

MODEL = "identity"
SLOW = "slow_batching"
CRASHY = "crashy"  # its workers get scaled and killed
LABELS = {"model": MODEL, "version": "1"}


@pytest.fixture(scope="module", params=INSTANCE_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """The server's ``--instance-kind``: every count must be exact with either."""
    value: str = request.param
    return value


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, kind: str) -> Iterator[ServerProcess]:
    repository = tmp_path_factory.mktemp("repo")
    write_model(repository, MODEL, identity_model("FP32", (-1, 4)))
    write_corrupt_model(repository, "broken")
    # Holds a lone request up to 1 s waiting for more rows, and queues at most one: timeouts and full queues
    # happen on demand.
    write_model(repository, SLOW, identity_model("FP32", (-1, 4)))
    write_model(repository, CRASHY, identity_model("FP32", (-1, 4)))
    write_config(
        repository,
        SLOW,
        {"max_batch_size": 8, "dynamic_batching": {"max_queue_delay_us": 1_000_000, "max_queue_size": 1}},
    )
    with start_server(repository, "--instance-kind", kind) as process:
        yield process


def _delta(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


def _stats(entries: list[dict[str, Any]], model: str = MODEL) -> dict[str, Any]:
    (entry,) = [e for e in entries if e["name"] == model and e["version"] == "1"]
    return entry


def _grpc_stats(client: grpcclient.InferenceServerClient) -> dict[str, Any]:
    answer = client.get_inference_statistics(MODEL, as_json=True)
    entry = _stats(answer["model_stats"])
    stats = entry["inference_stats"]  # as_json: uint64 as strings, absent when zero
    return {
        "inference_count": int(entry.get("inference_count", 0)),
        "execution_count": int(entry.get("execution_count", 0)),
        "success": int(stats.get("success", {}).get("count", 0)),
        "fail": int(stats.get("fail", {}).get("count", 0)),
        "queue": int(stats.get("queue", {}).get("count", 0)),
    }


def _http_stats(client: httpclient.InferenceServerClient) -> dict[str, Any]:
    entry = _stats(client.get_inference_statistics(MODEL)["model_stats"])
    stats = entry["inference_stats"]
    return {
        "inference_count": entry["inference_count"],
        "execution_count": entry["execution_count"],
        "success": stats["success"]["count"],
        "fail": stats["fail"]["count"],
        "queue": stats["queue"]["count"],
    }


def test_known_traffic_gives_exact_counter_and_histogram_deltas(server: ServerProcess) -> None:
    http = httpclient.InferenceServerClient(server.http_url)
    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    before = scrape(server.metrics_url)
    stats_before = _http_stats(http)

    for _ in range(3):  # 3 successes of 2 rows over REST
        http.infer(MODEL, http_ones(2))
    for _ in range(4):  # 4 successes of 1 row over gRPC
        grpc.infer(MODEL, grpc_ones(1))
    for _ in range(2):  # 2 signature failures over REST (INT32 where FP32 is expected)
        with pytest.raises(InferenceServerException):
            http.infer(MODEL, http_ones(2, "INT32"))
    with pytest.raises(InferenceServerException):  # 1 over gRPC
        grpc.infer(MODEL, grpc_ones(1, "INT32"))
    with pytest.raises(InferenceServerException):  # an unknown model: counted under model=""
        http.infer("no_such_model", http_ones(1))
    # A gRPC request whose raw bytes do not match its shape fails in the adapter, and is counted all the same.
    bad = service_pb2.ModelInferRequest(model_name=MODEL, id="short-bytes")
    bad.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 4])
    bad.raw_input_contents.append(b"\0" * 3)
    with grpc_module.insecure_channel(server.grpc_url) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc_module.RpcError, match="short-bytes") as refused:
            stub.ModelInfer(bad, timeout=10)
    assert refused.value.code() == grpc_module.StatusCode.INVALID_ARGUMENT

    after = scrape(server.metrics_url)
    requests = "modelport_requests_total"
    durations = "modelport_request_duration_seconds_count"
    expected = {
        ("http", "success"): 3,
        ("grpc", "success"): 4,
        ("http", "invalid_input"): 2,
        ("grpc", "invalid_input"): 2,
    }
    for (protocol, outcome), count in expected.items():
        labels = {**LABELS, "protocol": protocol, "outcome": outcome}
        assert _delta(before, after, requests, **labels) == count, (protocol, outcome)
        assert _delta(before, after, durations, **labels) == count, (protocol, outcome)
    for outcome in ("queue_full", "timeout", "server_error"):
        assert _delta(before, after, requests, **LABELS, outcome=outcome) == 0
    unknown = {"model": "", "version": "", "protocol": "http", "outcome": "invalid_input"}
    assert _delta(before, after, requests, **unknown) == 1
    assert _delta(before, after, "modelport_inferences_total", **LABELS) == 3 * 2 + 4 * 1
    for histogram in ("modelport_queue_duration_seconds", "modelport_compute_duration_seconds"):
        assert _delta(before, after, f"{histogram}_count", **LABELS) == 7, histogram
        inf_bucket = _delta(before, after, f"{histogram}_bucket", **LABELS, le="+Inf")
        assert inf_bucket == 7, histogram
    # One request at a time: every request ran in a batch of its own.
    assert _delta(before, after, "modelport_executions_total", **LABELS) == 7
    assert _delta(before, after, "modelport_batch_size_count", **LABELS) == 7
    assert _delta(before, after, "modelport_batch_size_sum", **LABELS) == 10
    assert _delta(before, after, "modelport_batch_size_bucket", **LABELS, le="1.0") == 4
    assert _delta(before, after, "modelport_batch_size_bucket", **LABELS, le="2.0") == 7
    assert after.value("modelport_requests_in_flight", **LABELS) == 0

    # The statistics extension counts the same requests, over both protocols.
    stats_after = _http_stats(http)
    assert stats_after == _grpc_stats(grpc)
    assert stats_after["success"] - stats_before["success"] == 7
    assert stats_after["fail"] - stats_before["fail"] == 2 + 2
    assert stats_after["inference_count"] - stats_before["inference_count"] == 10
    assert stats_after["execution_count"] - stats_before["execution_count"] == 7
    assert stats_after["queue"] - stats_before["queue"] == 7


def test_timeouts_and_full_queues_are_counted_by_outcome(server: ServerProcess) -> None:
    http = httpclient.InferenceServerClient(server.http_url)
    labels = {"model": SLOW, "version": "1", "protocol": "http"}
    before = scrape(server.metrics_url)
    with pytest.raises(InferenceServerException, match="timeout"):  # 20 ms in a queue that waits 1 s
        http.infer(SLOW, http_ones(1), timeout=20_000)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(http_infer_fresh, server.http_url)  # sits in the queue for up to 1 s
        deadline = time.monotonic() + 5
        while scrape(server.metrics_url).value("modelport_queue_depth", model=SLOW) < 1:
            assert time.monotonic() < deadline, "the first request never showed in modelport_queue_depth"
            time.sleep(0.02)
        with pytest.raises(InferenceServerException, match="queue is full"):
            http.infer(SLOW, http_ones(1))
        waiting.result(timeout=10)
    after = scrape(server.metrics_url)
    for outcome in ("timeout", "queue_full", "success"):
        assert _delta(before, after, "modelport_requests_total", **labels, outcome=outcome) == 1, outcome
    assert _delta(before, after, "modelport_request_duration_seconds_count", **labels) == 3
    timed_out = _delta(before, after, "modelport_request_duration_seconds_sum", **labels, outcome="timeout")
    assert 0.015 < timed_out < 1.0
    stats = _stats(http.get_inference_statistics(SLOW)["model_stats"], SLOW)["inference_stats"]
    assert (stats["success"]["count"], stats["fail"]["count"]) == (1, 2)


def http_infer_fresh(url: str) -> None:
    """One request on a client of its own (tritonclient's HTTP client is not shared across threads)."""
    httpclient.InferenceServerClient(url).infer(SLOW, http_ones(1))


def test_statistics_totals_equal_the_counters(server: ServerProcess) -> None:
    http = httpclient.InferenceServerClient(server.http_url)
    http.infer(MODEL, http_ones(3))
    metrics = scrape(server.metrics_url)
    stats = _http_stats(http)
    requests = "modelport_requests_total"
    assert stats["success"] == metrics.value(requests, **LABELS, outcome="success")
    failed = sum(
        metrics.value(requests, **LABELS, outcome=o)
        for o in ("invalid_input", "queue_full", "timeout", "server_error")
    )
    assert stats["fail"] == failed
    assert stats["inference_count"] == metrics.value("modelport_inferences_total", **LABELS)
    assert stats["queue"] == metrics.value("modelport_queue_duration_seconds_count", **LABELS)


def test_model_loads_workers_and_processes_are_exported(server: ServerProcess, kind: str) -> None:
    metrics = scrape(server.metrics_url)
    assert metrics.value("modelport_model_loads_total", **LABELS) == 1
    assert metrics.value("modelport_model_load_duration_seconds_count", **LABELS) == 1
    assert metrics.value("modelport_model_load_failures_total", model="broken", version="1") == 1
    assert metrics.value("modelport_model_loads_total", model="broken") == 0
    workers = [s for s in metrics.samples if s.name == "modelport_workers" and s.labels["model"] == MODEL]
    assert sum(s.value for s in workers) >= 1
    resident = [
        s
        for s in metrics.samples
        if s.name == "modelport_worker_resident_memory_bytes" and s.labels["model"] == MODEL
    ]
    # A thread instance has no process of its own: its memory and CPU are the server process's.
    assert len(resident) == (sum(s.value for s in workers) if kind == "process" else 0)
    assert all(s.value > 1e6 for s in resident)
    cpu = [
        s
        for s in metrics.samples
        if s.name == "modelport_worker_cpu_seconds_total" and s.labels["model"] == MODEL
    ]
    assert {s.labels["worker"] for s in cpu} == {s.labels["worker"] for s in resident}
    assert metrics.value("modelport_queue_depth", **LABELS) == 0
    assert metrics.value("modelport_process_resident_memory_bytes") > 1e6
    assert metrics.value("modelport_process_cpu_seconds_total") > 0


def _worker_samples(metrics: Scrape, name: str, model: str) -> dict[str, float]:
    return {
        s.labels["worker"]: s.value for s in metrics.samples if s.name == name and s.labels["model"] == model
    }


def _wait_scrape(server: ServerProcess, done: Callable[[Scrape], bool], timeout: float = 20.0) -> Scrape:
    deadline = time.monotonic() + timeout
    while not done(metrics := scrape(server.metrics_url)):
        assert time.monotonic() < deadline, "the metrics did not reach the expected state"
        time.sleep(0.05)
    return metrics


def test_worker_metrics_follow_scaling_and_restarts(server: ServerProcess, kind: str) -> None:
    if kind == "thread":
        pytest.skip("per-worker process metrics and restarts are of worker processes")
    management = f"http://{server.management_url}/models/{CRASHY}"

    def workers() -> dict[str, int]:
        (entry,) = httpx.get(management, timeout=10).json()
        return {w["id"]: w["pid"] for w in entry["workers"]}

    scaled = httpx.put(
        management, params={"min_worker": 2, "max_worker": 2, "synchronous": "true"}, timeout=60
    )
    assert scaled.status_code == 200, scaled.text
    metrics = _wait_scrape(server, lambda m: m.value("modelport_workers", model=CRASHY) == 2)
    pids = workers()
    assert set(_worker_samples(metrics, "modelport_worker_resident_memory_bytes", CRASHY)) == set(pids)
    assert set(_worker_samples(metrics, "modelport_worker_cpu_seconds_total", CRASHY)) == set(pids)
    assert metrics.value("modelport_worker_restarts_total", model=CRASHY, version="1") == 0

    victim, pid = sorted(pids.items())[0]
    os.kill(pid, signal.SIGKILL)
    metrics = _wait_scrape(
        server,
        lambda m: (
            m.value("modelport_worker_restarts_total", model=CRASHY, version="1") == 1
            and m.value("modelport_workers", model=CRASHY) == 2
            and len(_worker_samples(m, "modelport_worker_resident_memory_bytes", CRASHY)) == 2
        ),
    )
    survivors = _worker_samples(metrics, "modelport_worker_resident_memory_bytes", CRASHY)
    assert victim not in survivors
    assert set(survivors) == set(workers())


def test_openmetrics_when_the_accept_header_asks_for_it(server: ServerProcess) -> None:
    url = f"http://{server.metrics_url}/metrics"
    plain = httpx.get(url, timeout=10)
    assert plain.headers["content-type"].startswith("text/plain")
    assert "# EOF" not in plain.text
    assert "modelport_requests_total" in plain.text or "# TYPE modelport_requests_total counter" in plain.text
    open_metrics = httpx.get(
        url, headers={"Accept": "application/openmetrics-text; version=1.0.0"}, timeout=10
    )
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
    assert open_metrics.text.rstrip().endswith("# EOF")
    assert "# TYPE modelport_requests counter" in open_metrics.text
