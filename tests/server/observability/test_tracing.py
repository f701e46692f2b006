"""Tracing, end to end: the real server exports to a real OTLP/HTTP receiver started by the test.

A client's W3C ``traceparent`` (tritonclient http ``headers=``, grpc ``headers=`` as metadata) becomes the
parent of the server's ``infer`` span, whose children are ``queue``, ``compute`` and ``encode``; Triton's
trace settings API decides which requests are traced (rate, count, level, per model), and refuses bad
settings naming the key and what it allows.
"""

from __future__ import annotations

import ast
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.helpers.onnx_models import identity_model, write_model
from tests.helpers.otlp_receiver import OtlpReceiver, ReceivedSpan, otlp_receiver
from tests.helpers.server_process import ServerProcess, start_server
from tests.helpers.tensors import grpc_ones, http_ones

MODEL = "identity"
OTHER = "other"
# The SDK's own variable: export every 50 ms instead of every 5 s, so the test does not wait.
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "50"}
ROOT = Path(__file__).resolve().parents[3]


def _repository(root: Path) -> Path:
    write_model(root, MODEL, identity_model("FP32", (-1, 4)))
    write_model(root, OTHER, identity_model("FP32", (-1, 4)))
    return root


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory, receiver: OtlpReceiver) -> Iterator[ServerProcess]:
    repository = _repository(tmp_path_factory.mktemp("traced"))
    with start_server(
        repository, "--trace-endpoint", receiver.url, "--trace-rate", "1", env=FAST_EXPORT
    ) as process:
        yield process


def _traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def _has_trace(spans: list[ReceivedSpan], trace_id: str) -> bool:
    return {s.name for s in spans if s.trace_id == trace_id} == {"infer", "queue", "compute", "encode"}


def _check_tree(
    spans: list[ReceivedSpan],
    trace_id: str,
    parent_id: str,
    protocol: str,
    *,
    root: ReceivedSpan | None = None,
    batches: tuple[int, ...] = (3,),
) -> None:
    """The request span ``root`` (the trace's only one if None) and its three children, as documented; the
    batch it ran in had one of ``batches`` rows."""
    if root is None:
        (root,) = [s for s in spans if s.trace_id == trace_id and s.name == "infer"]
    mine = {s.name: s for s in spans if s.trace_id == trace_id and s.parent_span_id == root.span_id}
    assert set(mine) == {"queue", "compute", "encode"}, mine
    assert root.parent_span_id == parent_id  # the client's span is the parent
    assert root.service == "modelport"
    assert root.attributes["modelport.model.name"] == MODEL
    assert root.attributes["modelport.model.version"] == "1"
    assert root.attributes["modelport.batch_size"] in batches
    assert root.attributes["modelport.protocol"] == protocol
    for name in ("queue", "compute", "encode"):
        child = mine[name]
        assert root.start_ns <= child.start_ns <= child.end_ns <= root.end_ns, name
    assert mine["compute"].attributes["modelport.batch_size"] == root.attributes["modelport.batch_size"]
    infer_ns = mine["compute"].attributes["modelport.compute_infer_ns"]
    assert isinstance(infer_ns, int) and infer_ns > 0
    assert mine["queue"].end_ns <= mine["compute"].start_ns + 1_000  # the compute follows the queue
    assert mine["compute"].end_ns <= mine["encode"].start_ns


def test_spans_have_the_clients_trace_as_parent_over_http_and_grpc(
    traced: ServerProcess, receiver: OtlpReceiver
) -> None:
    http_parent, http_trace, http_span = _traceparent()
    grpc_parent, grpc_trace, grpc_span = _traceparent()
    rest = httpclient.InferenceServerClient(traced.http_url)
    rpc = grpcclient.InferenceServerClient(traced.grpc_url)
    try:
        answer = rest.infer(MODEL, http_ones(3), headers={"traceparent": http_parent, "tracestate": "a=1"})
        assert np.array_equal(answer.as_numpy("OUTPUT0"), np.ones((3, 4), np.float32))
        reply = rpc.infer(MODEL, grpc_ones(3), headers={"traceparent": grpc_parent})
        assert np.array_equal(reply.as_numpy("OUTPUT0"), np.ones((3, 4), np.float32))
    finally:
        rest.close()
        rpc.close()
    spans = receiver.wait_for(lambda s: _has_trace(s, http_trace) and _has_trace(s, grpc_trace))
    _check_tree(spans, http_trace, http_span, "http")
    _check_tree(spans, grpc_trace, grpc_span, "grpc")


def test_a_request_without_traceparent_starts_a_trace_and_a_bad_one_is_ignored(
    traced: ServerProcess, receiver: OtlpReceiver
) -> None:
    before = {s.trace_id for s in receiver.spans()}
    with httpx.Client(base_url=f"http://{traced.http_url}", timeout=10) as client:
        body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
        for headers in ({}, {"traceparent": "00-not-a-trace-01"}):
            assert client.post(f"/v2/models/{MODEL}/infer", json=body, headers=headers).status_code == 200
    spans = receiver.wait_for(lambda s: len({x.trace_id for x in s if x.name == "infer"} - before) >= 2)
    roots = [s for s in spans if s.name == "infer" and s.trace_id not in before]
    assert all(s.parent_span_id == "" for s in roots)  # new traces, no parent


def test_a_failed_request_and_a_streams_requests_are_traced(
    traced: ServerProcess, receiver: OtlpReceiver
) -> None:
    failing, failing_trace, failing_span = _traceparent()
    streamed, stream_trace, stream_span = _traceparent()
    rpc = grpcclient.InferenceServerClient(traced.grpc_url)
    answers: list[object] = []
    try:
        with pytest.raises(InferenceServerException):
            rpc.infer(MODEL, grpc_ones(2, "INT32"), headers={"traceparent": failing})
        rpc.start_stream(
            callback=lambda result, error: answers.append(error or result), headers={"traceparent": streamed}
        )
        for _ in range(2):
            rpc.async_stream_infer(MODEL, grpc_ones(3))
        rpc.stop_stream()
    finally:
        rpc.close()
    assert len(answers) == 2 and not any(isinstance(a, InferenceServerException) for a in answers)
    spans = receiver.wait_for(
        lambda s: (
            any(x.trace_id == failing_trace for x in s)
            and sum(1 for x in s if x.trace_id == stream_trace and x.name == "infer") == 2
        )
    )
    (root,) = [s for s in spans if s.trace_id == failing_trace]  # refused before it ran: no children
    assert root.name == "infer" and root.parent_span_id == failing_span
    assert root.error is not None and "INT32" in root.error
    streamed_roots = [s for s in spans if s.trace_id == stream_trace and s.name == "infer"]
    assert all(s.parent_span_id == stream_span and s.error is None for s in streamed_roots)
    for root in streamed_roots:  # each message of the stream has its own tree under the stream's parent
        _check_tree(spans, stream_trace, stream_span, "grpc", root=root, batches=(3, 6))  # batched or not


def _traces(receiver: OtlpReceiver, trace_ids: list[str]) -> int:
    return len({s.trace_id for s in receiver.spans() if s.name == "infer"} & set(trace_ids))


def _send(client: httpclient.InferenceServerClient, model: str, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        parent, trace_id, _span = _traceparent()
        client.infer(model, http_ones(1), headers={"traceparent": parent})
        ids.append(trace_id)
    return ids


def test_rate_count_level_and_model_settings(traced: ServerProcess, receiver: OtlpReceiver) -> None:
    rest = httpclient.InferenceServerClient(traced.http_url)
    rpc = grpcclient.InferenceServerClient(traced.grpc_url)
    try:
        settings = rest.get_trace_settings()
        assert settings == {
            "trace_level": ["TIMESTAMPS"],
            "trace_rate": "1",
            "trace_count": "-1",
            "log_frequency": "0",
            "trace_mode": "opentelemetry",
        }
        # Rate 3 (over gRPC): one request in three; the counter starts now.
        changed = rpc.update_trace_settings(settings={"trace_rate": "3"}, as_json=True)
        assert changed["settings"]["trace_rate"]["value"] == ["3"]
        ids = _send(rest, MODEL, 9)
        receiver.wait_for(lambda _s: _traces(receiver, ids) >= 3)
        # Count 2: two more traces, then none; the count left is reported.
        rest.update_trace_settings(settings={"trace_rate": "1", "trace_count": "2"})
        counted = _send(rest, MODEL, 5)
        receiver.wait_for(lambda _s: _traces(receiver, counted) >= 2)
        assert rest.get_trace_settings()["trace_count"] == "0"
        # A model of its own: level TIMESTAMPS and no count limit there, while the global count is spent.
        model = rest.update_trace_settings(OTHER, {"trace_count": "-1"})
        assert model["trace_count"] == "-1" and model["trace_rate"] == "1"
        other = _send(rest, OTHER, 2)
        still_off = _send(rest, MODEL, 2)
        receiver.wait_for(lambda _s: _traces(receiver, other) == 2)
        # null clears the model's own value: it follows the global count (spent) again.
        cleared = rest.update_trace_settings(OTHER, {"trace_count": None})
        assert cleared["trace_count"] == "0"
        rest.update_trace_settings(settings={"trace_count": "-1", "trace_level": ["OFF"]})
        assert rest.get_trace_settings(OTHER)["trace_level"] == ["OFF"]
        off = _send(rest, MODEL, 3) + _send(rest, OTHER, 3)
        # Level back on: the next request is traced, and is exported after the ones before it would be.
        rest.update_trace_settings(settings={"trace_level": ["TIMESTAMPS"]})
        last = _send(rest, MODEL, 1)
        receiver.wait_for(lambda _s: _traces(receiver, last) == 1)
        assert _traces(receiver, ids) == 3
        assert _traces(receiver, counted) == 2
        assert _traces(receiver, still_off) == 0
        assert _traces(receiver, off) == 0
    finally:
        rest.close()
        rpc.close()


@pytest.mark.parametrize(
    ("settings", "status", "named"),
    [
        ({"trace_levle": ["TIMESTAMPS"]}, "400", ["trace_levle", "trace_level, trace_rate"]),
        ({"trace_level": ["LOUD"]}, "400", ["trace_level", "OFF, TIMESTAMPS"]),
        ({"trace_level": ["OFF", "TIMESTAMPS"]}, "400", ["trace_level", "OFF must be the only"]),
        ({"trace_rate": "0"}, "400", ["trace_rate", "[1, 4294967295]"]),
        ({"trace_rate": "often"}, "400", ["trace_rate", "'often'"]),
        ({"trace_count": "-2"}, "400", ["trace_count", "[-1,"]),
        ({"trace_mode": "triton"}, "400", ["trace_mode", "opentelemetry"]),
        ({"trace_level": ["TENSORS"]}, "501", ["TENSORS", "TIMESTAMPS"]),
        ({"trace_file": "/tmp/trace.json"}, "501", ["trace_file", "OTLP"]),
    ],
)
def test_bad_trace_settings_are_refused_naming_the_key(
    traced: ServerProcess, settings: dict[str, object], status: str, named: list[str]
) -> None:
    rest = httpclient.InferenceServerClient(traced.http_url)
    rpc = grpcclient.InferenceServerClient(traced.grpc_url)
    grpc_status = {"400": "StatusCode.INVALID_ARGUMENT", "501": "StatusCode.UNIMPLEMENTED"}[status]
    try:
        before = rest.get_trace_settings()
        with pytest.raises(InferenceServerException) as rest_error:
            rest.update_trace_settings(settings=settings)
        with pytest.raises(InferenceServerException) as grpc_error:
            rpc.update_trace_settings(settings=settings)
        assert rest.get_trace_settings() == before  # nothing changed
    finally:
        rest.close()
        rpc.close()
    assert rest_error.value.status() == status
    assert grpc_error.value.status() == grpc_status
    for words in named:
        assert words in rest_error.value.message(), rest_error.value.message()
        assert words in str(grpc_error.value.message()), grpc_error.value.message()


def test_unknown_model_and_clearing_a_global_setting_are_refused(traced: ServerProcess) -> None:
    with httpx.Client(base_url=f"http://{traced.http_url}", timeout=10) as client:
        answer = client.post("/v2/models/nope/trace/setting", json={"trace_rate": "2"})
        assert answer.status_code == 400 and "nope" in answer.json()["error"]
        answer = client.post("/v2/trace/setting", json={"trace_rate": None})
        assert answer.status_code == 400 and "cannot be cleared" in answer.json()["error"]
        answer = client.post("/v2/trace/setting", json={"trace_rate": 2.5})
        assert answer.status_code == 400 and "trace_rate" in answer.json()["error"]


def test_without_an_endpoint_tracing_is_off_and_cannot_be_turned_on(server: ServerProcess) -> None:
    rest = httpclient.InferenceServerClient(server.http_url)
    try:
        assert rest.get_trace_settings()["trace_level"] == ["OFF"]
        assert rest.get_trace_settings()["trace_rate"] == "1000"  # Triton's default
        assert "trace" in rest.get_server_metadata()["extensions"]
        with pytest.raises(InferenceServerException) as refused:
            rest.update_trace_settings(settings={"trace_level": ["TIMESTAMPS"]})
        assert refused.value.status() == "501" and "--trace-endpoint" in refused.value.message()
        assert rest.update_trace_settings(settings={"trace_rate": "10"})["trace_rate"] == "10"
        rest.update_trace_settings(settings={"trace_rate": "1000"})
    finally:
        rest.close()


def test_spans_still_queued_are_exported_when_the_server_stops(tmp_path: Path) -> None:
    parent, trace_id, _span = _traceparent()
    with otlp_receiver() as receiver:
        # The SDK would wait a minute before exporting: only the shutdown flush can deliver in time.
        with start_server(
            _repository(tmp_path),
            "--trace-endpoint",
            receiver.url,
            "--trace-rate",
            "1",
            env={"OTEL_BSP_SCHEDULE_DELAY": "60000"},
        ) as process:
            client = httpclient.InferenceServerClient(process.http_url)
            client.infer(MODEL, http_ones(3), headers={"traceparent": parent})
            client.close()
            assert process.stop() == 0
        names = {s.name for s in receiver.spans() if s.trace_id == trace_id}
        assert names == {"infer", "queue", "compute", "encode"}


def test_opentelemetry_is_imported_only_by_the_exporter_module() -> None:
    """Tracing off costs no import: only ``otel_spans`` (imported when an endpoint is set) names it."""
    importers = set()
    for path in (ROOT / "server").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            if any(name.split(".")[0] == "opentelemetry" for name in names):
                importers.add(path.relative_to(ROOT).as_posix())
    assert importers == {"server/observability/otel_spans.py"}
