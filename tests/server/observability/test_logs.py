"""Access log of the real server, in text and JSON: one line per request with the request id the client got
back (its own id, or one the server generated), over REST and gRPC, for successes and failures."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.helpers.onnx_models import identity_model, write_model
from tests.helpers.server_process import ServerProcess, start_server
from tests.helpers.tensors import grpc_ones, http_ones

MODEL = "identity"
_ID_IN_MESSAGE = re.compile(r"\(request id: ([0-9a-f]{32})\)")


def _start(tmp_path_factory: pytest.TempPathFactory, log_format: str) -> Iterator[ServerProcess]:
    repository = tmp_path_factory.mktemp(f"repo-{log_format}")
    write_model(repository, MODEL, identity_model("FP32", (-1, 4)))
    with start_server(repository, "--log-format", log_format, "--access-log") as process:
        yield process


@pytest.fixture(scope="module")
def json_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from _start(tmp_path_factory, "json")


@pytest.fixture(scope="module")
def text_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from _start(tmp_path_factory, "text")


def _wait_for(server: ServerProcess, found: Callable[[str], Any], timeout: float = 5.0) -> Any:
    """Poll the server's output (written by a logging thread) until ``found`` returns something."""
    deadline = time.monotonic() + timeout
    while True:
        result = found(server.logs())
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def _access_records(logs: str) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    return [r for r in records if r["logger"] == "modelport.access"]


def _json_access(server: ServerProcess, request_id: str) -> list[dict[str, Any]]:
    return list(
        _wait_for(server, lambda logs: [r for r in _access_records(logs) if r["request_id"] == request_id])
    )


def test_json_access_lines_carry_the_client_ids_over_both_protocols(json_server: ServerProcess) -> None:
    http = httpclient.InferenceServerClient(json_server.http_url)
    grpc = grpcclient.InferenceServerClient(json_server.grpc_url)
    answer = http.infer(MODEL, http_ones(2), request_id="client-http-1")
    assert answer.get_response()["id"] == "client-http-1"
    assert grpc.infer(MODEL, grpc_ones(3), request_id="client-grpc-1").get_response().id == "client-grpc-1"

    (line,) = _json_access(json_server, "client-http-1")
    assert {k: line[k] for k in ("model", "version", "protocol", "outcome", "status", "batch_size")} == {
        "model": MODEL,
        "version": "1",
        "protocol": "http",
        "outcome": "success",
        "status": "OK",
        "batch_size": 2,
    }
    assert line["level"] == "INFO"
    assert 0 < line["duration_ms"] < 10_000
    assert "error" not in line
    (line,) = _json_access(json_server, "client-grpc-1")
    assert (line["protocol"], line["batch_size"], line["outcome"]) == ("grpc", 3, "success")


def test_generated_ids_are_echoed_and_logged(json_server: ServerProcess) -> None:
    http = httpclient.InferenceServerClient(json_server.http_url)
    grpc = grpcclient.InferenceServerClient(json_server.grpc_url)
    http_id = http.infer(MODEL, http_ones(1)).get_response()["id"]
    grpc_id = grpc.infer(MODEL, grpc_ones(1)).get_response().id
    assert re.fullmatch("[0-9a-f]{32}", http_id)
    assert re.fullmatch("[0-9a-f]{32}", grpc_id)
    assert http_id != grpc_id
    assert [r["protocol"] for r in _json_access(json_server, http_id)] == ["http"]
    assert [r["protocol"] for r in _json_access(json_server, grpc_id)] == ["grpc"]


def test_a_failure_names_its_request_id_and_is_found_in_the_log(json_server: ServerProcess) -> None:
    http = httpclient.InferenceServerClient(json_server.http_url)
    grpc = grpcclient.InferenceServerClient(json_server.grpc_url)
    with pytest.raises(InferenceServerException) as refused:
        grpc.infer(MODEL, grpc_ones(1, "INT32"), request_id="bad-grpc-1")
    assert "(request id: bad-grpc-1)" in str(refused.value)
    (line,) = _json_access(json_server, "bad-grpc-1")
    assert (line["outcome"], line["status"], line["batch_size"]) == ("invalid_input", "INVALID_ARG", None)
    assert "INT32" in line["error"]

    # No client id: the error message carries the generated one, and that finds the line.
    with pytest.raises(InferenceServerException) as refused:
        http.infer("no_such_model", http_ones(1))
    match = _ID_IN_MESSAGE.search(str(refused.value))
    assert match, str(refused.value)
    (line,) = _json_access(json_server, match.group(1))
    assert (line["model"], line["version"], line["protocol"]) == ("no_such_model", "", "http")
    assert "no_such_model" in line["error"]


def test_every_json_line_is_one_object(json_server: ServerProcess) -> None:
    http = httpclient.InferenceServerClient(json_server.http_url)
    http.infer(MODEL, http_ones(1), request_id="last-one")
    _json_access(json_server, "last-one")
    lines = [line for line in json_server.logs().splitlines() if line.strip()]
    for line in lines:
        record = json.loads(line)
        assert {"level", "logger", "message", "timestamp"} <= set(record), line
        assert "color_message" not in record


def test_text_access_line(text_server: ServerProcess) -> None:
    http = httpclient.InferenceServerClient(text_server.http_url)
    grpc = grpcclient.InferenceServerClient(text_server.grpc_url)
    http.infer(MODEL, http_ones(2), request_id="text-1")
    with pytest.raises(InferenceServerException):
        grpc.infer(MODEL, grpc_ones(1, "INT32"), request_id="text-2")
    success = re.compile(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO modelport\.access: request_id=text-1 model=identity "
        r"version=1 protocol=http outcome=success status=OK duration_ms=\d+\.?\d* batch_size=2$",
        re.MULTILINE,
    )
    failure = re.compile(
        r"INFO modelport\.access: request_id=text-2 model=identity version=1 protocol=grpc "
        r'outcome=invalid_input status=INVALID_ARG duration_ms=\d+\.?\d* batch_size=- error=".*INT32.*"$',
        re.MULTILINE,
    )
    assert _wait_for(text_server, success.search), text_server.logs()
    assert _wait_for(text_server, failure.search), text_server.logs()


def test_a_client_id_cannot_forge_a_text_line(text_server: ServerProcess) -> None:
    http = httpclient.InferenceServerClient(text_server.http_url)
    # A newline cannot reach the log at all: an id that is not printable ASCII is refused.
    with pytest.raises(InferenceServerException, match="printable ASCII"):
        http.infer(MODEL, http_ones(1), request_id="x\n2026-01-01T00:00:00.000Z INFO modelport.access: a")
    # Spaces and quotes are printable: accepted, and quoted in the line so they cannot fake a field.
    forged = 'x model=other request_id="forged'
    assert http.infer(MODEL, http_ones(1), request_id=forged).get_response()["id"] == forged
    line = _wait_for(
        text_server,
        lambda logs: [line for line in logs.splitlines() if "request_id=" in line and "forged" in line],
    )
    assert len(line) == 1, line
    assert 'request_id="x model=other request_id=\\"forged" model=identity' in line[0]
    assert "modelport.access: a\n" not in text_server.logs()  # the refused id forged no line
