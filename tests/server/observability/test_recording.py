"""Recording a finished request: tagging errors with request ids (one batch's error reaches every request of
the batch), generated request ids, and one call feeding statistics and metrics alike."""

from __future__ import annotations

import os
import re
import time

from modelport.server.errors import InvalidInput, ModelNotFound, QueueFull
from modelport.server.executor import ExecutionResult
from modelport.server.observability.access_log import new_request_id
from modelport.server.observability.metrics import ServerMetrics
from modelport.server.observability.recording import RequestRecorder, tag_with_request_id
from modelport.server.observability.statistics import VersionStatistics
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families


def test_one_error_shared_by_a_batch_names_each_request_its_own_id() -> None:
    shared = InvalidInput("model 'm': ONNX Runtime refused the batch")
    first = tag_with_request_id(shared, "aaa")
    second = tag_with_request_id(shared, "bbb")
    assert first.message == "model 'm': ONNX Runtime refused the batch (request id: aaa)"
    assert second.message == "model 'm': ONNX Runtime refused the batch (request id: bbb)"
    assert isinstance(second, InvalidInput) and str(second) == second.message
    assert tag_with_request_id(first, "aaa").message == first.message


def test_generated_request_ids_are_32_hex_digits_and_never_repeat() -> None:
    ids = [new_request_id() for _ in range(1000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", request_id) for request_id in ids)
    assert len(set(ids)) == len(ids)
    assert len({request_id[:16] for request_id in ids}) == 1  # one prefix per process, then a counter


def test_a_forked_child_generates_ids_of_its_own() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write one id and leave at once, without running the parent's clean-up
        try:
            os.write(write, new_request_id().encode())
        finally:
            os._exit(0)
    os.close(write)
    try:
        _, status = os.waitpid(pid, 0)
        child = os.read(read, 64).decode()
    finally:
        os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0
    parent = new_request_id()
    assert re.fullmatch(r"[0-9a-f]{32}", child)
    assert child[:16] != parent[:16]


def test_finish_records_statistics_and_metrics_with_the_same_counts() -> None:
    metrics = ServerMetrics(process_metrics=False)
    recorder = RequestRecorder(metrics)
    statistics = VersionStatistics("m", "1")
    result = ExecutionResult(  # one batch of 4 rows, shared by two requests of 2
        outputs={},
        queue_ns=1_000,
        compute_input_ns=10,
        compute_infer_ns=20,
        compute_output_ns=30,
        batch_size=4,
    )
    started = time.monotonic_ns()
    for request_id in ("a", "b"):
        with recorder.in_flight("m", "1"):
            pass
        recorder.finish(
            request_id=request_id,
            model_name="m",
            protocol="grpc",
            started_ns=started,
            statistics=statistics,
            rows=2,
            result=result,
        )
    recorder.finish(
        request_id="c",
        model_name="m",
        protocol="http",
        started_ns=started,
        statistics=statistics,
        error=QueueFull("full"),
    )
    recorder.finish(
        request_id="d",
        model_name="nope",
        protocol="http",
        started_ns=started,
        statistics=None,
        model_known=False,
        error=ModelNotFound("no model 'nope'"),
    )

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(generate_latest(metrics.registry).decode())
        for sample in family.samples
    }

    def requests(model: str, version: str, protocol: str, outcome: str) -> float:
        labels = {"model": model, "version": version, "protocol": protocol, "outcome": outcome}
        return samples[("modelport_requests_total", tuple(sorted(labels.items())))]

    assert requests("m", "1", "grpc", "success") == 2
    assert requests("m", "1", "http", "queue_full") == 1
    assert requests("", "", "http", "invalid_input") == 1  # an unknown model's name is no label value
    version = (("model", "m"), ("version", "1"))
    assert samples[("modelport_inferences_total", version)] == 4
    assert samples[("modelport_queue_duration_seconds_count", version)] == 2
    assert samples[("modelport_queue_duration_seconds_sum", version)] == 2e-6
    assert samples[("modelport_compute_duration_seconds_sum", version)] == 1.2e-7
    assert samples[("modelport_requests_in_flight", version)] == 0
    stats = statistics.to_json()
    assert (stats["inference_count"], stats["execution_count"]) == (4, 1)
    assert stats["inference_stats"]["success"]["count"] == 2
    assert stats["inference_stats"]["fail"]["count"] == 1
    assert stats["inference_stats"]["queue"] == {"count": 2, "ns": 2_000}
    assert stats["batch_stats"] == [
        {
            "batch_size": 4,
            "compute_input": {"count": 1, "ns": 10},
            "compute_infer": {"count": 1, "ns": 20},
            "compute_output": {"count": 1, "ns": 30},
        }
    ]
